//! `station audit manifest …`: a signed list of devices a customer verifies without the station's database, and
//! `station audit manifest verify` for that check.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::audit::manifest::{self, Selection};
use crate::audit::{AuditError, key::AuditKey};
use crate::error::Error;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ManifestArgs {
    #[command(subcommand)]
    pub command: Option<ManifestCommand>,
    /// The devices issued on this bench (the ledger has no batches: a production run is a bench and a time window).
    #[arg(long)]
    pub bench: Option<String>,
    /// Issued at or after (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Issued at or before (RFC 3339, or YYYY-MM-DD for the whole day).
    #[arg(long)]
    pub until: Option<String>,
    /// Exactly the serials in this file (one per line; blank lines and # comments skipped).
    #[arg(long, conflicts_with_all = ["bench", "since", "until"])]
    pub serials: Option<PathBuf>,
    /// Write the manifest (JWS, flattened JSON) here.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ManifestCommand {
    /// Verify a manifest's signature and that its audit certificate chains to the CA; print the count.
    Verify {
        file: PathBuf,
        /// The CA certificate(s) to trust (PEM or DER) [default: the station's CAs, from its ledger]
        #[arg(long)]
        ca: Option<PathBuf>,
    },
}

pub fn run(cli: &Cli, a: &ManifestArgs) -> Result<Box<dyn Report>> {
    match &a.command {
        Some(ManifestCommand::Verify { file, ca }) => verify(cli, file, ca.as_deref()),
        None => create(cli, a),
    }
}

fn create(cli: &Cli, a: &ManifestArgs) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let out = a.out.as_ref().ok_or_else(|| AuditError::ManifestSelection("give --out M.json".into()))?;
    let selection = match &a.serials {
        Some(path) => Selection::Serials(read_serials(path)?),
        None if a.bench.is_none() && a.since.is_none() && a.until.is_none() => {
            return Err(AuditError::ManifestSelection("no devices chosen".into()).into());
        }
        None => {
            for d in [&a.since, &a.until].into_iter().flatten() {
                check_date(d)?;
            }
            Selection::Filter { bench: a.bench.clone(), since: a.since.clone(), until: a.until.clone() }
        }
    };
    let label = st.config.audit.key.clone().ok_or(AuditError::ManifestNeedsKey)?;
    let ledger = st.ledger()?;
    let audit = AuditKey::load(&st.hsm()?, ledger.conn(), &label)?;
    let payload = manifest::build(&ledger, &st.config.station.id, &selection)?;
    let text = manifest::sign(&ledger, &audit, &payload)?;
    super::issue::write_atomically(out, text.as_bytes())?;
    let alg = manifest::alg(audit.key.key_type());
    let summary = format!(
        "manifest of {} device(s) signed by audit key {label} ({alg}) written to {}",
        payload.count,
        out.display()
    );
    let json = serde_json::json!({ "count": payload.count, "out": out, "alg": alg, "audit_key": label,
                                   "audit_fingerprint": audit.row.fingerprint });
    Ok(Output::new(json, summary))
}

fn verify(cli: &Cli, file: &Path, ca: Option<&Path>) -> Result<Box<dyn Report>> {
    let read = |p: &Path| {
        std::fs::read(p)
            .map_err(|e| Error::io("input-unreadable", format!("cannot read {}", p.display()), "check the path", e))
    };
    let anchors = match ca {
        Some(p) => crate::pki::certs_from_bytes(&read(p)?)?,
        // Without --ca: every CA of this station, from its ledger.
        None => Station::load(cli)?.ledger()?.cas()?.into_iter().filter_map(|c| c.cert_der).collect(),
    };
    let text = String::from_utf8_lossy(&read(file)?).into_owned();
    let v = manifest::verify(&file.display().to_string(), &text, &anchors)?;
    let summary = format!(
        "manifest OK: {} device(s) from station {}, created {}\nsigned by {} ({}, certificate {}…), which chains to {}",
        v.count,
        v.station,
        v.created_at,
        v.signer,
        v.alg,
        v.signer_fingerprint.get(..16).unwrap_or_default(),
        v.ca
    );
    Ok(Output::new(v, summary))
}

fn read_serials(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::io("input-unreadable", format!("cannot read {}", path.display()), "one serial per line", e)
    })?;
    let serials: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    if serials.is_empty() {
        return Err(AuditError::ManifestSelection(format!("{} lists no serial", path.display())).into());
    }
    Ok(serials)
}

fn check_date(d: &str) -> Result<()> {
    let fmt = time::format_description::well_known::Rfc3339;
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if time::OffsetDateTime::parse(d, &fmt).is_ok() || time::Date::parse(d, &date).is_ok() {
        return Ok(());
    }
    Err(AuditError::ManifestSelection(format!("{d:?} is not RFC 3339 or YYYY-MM-DD")).into())
}
