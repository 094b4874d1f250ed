//! Every stable code once: what it means, whether trying again can succeed, the exit status of a command that
//! fails with it, and where it can appear (the command line, the wire in either direction, the ledger, the
//! simulator's report).
//!
//! The modules decide their codes (`Coded`, the AWS checks, and beside the station the protocol crate's `FrameError`
//! and the simulator crate's `DevsimError`); this table is what the documents are checked against. The tests beside it prove both ways: every code the code can produce is here
//! with the same `retryable` and exit status, and README.md, docs/aws.md and schemas/bench-protocol.md list
//! exactly these codes in their tables. So a code cannot go undocumented.

/// Where a code can appear.
pub mod at {
    /// `error[code]` of a command, an operator line, a `station ca verify` row.
    pub const CLI: u8 = 1;
    /// An ERROR the station sends a device (spec 6.1, 6.2).
    pub const WIRE: u8 = 2;
    /// An ERROR a device sends the station (spec 6.3).
    pub const DEVICE: u8 = 4;
    /// The ledger: the `refusals` table, a `device-error` event, or `aws_verifications.failed_check`.
    pub const LEDGER: u8 = 8;
    /// `station-devsim`'s report only.
    pub const DEVSIM: u8 = 16;
}

use at::{CLI, DEVICE, DEVSIM, LEDGER, WIRE};

/// One stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub code: &'static str,
    pub meaning: &'static str,
    /// Whether the same request can succeed later without anyone changing anything (ERROR's `retryable`).
    pub retryable: bool,
    /// The exit status of a `station` command that fails with it; `None` for codes no command exits with.
    pub exit: Option<i32>,
    /// Where it appears: a set of [`at`] flags.
    pub at: u8,
}

impl Code {
    pub fn appears(&self, flag: u8) -> bool {
        self.at & flag != 0
    }
}

const fn c(code: &'static str, retryable: bool, exit: Option<i32>, at: u8, meaning: &'static str) -> Code {
    Code { code, meaning, retryable, exit, at }
}

const E1: Option<i32> = Some(1);
const E2: Option<i32> = Some(2);
const E3: Option<i32> = Some(3);
const E4: Option<i32> = Some(4);
const E5: Option<i32> = Some(5);
const E6: Option<i32> = Some(6);
const E7: Option<i32> = Some(7);
const E8: Option<i32> = Some(8);
const E9: Option<i32> = Some(9);
const E10: Option<i32> = Some(10);
const NONE: Option<i32> = None;

/// Station-side engine codes a device may receive: they are also counted in the ledger's refusals.
const ENGINE: u8 = CLI | WIRE | LEDGER;

