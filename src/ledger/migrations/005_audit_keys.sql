-- Station ledger, schema 5: the dedicated audit key (`[audit] key`, made by `station audit key create`) and who signed
-- each checkpoint.
-- One row per audit key: its HSM key and the audit certificate the active CA issued for it (the `x5c` of signed
-- manifests, and what checkpoints signed by the key are verified with). Creating one is also a chained event
-- (`audit-key-created`).
CREATE TABLE audit_keys (
    label       TEXT PRIMARY KEY,  -- the key's CKA_LABEL in the CA's token, and `[audit] key`
    key_uri     TEXT NOT NULL,
    key_type    TEXT NOT NULL,     -- ec-p256, ec-p384, rsa-2048, …
    cert_der    BLOB NOT NULL,     -- the audit certificate
    fingerprint TEXT NOT NULL,     -- SHA-256 of cert_der, hex
    ca_name     TEXT NOT NULL REFERENCES cas(name),  -- the CA that issued it
    created_at  TEXT NOT NULL
);

-- Which kind of key signed a checkpoint: 'ca' (ca_name names the CA, as before) or 'audit-key' (ca_name holds the
-- audit key's label). Rows from before schema 5 were all signed by a CA key.
ALTER TABLE checkpoints ADD COLUMN signer_kind TEXT NOT NULL DEFAULT 'ca';
