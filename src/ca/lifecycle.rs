//! Rotation: activate a ready CA (atomically, a ledger event) and retire an old one.

use super::CaError;
use crate::Result;
use crate::ledger::{CaState, Ledger};

/// Switches issuance to `name`. Returns the CA that was active before.
pub fn activate(ledger: &mut Ledger, name: &str) -> Result<Option<String>> {
    let row = super::find(ledger, name)?;
    match row.state {
        CaState::Ready | CaState::Active => Ok(ledger.activate_ca(name)?),
        other => Err(CaError::WrongState { name: name.into(), state: other.as_str(), wanted: "ready" }.into()),
    }
}

/// Ends issuance under `name` locally. The active CA cannot be retired: activate another first.
pub fn retire(ledger: &mut Ledger, name: &str, aws: serde_json::Value) -> Result<()> {
    let row = super::find(ledger, name)?;
    match row.state {
        CaState::Active => Err(CaError::RetireActive { name: name.into() }.into()),
        CaState::Retired => Err(CaError::WrongState { name: name.into(), state: "retired", wanted: "ready" }.into()),
        _ => Ok(ledger.retire_ca(name, aws)?),
    }
}
