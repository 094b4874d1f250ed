use crate::error::{Coded, exit};

/// A CA lifecycle failure.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("a CA named {name:?} already exists")]
    NameTaken { name: String },
    #[error("CA name {name:?} is not valid")]
    BadName { name: String },
    #[error("no CA named {name:?}")]
    NotFound { name: String },
    #[error("no CA is active")]
    NoneActive,
    #[error("CA {name:?} is {state}, not pending")]
    NotPending { name: String, state: &'static str },
    #[error("the certificate for {subject} does not carry the HSM key of CA {name:?}")]
    ImportKeyMismatch { name: String, subject: String },
    #[error("CA {name:?} is {state}; it must be {wanted}")]
    WrongState { name: String, state: &'static str, wanted: &'static str },
    #[error("CA {name:?} is the active CA and cannot be retired")]
    RetireActive { name: String },
    #[error("the chain given for CA {name:?} does not verify: {subject} is not signed by the next certificate")]
    ChainMismatch { name: String, subject: String },
}

impl Coded for CaError {
    fn code(&self) -> &'static str {
        match self {
            CaError::NameTaken { .. } => "ca-name-taken",
            CaError::BadName { .. } => "ca-name-invalid",
            CaError::NotFound { .. } => "ca-not-found",
            CaError::NoneActive => "ca-none-active",
            CaError::NotPending { .. } => "ca-not-pending",
            CaError::ImportKeyMismatch { .. } => "ca-import-key-mismatch",
            CaError::ChainMismatch { .. } => "ca-import-chain-mismatch",
            CaError::WrongState { .. } => "ca-wrong-state",
            CaError::RetireActive { .. } => "ca-retire-active",
        }
    }
    fn hint(&self) -> String {
        match self {
            CaError::NameTaken { .. } => "choose another name; `station ca list` shows the names in use".into(),
            CaError::BadName { .. } => "use 1-64 characters from A-Z a-z 0-9 - _ . (e.g. ca-2026-11)".into(),
            CaError::NotFound { .. } => {
                "`station ca list` shows the CAs; create one with `station ca create --name NAME`".into()
            }
            CaError::NoneActive => {
                "create a CA (`station ca create`) or activate one (`station ca activate NAME`)".into()
            }
            CaError::NotPending { .. } => "only a CA made with `ca create --intermediate` takes `ca import`".into(),
            CaError::ImportKeyMismatch { .. } => {
                "import the certificate the root signed for this CA's CSR, not another one".into()
            }
            CaError::ChainMismatch { .. } => "give --chain with the issuers of the certificate, nearest first".into(),
            CaError::WrongState { .. } => "`station ca list` shows each CA's state".into(),
            CaError::RetireActive { .. } => {
                "activate the new CA first (`station ca activate NEW`), then retire this one".into()
            }
        }
    }
    fn exit_status(&self) -> i32 {
        exit::CA
    }
    fn retryable(&self) -> bool {
        match self {
            CaError::NameTaken { .. }
            | CaError::BadName { .. }
            | CaError::NotFound { .. }
            | CaError::NoneActive
            | CaError::NotPending { .. }
            | CaError::ImportKeyMismatch { .. }
            | CaError::WrongState { .. }
            | CaError::RetireActive { .. }
            | CaError::ChainMismatch { .. } => false,
        }
    }
}
