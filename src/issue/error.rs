use crate::error::{Coded, exit};

/// Why the station refused to issue. Every variant is a policy decision, not a fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IssueError {
    #[error("CSR is {size} bytes; the limit is {limit}")]
    CsrTooLarge { size: usize, limit: usize },
    #[error("CSR cannot be parsed: {0}")]
    CsrMalformed(String),
    #[error("CSR signature does not verify: {0}")]
    CsrBadSignature(String),
    #[error("device key type {found} is not allowed (allowed: {allowed})")]
    KeyTypeNotAllowed { found: String, allowed: String },
    #[error("device key is too weak: {0}")]
    KeyTooWeak(String),
    #[error("no serial: {0}")]
    SerialMissing(String),
    #[error("serial {serial:?} {why}")]
    SerialInvalid { serial: String, why: String },
    #[error("serial {given:?} does not match the CSR's CN {cn:?}")]
    SerialMismatch { given: String, cn: String },
    #[error("serial {serial:?} does not match the pattern {pattern:?}")]
    SerialPattern { serial: String, pattern: String },
    #[error("this station allocates serials; a device serial ({0:?}) is not accepted")]
    SerialNotAllowed(String),
    #[error("no leased serial is left, and no new block could be leased from the registry: {0}")]
    SerialLeaseUnavailable(String),
    #[error("the serial range is used up ({prefix}{first}..{prefix}{last})")]
    SerialRangeExhausted { prefix: String, first: u64, last: u64 },
    #[error("serial {serial:?} already has a certificate for another key (issued {issued_at} under CA {ca})")]
    SerialAlreadyIssued { serial: String, issued_at: String, ca: String },
    #[error("this key already has a certificate for serial {serial:?}")]
    KeyReuse { serial: String },
    #[error("re-issue for serial {0:?} was asked for, but it has no certificate yet")]
    NothingToReissue(String),
    #[error("issuance is halted: {0}")]
    Halted(String),
    #[error("the device stored a chain for {serial:?} whose SHA-256 differs from the one sent")]
    StoredHashMismatch { serial: String },
}

impl Coded for IssueError {
    fn code(&self) -> &'static str {
        match self {
            IssueError::CsrTooLarge { .. } => "csr-too-large",
            IssueError::CsrMalformed(_) => "csr-malformed",
            IssueError::CsrBadSignature(_) => "csr-bad-signature",
            IssueError::KeyTypeNotAllowed { .. } => "csr-key-type-not-allowed",
            IssueError::KeyTooWeak(_) => "csr-key-too-weak",
            IssueError::SerialMissing(_) => "serial-missing",
            IssueError::SerialInvalid { .. } => "serial-invalid",
            IssueError::SerialMismatch { .. } => "serial-mismatch",
            IssueError::SerialPattern { .. } => "serial-pattern-mismatch",
            IssueError::SerialNotAllowed(_) => "serial-not-allowed",
            IssueError::SerialRangeExhausted { .. } => "serial-range-exhausted",
            IssueError::SerialLeaseUnavailable(_) => "serial-lease-unavailable",
            IssueError::SerialAlreadyIssued { .. } => "serial-already-issued",
            IssueError::KeyReuse { .. } => "key-reuse",
            IssueError::NothingToReissue(_) => "reissue-nothing-issued",
            IssueError::Halted(_) => "issuance-halted",
            IssueError::StoredHashMismatch { .. } => "stored-hash-mismatch",
        }
    }
    fn hint(&self) -> String {
        match self {
            IssueError::CsrTooLarge { .. } => "send a plain PKCS#10 request (a P-256 CSR is about 450 bytes)".into(),
            IssueError::CsrMalformed(_) => "send a PKCS#10 CSR in PEM or DER".into(),
            IssueError::CsrBadSignature(_) => {
                "the device must sign its CSR with the key it asks a certificate for; regenerate it".into()
            }
            IssueError::KeyTypeNotAllowed { .. } => {
                "generate an allowed key type on the device, or add it to [policy] key_types".into()
            }
            IssueError::KeyTooWeak(_) => "use RSA 2048 bits or more, or EC P-256/P-384".into(),
            IssueError::SerialMissing(_) => {
                "give the device its serial (HELLO's serial; --serial for `station issue`), or let the station \
                 allocate serials: [policy] serial_source = \"station\""
                    .into()
            }
            IssueError::SerialInvalid { .. } => {
                "serials are 1-64 characters of A-Z a-z 0-9 : - (and . where no JITP template makes the thing name \
                 from them), starting with a letter or digit"
                    .into()
            }
            IssueError::SerialMismatch { .. } => "make --serial and the CSR's CN agree, or leave one out".into(),
            IssueError::SerialPattern { .. } => {
                "check the device's serial; [policy] serial_pattern says what is accepted".into()
            }
            IssueError::SerialNotAllowed(_) => {
                "this station allocates serials ([policy] serial_source = \"station\"): leave the serial out, or \
                 use a station with serial_source = \"device\""
                    .into()
            }
            IssueError::SerialRangeExhausted { .. } => "widen [policy] serial_last, or start a new prefix".into(),
            IssueError::SerialLeaseUnavailable(_) => {
                "the station leases serial blocks from the fleet registry; bring the registry back (`station \
                 registry status`); devices retry by themselves and issuing resumes with the next block"
                    .into()
            }
            IssueError::SerialAlreadyIssued { .. } => {
                "if this device really has a new key, re-issue with --reissue --reason TEXT".into()
            }
            IssueError::KeyReuse { .. } => {
                "each device must generate its own key; regenerate the key on this device".into()
            }
            IssueError::NothingToReissue(_) => "issue it normally, without --reissue".into(),
            IssueError::Halted(_) => "fix the cause named above; in-flight devices finish".into(),
            IssueError::StoredHashMismatch { .. } => {
                "start again from HELLO; the station re-sends the identical chain".into()
            }
        }
    }
    fn exit_status(&self) -> i32 {
        exit::POLICY
    }
    fn retryable(&self) -> bool {
        match self {
            // Halted: issuance resumes once the cause is fixed. A stored-hash mismatch: the device starts again from
            // HELLO and gets the identical chain.
            IssueError::Halted(_) | IssueError::StoredHashMismatch { .. } => true,
            // The lease keeper leases the next block as soon as the registry answers.
            IssueError::SerialLeaseUnavailable(_) => true,
            IssueError::CsrTooLarge { .. }
            | IssueError::CsrMalformed(_)
            | IssueError::CsrBadSignature(_)
            | IssueError::KeyTypeNotAllowed { .. }
            | IssueError::KeyTooWeak(_)
            | IssueError::SerialMissing(_)
            | IssueError::SerialInvalid { .. }
            | IssueError::SerialMismatch { .. }
            | IssueError::SerialPattern { .. }
            | IssueError::SerialNotAllowed(_)
            | IssueError::SerialRangeExhausted { .. }
            | IssueError::SerialAlreadyIssued { .. }
            | IssueError::KeyReuse { .. }
            | IssueError::NothingToReissue(_) => false,
        }
    }
}
