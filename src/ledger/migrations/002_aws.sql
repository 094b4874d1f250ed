-- Station ledger, schema 2: AWS IoT registration and verification of the CAs.
-- Every registration is also a chained event (`aws-ca-registered`), and so is every verification run
-- (`aws-ca-verified`, one per CA, with the outcome per region), so an audit can tell under which
-- verification state a device certificate was issued.

-- Where each CA is registered: one row per (CA, region), replaced when the CA is registered again.
CREATE TABLE aws_registrations (
    ca_name         TEXT NOT NULL REFERENCES cas (name),
    region          TEXT NOT NULL,
    profile         TEXT NOT NULL DEFAULT '',   -- the account's profile ('' = the default credential chain)
    endpoint        TEXT NOT NULL DEFAULT '',   -- '' = AWS itself; else the emulator's URL
    certificate_id  TEXT NOT NULL,              -- AWS's CA certificate ID (= hex SHA-256 of the DER)
    certificate_arn TEXT NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('jitp', 'jitr')),
    registered_at   TEXT NOT NULL,
    PRIMARY KEY (ca_name, region)
);

-- The result of each verification of a (CA, region) pair. The fail-closed gate reads the newest row per
-- pair made against the configured endpoint in the configured mode, so a run against an emulator
-- (--endpoint-url) or in another mode (--mode) never opens it.
CREATE TABLE aws_verifications (
    id           INTEGER PRIMARY KEY,
    ca_name      TEXT NOT NULL REFERENCES cas (name),
    region       TEXT NOT NULL,
    at           TEXT NOT NULL,
    endpoint     TEXT NOT NULL DEFAULT '',      -- '' = AWS itself; the gate trusts only the configured one
    mode         TEXT NOT NULL CHECK (mode IN ('jitp', 'jitr')),
    outcome      TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'error', 'retired', 'skipped')),
    failed_check TEXT,                          -- the stable code of the first failing check
    message      TEXT NOT NULL DEFAULT '',
    remedy       TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL                  -- JSON: every check and what AWS reported
);
CREATE INDEX aws_verifications_pair ON aws_verifications (ca_name, region, endpoint, mode, id);
