-- Fleet registry, schema 1. Everything lives in the schema `registry`.
-- `events` holds every station's hash chain exactly as its ledger has it (the bytes that were hashed), keyed by
-- (station_id, seq); `heads` holds the head each batch carried, signed in the station's HSM by its CA key;
-- `station_cas` the CA certificates those signatures verify under; `leases` the serial blocks.

CREATE TABLE registry.stations (
    station_id     text PRIMARY KEY,
    genesis_hash   text NOT NULL,             -- row_hash of the station's event 1: which ledger this id is
    last_seq       bigint NOT NULL DEFAULT 0, -- the last event forwarded
    last_hash      text NOT NULL,             -- its row_hash
    ledger_seq     bigint NOT NULL DEFAULT 0, -- the station's own head when it last reported (backlog = this - last_seq)
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    last_batch_at  timestamptz,
    host           text NOT NULL DEFAULT ''
);

CREATE TABLE registry.station_cas (
    station_id   text NOT NULL REFERENCES registry.stations,
    fingerprint  text NOT NULL,               -- hex SHA-256 of cert_der
    ca_name      text NOT NULL,
    subject      text NOT NULL,
    cert_der     bytea NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, fingerprint)
);

CREATE TABLE registry.events (
    station_id  text NOT NULL REFERENCES registry.stations,
    seq         bigint NOT NULL,
    at          text NOT NULL,
    kind        text NOT NULL,
    subject     text NOT NULL,
    ref_id      bigint,
    detail      text NOT NULL,
    prev_hash   text NOT NULL,
    row_hash    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (station_id, seq)
);
CREATE INDEX events_serial ON registry.events (((detail::jsonb) ->> 'serial')) WHERE kind IN ('issued', 'reissued');
CREATE INDEX events_ref ON registry.events (station_id, ref_id) WHERE ref_id IS NOT NULL;
CREATE INDEX events_kind ON registry.events (kind, station_id, seq);

CREATE TABLE registry.heads (
    station_id     text NOT NULL REFERENCES registry.stations,
    seq            bigint NOT NULL,           -- the last event of the batch
    head_hash      text NOT NULL,
    issuances      bigint NOT NULL,
    at             text NOT NULL,
    ca_name        text NOT NULL,
    ca_fingerprint text NOT NULL,
    signed         text NOT NULL,             -- the exact text signed (station-checkpoint-v1)
    signature      text NOT NULL,             -- hex
    received_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (station_id, seq),
    FOREIGN KEY (station_id, ca_fingerprint) REFERENCES registry.station_cas (station_id, fingerprint)
);

-- Serial blocks: one row per prefix says where the next block starts; a lease is taken in one transaction
-- that locks that row.
CREATE TABLE registry.serial_pools (
    prefix     text PRIMARY KEY,
    next_first bigint NOT NULL
);
CREATE TABLE registry.leases (
    id         bigserial PRIMARY KEY,
    station_id text NOT NULL REFERENCES registry.stations,
    prefix     text NOT NULL,
    first      bigint NOT NULL,
    last       bigint NOT NULL,
    leased_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (first <= last)
);
CREATE UNIQUE INDEX leases_prefix_first ON registry.leases (prefix, first);

-- Read-only views for auditors who prefer SQL (docs/fleet.md).
CREATE VIEW registry.issuances AS
SELECT e.station_id,
       e.seq,
       e.ref_id                                   AS issuance_id,
       e.kind = 'reissued'                        AS reissue,
       (e.detail::jsonb) ->> 'serial'             AS serial,
       (e.detail::jsonb) ->> 'cert_id'            AS certificate_id,
       (e.detail::jsonb) ->> 'ca'                 AS ca,
       (e.detail::jsonb) ->> 'bench'              AS bench,
       (e.detail::jsonb) ->> 'operator'           AS operator,
       (e.detail::jsonb) ->> 'issued_at'          AS issued_at,
       (e.detail::jsonb) ->> 'not_after'          AS not_after,
       (e.detail::jsonb) ->> 'device_model'       AS device_model,
       COALESCE((SELECT s.kind FROM registry.events s
                  WHERE s.station_id = e.station_id AND s.ref_id = e.ref_id
                    AND s.kind IN ('delivered', 'confirmed')
                  ORDER BY (s.kind = 'confirmed') DESC, s.seq DESC LIMIT 1), 'issued') AS state,
       e.received_at
  FROM registry.events e
 WHERE e.kind IN ('issued', 'reissued');

CREATE VIEW registry.station_status AS
SELECT s.station_id,
       s.last_seq                                 AS forwarded_seq,
       s.ledger_seq,
       GREATEST(s.ledger_seq - s.last_seq, 0)     AS backlog,
       s.last_seen,
       s.last_batch_at,
       (SELECT e.at FROM registry.events e WHERE e.station_id = s.station_id AND e.seq = s.last_seq) AS last_event_at,
       (SELECT count(*) FROM registry.events e
         WHERE e.station_id = s.station_id AND e.kind IN ('issued', 'reissued')) AS issuances
  FROM registry.stations s;

CREATE VIEW registry.station_cas_used AS
SELECT station_id, fingerprint, ca_name, subject, first_seen FROM registry.station_cas;
