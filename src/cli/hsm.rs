//! `station hsm status`: module, token, login, the mechanisms the station uses per key type, and the
//! keys with their security attributes.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::hsm::{KeyAttributes, KeyTypePlan};
use serde::Serialize;

#[derive(Debug, clap::Subcommand)]
pub enum HsmCommand {
    /// Probe the module and token, log in, and list the mechanisms used and the keys.
    Status,
}

#[derive(Serialize)]
struct Status {
    module: String,
    library: String,
    token_label: String,
    manufacturer: String,
    model: String,
    serial: String,
    login: &'static str,
    max_sessions: usize,
    mechanisms: Vec<KeyTypePlan>,
    keys: Vec<KeyView>,
}

#[derive(Serialize)]
struct KeyView {
    #[serde(flatten)]
    attributes: KeyAttributes,
    /// The station CA using this key, if any.
    ca: Option<String>,
    locked_down: bool,
    weaknesses: Vec<&'static str>,
}

pub fn run(cli: &Cli, cmd: &HsmCommand) -> Result<Box<dyn Report>> {
    let HsmCommand::Status = cmd;
    let st = Station::load(cli)?;
    let hsm = st.hsm()?;
    let token = hsm.token();
    let cas = st.ledger().and_then(|l| Ok(l.cas()?)).unwrap_or_default();
    let keys: Vec<KeyView> = hsm
        .list_private_keys()?
        .into_iter()
        .map(|a| {
            let ca = cas.iter().find(|c| c.name == a.label).map(|c| c.name.clone());
            KeyView { locked_down: a.is_locked_down(), weaknesses: a.weaknesses(), attributes: a, ca }
        })
        .collect();
    let status = Status {
        module: hsm.module().display().to_string(),
        library: hsm.library(),
        token_label: hsm.token_label().into(),
        manufacturer: token.manufacturer,
        model: token.model,
        serial: token.serial,
        login: "ok",
        max_sessions: hsm.state().2,
        mechanisms: hsm.plans(),
        keys,
    };
    let text = render(&status);
    Ok(Output::new(status, text))
}

fn render(s: &Status) -> String {
    let mut text = format!(
        "module:  {}\nlibrary: {}\ntoken:   {:?} ({} {}, serial {})\nlogin:   ok\nsessions: at most {}\nmechanisms the station uses:\n",
        s.module, s.library, s.token_label, s.manufacturer, s.model, s.serial, s.max_sessions
    );
    for p in &s.mechanisms {
        let or_not = |m: &Option<String>| m.clone().unwrap_or_else(|| "not offered".into());
        text += &format!(
            "  {:<9} generate: {}\n            sign:     {}\n",
            p.key_type,
            or_not(&p.generate),
            or_not(&p.sign)
        );
        if !p.missing.is_empty() {
            text += &format!("            ({})\n", p.missing.join("; "));
        }
    }
    text += &format!("keys:    {}\n", s.keys.len());
    for k in &s.keys {
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
            if k.locked_down { "OK".to_string() } else { format!("WEAK ({})", k.weaknesses.join(", ")) },
            k.ca.as_ref().map(|c| format!(" (CA {c})")).unwrap_or_default()
        );
    }
    text.trim_end().to_string()
}
