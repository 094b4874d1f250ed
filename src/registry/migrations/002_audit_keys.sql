-- Registry schema 2: batch heads signed by a station's dedicated audit key (`[audit] key`) instead of a CA key, so
-- that CA keys sign certificates only.
-- The audit certificates the stations sign heads with; each is issued by one of the station's CAs.
CREATE TABLE registry.station_audit_keys (
    station_id     text NOT NULL REFERENCES registry.stations,
    fingerprint    text NOT NULL,               -- hex SHA-256 of cert_der
    label          text NOT NULL,               -- the key's label, `audit-key=LABEL` in the signed text
    ca_fingerprint text NOT NULL,               -- the CA that issued the audit certificate
    cert_der       bytea NOT NULL,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, fingerprint),
    FOREIGN KEY (station_id, ca_fingerprint) REFERENCES registry.station_cas (station_id, fingerprint)
);

-- A head signed by an audit key names it here; ca_name and ca_fingerprint then name the CA that issued the audit
-- certificate. NULL: signed by the CA key, as every head of schema 1.
ALTER TABLE registry.heads ADD COLUMN audit_key_fingerprint text;
ALTER TABLE registry.heads ADD FOREIGN KEY (station_id, audit_key_fingerprint)
    REFERENCES registry.station_audit_keys (station_id, fingerprint);
