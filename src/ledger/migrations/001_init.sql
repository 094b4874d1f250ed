-- Station ledger, schema 1.
-- `events` is the hash chain: every issuance, delivery, confirmation and CA change appends one row, and
-- row_hash = SHA-256(prev_hash || canonical bytes of the row). The other tables are the current state that
-- the events explain; `station audit verify` checks each against the chain.

CREATE TABLE cas (
    name         TEXT PRIMARY KEY,
    key_uri      TEXT NOT NULL,
    key_type     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'active', 'retired')),
    subject      TEXT NOT NULL,
    cert_der     BLOB,                      -- NULL while an intermediate waits for its signed cert
    fingerprint  TEXT,                      -- hex SHA-256 of cert_der = the AWS IoT certificate ID
    not_before   TEXT,
    not_after    TEXT,
    chain_pem    TEXT NOT NULL DEFAULT '',  -- issuers above this CA, excluding the root
    root_pem     TEXT NOT NULL DEFAULT '',  -- the root, when the CA was imported under one
    created_at   TEXT NOT NULL,
    activated_at TEXT,
    retired_at   TEXT
);
CREATE UNIQUE INDEX cas_one_active ON cas (state) WHERE state = 'active';

CREATE TABLE issuances (
    id             INTEGER PRIMARY KEY,
    serial         TEXT NOT NULL,           -- the device serial: CN and DN serialNumber
    cert_serial    TEXT NOT NULL,           -- the certificate's serial number, hex
    cert_der       BLOB NOT NULL,
    chain_pem      TEXT NOT NULL,           -- exactly the bytes sent to the device
    spki_sha256    TEXT NOT NULL,
    cert_id        TEXT NOT NULL UNIQUE,    -- hex SHA-256 of cert_der
    ca_name        TEXT NOT NULL REFERENCES cas (name),
    bench          TEXT NOT NULL DEFAULT '',
    operator       TEXT NOT NULL DEFAULT '',
    issued_at      TEXT NOT NULL,
    not_after      TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('issued', 'delivered', 'confirmed')),
    reissue_of     INTEGER REFERENCES issuances (id),
    reissue_reason TEXT,
    superseded_by  INTEGER REFERENCES issuances (id) DEFERRABLE INITIALLY DEFERRED
);
-- One current certificate per serial and per key; re-issues supersede the old row.
CREATE UNIQUE INDEX issuances_current_serial ON issuances (serial) WHERE superseded_by IS NULL;
CREATE UNIQUE INDEX issuances_current_key ON issuances (spki_sha256) WHERE superseded_by IS NULL;
CREATE INDEX issuances_issued_at ON issuances (issued_at);
CREATE INDEX issuances_bench ON issuances (bench, id);

CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,          -- 1, 2, 3 … without gaps
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,                -- a device serial or a CA name
    ref_id    INTEGER,                      -- the issuance row, for issuance events
    detail    TEXT NOT NULL,                -- JSON, hashed as stored
    prev_hash TEXT NOT NULL,
    row_hash  TEXT NOT NULL
);
CREATE INDEX events_ref ON events (ref_id);

-- Station-allocated serials. A number is reserved (durably) before signing and consumed with its
-- issuance; a reservation left by a crash or a vanished device is handed to the next device, so the
-- issued numbers have no gaps.
CREATE TABLE serial_reservations (
    number   INTEGER PRIMARY KEY,
    serial   TEXT NOT NULL UNIQUE,
    consumed INTEGER NOT NULL DEFAULT 0
);

-- Refusals are counted for `audit stats` but are not part of the chain: nothing was issued.
CREATE TABLE refusals (
    id    INTEGER PRIMARY KEY,
    at    TEXT NOT NULL,
    code  TEXT NOT NULL,
    bench TEXT NOT NULL DEFAULT '',
    serial TEXT NOT NULL DEFAULT '',
    ca_name TEXT NOT NULL DEFAULT ''
);

-- HSM-signed checkpoints of the chain head. `signature` is over the message `signed` (the exact bytes
-- signed), made by the key of `ca_name` (or a dedicated audit key) in the HSM.
CREATE TABLE checkpoints (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    seq       INTEGER NOT NULL,   -- the last event covered
    head_hash TEXT NOT NULL,      -- that event's row_hash
    issuances INTEGER NOT NULL,   -- issuance rows at that moment
    ca_name   TEXT NOT NULL,
    key_uri   TEXT NOT NULL,
    signed    TEXT NOT NULL,
    signature TEXT NOT NULL       -- hex
);