/// The registry.
pub const ALL: &[Code] = &[
    // Config (exit 3).
    c("config-unreadable", false, E3, CLI, "The config file cannot be read."),
    c("config-invalid", false, E3, CLI, "Not valid TOML, or an unknown or missing field (named, with its line)."),
    c("config-field-invalid", false, E3, CLI, "A field fails its check."),
    // HSM (exit 4).
    c("hsm-module-missing", false, E4, CLI, "The module file does not exist."),
    c(
        "hsm-module-load-failed",
        false,
        E4,
        CLI,
        "The module does not load, or the process already uses another module.",
    ),
    c("hsm-module-env-not-applied", false, E4, CLI, "[hsm] module_env is not in the process's environment."),
    c("hsm-init-args-unsupported", false, E4, CLI, "[hsm] init_args is set, and this program cannot pass them."),
    c("hsm-init-failed", true, E4, CLI, "The module loaded but C_Initialize failed."),
    c("hsm-token-not-found", false, E4, CLI, "No token with that label."),
    c("hsm-pin-missing", false, E4, CLI, "Neither STATION_HSM_PIN nor pin_file gives a PIN."),
    c("hsm-pin-file-permissions", false, E4, CLI, "The PIN file has permission bits for group or others."),
    c("hsm-pin-file-unreadable", false, E4, CLI, "The PIN file cannot be read."),
    c("hsm-login-failed", false, E4, ENGINE, "The PIN is wrong."),
    c("hsm-pin-locked", false, E4, ENGINE, "The user PIN is locked."),
    c("hsm-pin-expired", false, E4, ENGINE, "The user PIN has expired."),
    c("hsm-key-missing", false, E4, ENGINE, "No key at the CA's URI."),
    c("hsm-key-exists", false, E4, CLI, "A key with that label is already in the token."),
    c("hsm-uri-invalid", false, E4, ENGINE, "A PKCS#11 URI cannot be parsed, or carries a PIN."),
    c("hsm-key-unusable", false, E4, ENGINE, "The key's type or attributes cannot be used."),
    c("hsm-key-weak", false, E4, CLI, "The token made a key weaker than asked for; it was destroyed."),
    c("hsm-mechanism-missing", false, E4, CLI, "The token offers no mechanism for the key type."),
    c("hsm-unavailable", true, E4, ENGINE, "The HSM is being re-initialised."),
    c("hsm-recovery-stopped", false, E4, ENGINE, "The HSM came back but refused the station (e.g. the PIN)."),
    c("hsm-busy", true, E4, ENGINE, "No HSM session became free in time."),
    c("hsm-operation-failed", true, E4, ENGINE, "A PKCS#11 call failed; the message names the function."),
    // Ledger (exit 5).
    c("ledger-missing", false, E5, CLI, "The ledger file does not exist."),
    c("ledger-create-failed", false, E5, CLI, "init cannot create the ledger."),
    c("ledger-open-failed", true, E5, ENGINE, "SQLite cannot open the file."),
    c("ledger-schema-too-new", false, E5, CLI, "The ledger's schema is newer than this binary."),
    c("ledger-migration-failed", false, E5, CLI, "The schema upgrade failed."),
    c("ledger-sql-failed", true, E5, ENGINE, "An SQL statement failed."),
    c("checkpoint-signing-failed", true, E5, CLI, "The HSM could not sign a checkpoint."),
    c("ledger-write-failed", true, E5, ENGINE, "The group of writes this one was queued in did not commit."),
    c("ledger-corrupt", false, E5, ENGINE, "The ledger is not in the state the operation expects."),
    c("ledger-writer-stopped", true, E5, ENGINE, "The writer thread has stopped."),
    // The audit key and signed manifests.
    c("audit-key-missing", false, E4, CLI, "[audit] key names an audit key the ledger or the token does not have."),
    c("audit-key-exists", false, E2, CLI, "audit key create with a label the ledger already has."),
    c("audit-key-label-invalid", false, E2, CLI, "An audit key label is not 1-64 characters from A-Z a-z 0-9 - _ ."),
    c(
        "manifest-needs-audit-key",
        false,
        E2,
        CLI,
        "audit manifest without [audit] key: a manifest needs the audit key.",
    ),
    c("manifest-selection-invalid", false, E2, CLI, "audit manifest needs --bench and/or --since, or --serials."),
    c("manifest-invalid", false, E9, CLI, "The file is not a station manifest (JWS, flattened JSON)."),
    c("manifest-signature-invalid", false, E9, CLI, "The manifest's signature does not verify: it was altered."),
    c("manifest-untrusted", false, E9, CLI, "The manifest's audit certificate does not chain to the CA."),
    // CA and certificates (exit 6).
    c("ca-name-taken", false, E6, CLI, "A CA with that name exists."),
    c("ca-name-invalid", false, E6, CLI, "The CA name is not 1-64 characters from A-Z a-z 0-9 - _ ."),
    c("ca-not-found", false, E6, CLI, "No CA with that name."),
    c("ca-none-active", false, E6, ENGINE, "No CA is active."),
    c("ca-not-pending", false, E6, CLI, "ca import for a CA that is not pending."),
    c("ca-import-key-mismatch", false, E6, CLI, "The certificate is not for this CA's HSM key."),
    c("ca-import-chain-mismatch", false, E6, CLI, "A certificate is not signed by the next one in --chain."),
    c("ca-wrong-state", false, E6, CLI, "The CA is in the wrong state for the command."),
    c("ca-retire-active", false, E6, CLI, "The active CA cannot be retired."),
    c("subject-invalid", false, E6, CLI, "The subject DN cannot be parsed."),
    c("cert-unparseable", false, E6, CLI, "The file is not a PEM or DER X.509 certificate."),
    c("cert-not-a-ca", false, E6, CLI, "The imported certificate lacks CA:TRUE or keyCertSign."),
    c("cert-not-valid-now", false, E6, CLI, "The imported certificate is not valid now."),
    c("cert-build-failed", false, E6, ENGINE, "Building or signing a certificate failed."),
    // Policy (exit 7).
    c("csr-too-large", false, E7, ENGINE, "The CSR is over 8 KiB."),
    c("csr-malformed", false, E7, ENGINE, "The CSR is not PKCS#10, or its key does not match its algorithm."),
    c("csr-bad-signature", false, E7, ENGINE, "The CSR's self-signature does not verify."),
    c("csr-key-type-not-allowed", false, E7, ENGINE, "The key type is not in [policy] key_types, or not supported."),
    c("csr-key-too-weak", false, E7, ENGINE, "An RSA key under 2048 bits."),
    c("serial-missing", false, E7, ENGINE, "No serial where the station needs one from the device."),
    c("serial-invalid", false, E7, ENGINE, "A serial the station never issues (characters, length, first character)."),
    c("serial-mismatch", false, E7, CLI | LEDGER, "station issue --serial differs from the CSR's CN."),
    c("serial-pattern-mismatch", false, E7, ENGINE, "The serial does not match [policy] serial_pattern."),
    c("serial-not-allowed", false, E7, ENGINE, "A device serial at a station that allocates serials."),
    c("serial-range-exhausted", false, E7, ENGINE, "station mode has used every number up to serial_last."),
    c("serial-already-issued", false, E7, ENGINE, "The serial has a certificate for another key."),
    c("key-reuse", false, E7, ENGINE, "This key has a certificate under another serial."),
    c("reissue-nothing-issued", false, E7, CLI | LEDGER, "--reissue for a serial that has no certificate."),
    c(
        "serial-lease-unavailable",
        true,
        E7,
        ENGINE,
        "station mode with a registry: no leased serial is left and no block could be leased yet.",
    ),
    c("issuance-halted", true, E7, ENGINE, "The daemon stopped new issuance (AWS IoT verification failed or stale)."),
    c("stored-hash-mismatch", true, E7, ENGINE, "The device stored a chain whose SHA-256 differs from the one sent."),
    // AWS IoT (docs/aws.md).
    c("aws-not-configured", false, E3, CLI, "No [aws] regions and no --region."),
    c("aws-region-invalid", false, E3, CLI, "A name that is not an AWS region."),
    c("aws-role-arn-missing", false, E3, CLI | LEDGER, "JITP needs [aws] role_arn / the registered CA has no roleArn."),
    c("aws-template-unreadable", false, E3, CLI, "The JITP template file cannot be read."),
    c("aws-template-invalid", false, E3, CLI | LEDGER, "The JITP template is not valid."),
    c("aws-template-parameter-unfilled", false, E3, CLI | LEDGER, "A template parameter the device subjects lack."),
    c(
        "aws-template-thing-name-invalid",
        false,
        E3,
        CLI | LEDGER,
        "The template's thing name is not a valid, per-device thing name for every serial (a `.`, a character, length).",
    ),
    c(
        "aws-template-attribute-invalid",
        false,
        E3,
        CLI | LEDGER,
        "A thing attribute the template sets cannot hold a value the station issues.",
    ),
    c("aws-ca-not-registrable", false, E6, CLI, "A pending or retired CA cannot be registered."),
    c("aws-verification-cert-invalid", false, E8, CLI, "The verification certificate does not check out locally."),
    c("aws-runtime-failed", true, E1, CLI, "The AWS client runtime cannot start."),
    c("aws-verification-missing", false, E8, CLI, "No verification of the CA in a region (require_verified)."),
    c("aws-verification-stale", false, E8, CLI, "The newest pass is older than max_verification_age."),
    c("aws-verification-failed", false, E8, CLI, "The newest verification in a region did not pass."),
    c("aws-unreachable", true, E8, CLI | LEDGER, "AWS IoT (or the endpoint) cannot be reached."),
    c("aws-timeout", true, E8, CLI | LEDGER, "No answer within [aws] timeout_secs."),
    c("aws-throttled", true, E8, CLI | LEDGER, "Still throttled after [aws] max_attempts."),
    c("aws-credentials-missing", false, E8, CLI | LEDGER, "No AWS credentials found."),
    c("aws-access-denied", false, E8, CLI | LEDGER, "The credentials are not allowed, or not valid."),
    c("aws-ca-not-registered", false, E8, CLI | LEDGER, "The CA is not registered in the region."),
    c("aws-ca-already-registered", false, E8, CLI, "RegisterCACertificate: the CA is registered already."),
    c("aws-call-failed", false, E8, CLI | LEDGER, "Any other AWS error."),
    c("aws-ca-deleted", false, E8, CLI | LEDGER, "The CA was registered and AWS no longer has it."),
    c("aws-certificate-mismatch", false, E8, CLI | LEDGER, "The registered certificate is not the CA's."),
    c("aws-certificate-id-mismatch", false, E8, CLI | LEDGER, "AWS's ID is not the SHA-256 of the CA's DER."),
    c("aws-ca-inactive", false, E8, CLI | LEDGER, "The CA's status is not ACTIVE."),
    c("aws-auto-registration-disabled", false, E8, CLI | LEDGER, "autoRegistrationStatus is not ENABLE."),
    c("aws-certificate-mode-not-default", false, E8, CLI | LEDGER, "certificateMode is not DEFAULT."),
    c("aws-ca-not-valid-now", false, E8, CLI | LEDGER, "The CA is not valid now."),
    c("aws-ca-validity-short", false, E8, CLI | LEDGER, "The CA expires before a device certificate issued now."),
    c("aws-template-missing", false, E8, CLI | LEDGER, "No JITP template with the registered CA."),
    c("aws-subject-limit", false, E8, CLI | LEDGER, "10 CAs already share the subject in the region."),
    // What a device's first connection needs (issue 15): `ca verify` checks, stored as a row's failed_check.
    c("aws-jitr-rule-missing", false, E8, CLI | LEDGER, "JITR: no topic rule selects the CA's registered topic."),
    c("aws-jitr-rule-disabled", false, E8, CLI | LEDGER, "JITR: the topic rule for the CA is disabled."),
    c("aws-jitr-rule-no-action", false, E8, CLI | LEDGER, "JITR: the topic rule for the CA has no action."),
    c("aws-jitp-role-not-found", false, E8, CLI | LEDGER, "JITP: the provisioning role does not exist in IAM."),
    c("aws-jitp-role-trust-missing", false, E8, CLI | LEDGER, "JITP: the role does not trust iot.amazonaws.com."),
    c(
        "aws-jitp-role-permissions-missing",
        false,
        E8,
        CLI | LEDGER,
        "JITP: the role may not do what the template's resources need.",
    ),
    c("aws-jitp-policy-missing", false, E8, CLI | LEDGER, "JITP: an IoT policy the template names does not exist."),
    c("aws-jitp-thing-type-missing", false, E8, CLI | LEDGER, "JITP: a thing type the template names does not exist."),
    c(
        "aws-jitp-thing-group-missing",
        false,
        E8,
        CLI | LEDGER,
        "JITP: a thing group the template names does not exist.",
    ),
    c(
        "aws-iam-read-denied",
        false,
        NONE,
        CLI,
        "An `unknown` check: the credentials may not read the role in IAM (the row still passes).",
    ),
    c("aws-verify-internal", false, E8, CLI | LEDGER, "A pair's check did not finish (an internal error)."),
    // `station aws dry-run`: what the first connection of one certificate would meet.
    c("aws-jitp-certificate-not-active", false, E8, CLI, "The template leaves the device certificate not ACTIVE."),
    c("aws-jitp-attribute-invalid", false, E8, CLI, "A thing attribute AWS IoT refuses (characters, length, count)."),
    c("aws-jitp-policy-invalid", false, E8, CLI, "The template's policy is not a valid AWS IoT policy."),
    c("aws-device-certificate-revoked", false, E8, CLI, "AWS holds the device certificate REVOKED or INACTIVE."),
    c("aws-device-certificate-foreign", false, E8, CLI, "The certificate is not signed by a CA of this station."),
    c("aws-device-certificate-not-valid-now", false, E8, CLI, "The device certificate is not valid now."),
    // Audit findings (exit 9): `station audit reconcile --aws`.
    c("stray-certificate", false, E9, CLI, "AWS IoT holds a certificate under a station CA that no ledger has."),
    c(
        "certificate-inactive-in-aws",
        false,
        E9,
        CLI,
        "AWS holds as REVOKED or INACTIVE a certificate the ledger holds good.",
    ),
    c("superseded-active-in-aws", false, E9, CLI, "A certificate a re-issue replaced is still ACTIVE in AWS."),
    // The fleet registry (exit 10).
    c("registry-not-configured", false, E10, CLI, "A registry command without a [registry] section."),
    c("registry-password-missing", false, E10, CLI, "Neither STATION_REGISTRY_PASSWORD nor password_file gives one."),
    c("registry-password-file-permissions", false, E10, CLI, "The password file has bits for group or others."),
    c("registry-password-file-unreadable", false, E10, CLI, "The password file cannot be read."),
    c("registry-ca-file-unreadable", false, E10, CLI, "[registry] ca_file cannot be read as PEM certificates."),
    c("registry-unreachable", true, E10, CLI, "PostgreSQL cannot be reached, or the connection broke."),
    c("registry-auth-failed", false, E10, CLI, "PostgreSQL refused the role or its password."),
    c("registry-tls-failed", false, E10, CLI, "The TLS handshake or the server's certificate check failed."),
    c("registry-schema-too-new", false, E10, CLI, "The registry's schema is newer than this station."),
    c("registry-schema-missing", false, E10, CLI, "The registry has no schema, or an older one: run registry init."),
    c("registry-station-conflict", false, E10, CLI, "The station id belongs to another station's ledger and key."),
    c("registry-diverged", false, E10, CLI, "The registry's copy of this station differs from its ledger."),
    c("registry-out-of-step", true, E10, CLI, "Another forwarder of this station moved the registry on."),
    c("registry-no-free-block", false, E10, CLI, "Every serial of the prefix's range is leased."),
    c("registry-query-failed", true, E10, CLI, "A statement failed; its transaction was rolled back."),
    // Usage (exit 2).
    c("init-station-exists", false, E2, CLI, "init into a folder that already holds station.toml or station.db."),
    c("output-exists", false, E2, CLI, "ca create --intermediate would overwrite --csr-out."),
    c("registration-code-invalid", false, E2, CLI, "The --registration-code is not 1-64 letters and digits."),
    c("ca-rotate-nothing-active", false, E2, CLI, "ca rotate with no active CA."),
    c("serve-no-benches", false, E2, CLI, "serve has no [[bench]] and no --bench."),
    c("serve-bench-invalid", false, E2, CLI, "A --bench is not NAME=PATH[@BAUD], or repeats a name."),
    // I/O (exit 1).
    c("input-unreadable", true, E1, CLI, "A file given on the command line cannot be read."),
    c("output-unwritable", true, E1, CLI, "An output file cannot be written."),
    c("init-io-failed", true, E1, CLI, "init cannot create or write a file in DIR."),
    c("witness-unwritable", true, E1, CLI, "state_dir/checkpoints.log cannot be written."),
    c("serve-thread-failed", true, E1, CLI, "The daemon cannot start its threads."),
    c("serve-runtime-failed", true, E1, CLI, "The daemon cannot start its runtime."),
    c("serve-signal-failed", true, E1, CLI, "The daemon cannot set up its signal handling."),
    c(
        "serve-thread-died",
        true,
        E1,
        CLI,
        "The daemon's ledger writer thread died; it exits for systemd to restart it.",
    ),
    c("http-bind-failed", true, E1, CLI, "The daemon cannot listen on [http] listen."),
    c(
        "serial-port-busy",
        true,
        E1,
        CLI,
        "Another process holds a bench's serial port: serve stops at start, or the bench retries until it is free.",
    ),
    c("ports-sysfs-unreadable", false, E1, CLI, "station ports cannot read /sys/class/tty."),
    // Operator lines of `station serve` (not errors of a command).
    c("port-lost", true, NONE, CLI, "The device or its cable went away mid-session."),
    c("station-stopped", true, NONE, CLI, "The daemon stopped before the device finished."),
    c("serial-modem-lines-failed", true, NONE, CLI, "A bench's port refused its DTR/RTS settings; the bench retries."),
    // The wire protocol (spec 6.1).
    c("frame-crc-mismatch", true, NONE, WIRE | DEVICE, "A frame's CRC does not match."),
    c("frame-too-large", true, NONE, WIRE | DEVICE, "16,384 bytes without a delimiter."),
    c("frame-malformed", true, NONE, WIRE | DEVICE, "A frame breaks the grammar, or its length field is wrong."),
    c("unsupported-version", false, NONE, WIRE | DEVICE, "A CRC-valid frame of another version."),
    c("unknown-message-type", false, NONE, WIRE | DEVICE, "A CRC-valid version-1 frame of an unknown type."),
    c("message-invalid", false, NONE, WIRE | DEVICE, "A body that breaks section 3."),
    c("unexpected-message", true, NONE, WIRE | CLI, "A valid message the station's state does not allow."),
    c("timeout", true, NONE, WIRE | CLI, "A station timer expired."),
    c("too-many-frame-errors", true, NONE, WIRE | DEVICE | CLI | LEDGER, "Frame errors in a row reached the limit."),
    c("station-stopping", true, NONE, WIRE, "HELLO while the station is shutting down."),
    // Device codes (spec 6.3): recorded as `device-error` events and shown on the operator line.
    c("no-acceptable-key-type", false, NONE, DEVICE | CLI | LEDGER, "None of WELCOME's key types can be made."),
    c("key-generation-failed", true, NONE, DEVICE | CLI | LEDGER, "The device could not make or store its key."),
    c("chain-hash-mismatch", false, NONE, DEVICE | CLI | LEDGER, "CHAIN.sha256 is not the hash of CHAIN.chain."),
    c("chain-unparseable", false, NONE, DEVICE | CLI | LEDGER, "The chain is not PEM certificates that parse."),
    c("chain-key-mismatch", false, NONE, DEVICE | CLI | LEDGER, "The certificate is not for the device's key."),
    c("chain-serial-mismatch", false, NONE, DEVICE | CLI | LEDGER, "The certificate's serial is not CHAIN.serial."),
    c("chain-untrusted", false, NONE, DEVICE | CLI | LEDGER, "The chain does not verify against the trust anchor."),
    c("flash-write-failed", true, NONE, DEVICE | CLI | LEDGER, "Writing or reading back the chain failed."),
    c("done-serial-mismatch", false, NONE, DEVICE | CLI | LEDGER, "DONE names another serial than CHAIN."),
    c("chain-not-idempotent", false, NONE, DEVICE | CLI | LEDGER, "A retry with the same key got another chain."),
    // The simulator's own (its report and exit status 1/2).
    c("reply-timeout", true, NONE, DEVSIM, "No answer from the station within --reply-timeout."),
    c("port-io", true, NONE, DEVSIM, "The simulator's port failed."),
    c("station-answered-noise", false, NONE, DEVSIM, "--misbehave: the station answered a line without @."),
    c("expected-error-missing", false, NONE, DEVSIM, "--misbehave: the station did not answer as required."),
    c("station-accepted-bad-csr", false, NONE, DEVSIM, "--misbehave bad-csr: the station issued a chain."),
    c("serial-needs-count-1", false, E2, DEVSIM, "station-devsim --serial with --count other than 1."),
    c("serial-argument-invalid", false, E2, DEVSIM, "station-devsim: the device serial is not a wire serial."),
    c("model-invalid", false, E2, DEVSIM, "station-devsim --model is not 1-64 printable ASCII."),
    c("ca-unreadable", false, E2, DEVSIM, "station-devsim --ca cannot be read."),
    c("ca-invalid", false, E2, DEVSIM, "station-devsim --ca holds no usable CA certificate."),
    c("out-dir-unwritable", false, E2, DEVSIM, "station-devsim --out cannot be created."),
    c("pregenerate-failed", false, E2, DEVSIM, "station-devsim --pregenerate could not make a key."),
    c("port-open-failed", false, E2, DEVSIM, "station-devsim cannot open its port."),
];

/// The entry for `code`.
pub fn lookup(code: &str) -> Option<&'static Code> {
    ALL.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests;
