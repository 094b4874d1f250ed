//! `station audit key create | show`: the dedicated audit key that signs checkpoints and manifests.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::audit::key;
use crate::ledger::AuditKeyRow;
use crate::pki::{self, KeyType};

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Make the audit key in the CA's token and have the active CA issue its certificate.
    Create {
        /// The key's label in the token [default: [audit] key, else station-audit]
        #[arg(long)]
        label: Option<String>,
        /// ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096
        #[arg(long, default_value = "ec-p256")]
        key_type: KeyType,
    },
    /// The audit key and its certificate.
    Show {
        /// [default: [audit] key, else station-audit]
        #[arg(long)]
        label: Option<String>,
        /// Print the certificate as PEM only.
        #[arg(long)]
        pem: bool,
    },
}

/// The label when none is given and `[audit] key` is not set.
pub const DEFAULT_LABEL: &str = "station-audit";

pub fn run(cli: &Cli, cmd: &KeyCommand) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let label = |given: &Option<String>| {
        given.clone().or_else(|| st.config.audit.key.clone()).unwrap_or_else(|| DEFAULT_LABEL.to_string())
    };
    match cmd {
        KeyCommand::Create { label: l, key_type } => {
            let label = label(l);
            let mut ledger = st.ledger()?;
            let row = key::create(&st.hsm()?, &mut ledger, &st.config.station.id, &label, *key_type)?;
            let mut text = describe(&row)?;
            if st.config.audit.key.as_deref() != Some(label.as_str()) {
                text += &format!(
                    "\nnext: set [audit] key = \"{label}\" in station.toml; checkpoints and manifests are then signed with it"
                );
            }
            Ok(Output::new(json(&row)?, text))
        }
        KeyCommand::Show { label: l, pem } => {
            let label = label(l);
            let row = st.ledger()?.audit_key(&label)?.ok_or_else(|| crate::audit::AuditError::KeyMissing {
                label: label.clone(),
                why: "the ledger has no audit key by that label".into(),
            })?;
            let text = if *pem { pki::cert_pem(&row.cert_der).trim_end().to_string() } else { describe(&row)? };
            Ok(Output::new(json(&row)?, text))
        }
    }
}

fn describe(row: &AuditKeyRow) -> Result<String> {
    let info = pki::inspect(&row.cert_der)?;
    Ok(format!(
        "audit key {} ({}) at {}\ncertificate: {} issued by CA {}, valid until {}\nfingerprint: {}",
        row.label,
        row.key_type,
        row.key_uri,
        info.subject,
        row.ca_name,
        pki::rfc3339(info.not_after),
        row.fingerprint
    ))
}

fn json(row: &AuditKeyRow) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["certificate_pem"] = pki::cert_pem(&row.cert_der).into();
    Ok(v)
}
