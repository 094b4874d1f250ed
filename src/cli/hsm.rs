//! `station hsm status`: module, token, login, and the CA keys with their security attributes.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::hsm::KeyAttributes;
use serde::Serialize;

#[derive(Debug, clap::Subcommand)]
pub enum HsmCommand {
    /// Probe the module and token, log in, and list the keys.
    Status,
}

#[derive(Serialize)]
struct Status {
    module: String,
    token_label: String,
    manufacturer: String,
    model: String,
    serial: String,
    login: &'static str,
    keys: Vec<KeyView>,
}

#[derive(Serialize)]
struct KeyView {
    #[serde(flatten)]
    attributes: KeyAttributes,
    /// The station CA using this key, if any.
    ca: Option<String>,
    locked_down: bool,
}

pub fn run(cli: &Cli, cmd: &HsmCommand) -> Result<Box<dyn Report>> {
    let HsmCommand::Status = cmd;
    let st = Station::load(cli)?;
    let hsm = st.hsm()?;
    let info = hsm.token_info()?;
    let cas = st.ledger().and_then(|l| Ok(l.cas()?)).unwrap_or_default();
    let keys: Vec<KeyView> = hsm
        .list_private_keys()?
        .into_iter()
        .map(|a| {
            let ca = cas.iter().find(|c| c.name == a.label).map(|c| c.name.clone());
            KeyView { locked_down: a.is_locked_down(), attributes: a, ca }
        })
        .collect();
    let status = Status {
        module: hsm.module().display().to_string(),
        token_label: hsm.token_label().into(),
        manufacturer: info.manufacturer_id().trim().into(),
        model: info.model().trim().into(),
        serial: info.serial_number().trim().into(),
        login: "ok",
        keys,
    };
    let mut text = format!(
        "module:  {}\ntoken:   {:?} ({} {}, serial {})\nlogin:   ok\nkeys:    {}\n",
        status.module,
        status.token_label,
        status.manufacturer,
        status.model,
        status.serial,
        status.keys.len()
    );
    for k in &status.keys {
        let a = &k.attributes;
        text += &format!(
            "  {:<20} {:<4} sensitive={} extractable={} never_extractable={} sign={} decrypt={} unwrap={} derive={}  {}{}\n",
            a.label,
            a.key_type.as_deref().unwrap_or("?"),
            a.sensitive,
            a.extractable,
            a.never_extractable,
            a.sign,
            a.decrypt,
            a.unwrap,
            a.derive,
            if k.locked_down { "OK" } else { "WEAK" },
            k.ca.as_ref().map(|c| format!(" (CA {c})")).unwrap_or_default()
        );
    }
    Ok(Output::new(status, text.trim_end()))
}
