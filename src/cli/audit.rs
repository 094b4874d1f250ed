//! `station audit …`: what auditors run.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::audit;
use crate::error::exit;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and every issuance against its event and certificate.
    Verify,
}

pub fn run(cli: &Cli, cmd: &AuditCommand) -> Result<Box<dyn Report>> {
    let AuditCommand::Verify = cmd;
    let st = Station::load(cli)?;
    let ledger = st.ledger()?;
    let quiet = cli.json;
    let report = audit::verify(&ledger, |what, n| {
        if !quiet {
            eprintln!("  … {n} {what} checked");
        }
    })?;
    let mut text = format!(
        "events:     {} (hash chain head {})\nissuances:  {}\n",
        report.events, report.chain_head, report.issuances
    );
    if report.ok {
        text += "result:     OK, the ledger is intact";
    } else {
        text += "result:     FAILED\n";
        for f in &report.findings {
            text += &format!("  [{}] {}: {}\n", f.check, f.subject, f.problem);
        }
    }
    let status = if report.ok { 0 } else { exit::AUDIT };
    let mut out = Output::new(report, text.trim_end());
    out.status = status;
    Ok(out)
}
