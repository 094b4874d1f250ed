//! `station issue`: the manual path through the same engine the bench daemon uses.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::error::Error;
use crate::issue::{Engine, IssueRequest, Outcome};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The device's CSR (PEM or DER, at most 8 KiB).
    #[arg(long)]
    pub csr: PathBuf,
    /// The device serial (else the CSR's CN; with serial_source = "station", only with --reissue).
    #[arg(long)]
    pub serial: Option<String>,
    /// The bench recorded with the issuance.
    #[arg(long, default_value = "manual")]
    pub bench: String,
    /// The operator recorded with the issuance.
    #[arg(long, default_value = "")]
    pub operator: String,
    /// Where to write the chain (device certificate, then the CA certificate and its issuers).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the serial's current certificate (the device has a new key).
    #[arg(long, requires = "reason")]
    pub reissue: bool,
    /// Why the certificate is re-issued (recorded in the ledger).
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn run(cli: &Cli, a: &IssueArgs) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let csr = std::fs::read(&a.csr)
        .map_err(|e| Error::io("input-unreadable", format!("cannot read {}", a.csr.display()), "check the path", e))?;
    // Fail closed: with [aws] require_verified, the active CA must have a fresh passing verification.
    let ledger = st.ledger()?;
    if let Some(ca) = ledger.active_ca()? {
        crate::aws::gate::require_verified(&st.config, &ledger, &ca.name)?;
    }
    drop(ledger);
    let engine = Engine::open(&st.config, st.hsm()?)?;
    let req = IssueRequest {
        csr,
        serial: a.serial.clone(),
        reservation: None,
        bench: a.bench.clone(),
        operator: a.operator.clone(),
        reissue: if a.reissue { a.reason.clone() } else { None },
        ..Default::default()
    };
    let result = engine.issue(&req).and_then(|issued| {
        // The row is durable; only now does the chain leave the station.
        write_atomically(&a.out, issued.chain_pem.as_bytes())?;
        engine.delivered(&issued, &a.bench)?;
        Ok(issued)
    });
    engine.close();
    let issued = result?;
    let what = match issued.outcome {
        Outcome::New => "new",
        Outcome::Repeat => "repeat (identical certificate)",
        Outcome::Reissue => "re-issued",
    };
    let text = format!(
        "{}  {}  CA {}  not after {}\ncertificate id {}\nchain written to {}",
        issued.serial,
        what,
        issued.ca,
        issued.not_after,
        issued.certificate_id,
        a.out.display()
    );
    Ok(Output::new(issued, text))
}

/// Writes a file so that a reader sees all of it or none of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let err = |e| Error::io("output-unwritable", format!("cannot write {}", path.display()), "check the folder", e);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("out")));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}
