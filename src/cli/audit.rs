//! `station audit …`: what auditors run.

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::audit;
use crate::error::exit;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, every issuance against its event, certificate and CA, duplicates,
    /// the CA keys in the HSM, and every checkpoint.
    Verify {
        /// Do not open the HSM (an auditor's copy of the ledger): skips the key-presence check.
        #[arg(long)]
        no_hsm: bool,
    },
    /// Sign the current chain head with the audit key ([audit] key), or the active CA's key, and store it.
    Checkpoint,
    /// The dedicated audit key: create, show.
    #[command(subcommand)]
    Key(super::audit_key::KeyCommand),
    /// A signed list of devices (JWS with the audit certificate), and `manifest verify`.
    Manifest(super::audit_manifest::ManifestArgs),
    /// One row per issuance, streamed, as CSV or a JSON array.
    Export(ExportArgs),
    /// Compare a production order's serial list (one per line) with what was issued, or (--aws) every
    /// certificate AWS IoT holds under the station's CAs with what was issued.
    Reconcile(ReconcileArgs),
    /// Counts of issuances, re-issues and refusals (by code).
    Stats {
        #[arg(long, value_enum, default_value = "day")]
        by: audit::stats::By,
    },
}

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// A production order: one serial per line.
    #[arg(long, required_unless_present = "aws", conflicts_with = "aws")]
    pub expected: Option<std::path::PathBuf>,
    /// List every certificate AWS IoT holds under each of the station's CAs (with [registry], every station's
    /// CAs) and compare: strays, revoked or inactive ones, and which devices have connected.
    #[arg(long)]
    pub aws: bool,
    /// A region to list (repeatable) [default: [aws] regions]
    #[arg(long = "region", value_name = "REGION", requires = "aws")]
    pub regions: Vec<String>,
    /// Send the calls here instead of AWS [default: [aws] endpoint_url]
    #[arg(long, value_name = "URL", requires = "aws")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: audit::export::Format,
    /// Issued at or after (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Issued at or before (RFC 3339, or YYYY-MM-DD for the whole day).
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub bench: Option<String>,
    #[arg(long)]
    pub ca: Option<String>,
    #[arg(long)]
    pub serial: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(cli: &Cli, cmd: &AuditCommand) -> Result<Box<dyn Report>> {
    match cmd {
        AuditCommand::Verify { no_hsm } => verify(cli, *no_hsm),
        AuditCommand::Checkpoint => checkpoint(cli),
        AuditCommand::Key(k) => super::audit_key::run(cli, k),
        AuditCommand::Manifest(m) => super::audit_manifest::run(cli, m),
        AuditCommand::Export(a) => export(cli, a),
        AuditCommand::Reconcile(a) => match &a.expected {
            Some(expected) => reconcile(cli, expected),
            None => reconcile_aws(cli, a),
        },
        AuditCommand::Stats { by } => stats(cli, *by),
    }
}

fn export(cli: &Cli, a: &ExportArgs) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let ledger = st.ledger()?;
    let filter = audit::export::Filter {
        since: a.since.clone(),
        until: a.until.clone(),
        bench: a.bench.clone(),
        ca: a.ca.clone(),
        serial: a.serial.clone(),
    };
    let (n, printed) = match &a.out {
        Some(path) => {
            let io = |e| {
                crate::Error::io("output-unwritable", format!("cannot write {}", path.display()), "check the path", e)
            };
            let f = std::fs::File::create(path).map_err(io)?;
            let mut w = std::io::BufWriter::new(f);
            (audit::export::export(&ledger, &filter, a.format, &mut w)?, false)
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            (audit::export::export(&ledger, &filter, a.format, &mut w)?, true)
        }
    };
    let text = format!(
        "{n} issuance(s) exported{}",
        a.out.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default()
    );
    let mut out = Output::new(serde_json::json!({ "rows": n, "out": a.out }), text);
    out.printed = printed;
    Ok(out)
}

fn reconcile(cli: &Cli, expected: &std::path::Path) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let text = std::fs::read_to_string(expected).map_err(|e| {
        crate::Error::io("input-unreadable", format!("cannot read {}", expected.display()), "one serial per line", e)
    })?;
    let r = audit::reconcile::reconcile(&st.ledger()?, &text)?;
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let twice: Vec<String> = r.issued_more_than_once.iter().map(|(s, n)| format!("{s} ({n}x)")).collect();
    let text = format!(
        "expected {} serial(s); the ledger holds {}\nexpected, not issued:    {}\nissued, not expected:    {}\nissued more than once:   {}\nissued, never confirmed: {}\nresult: {}",
        r.expected,
        r.issued,
        list(&r.expected_not_issued),
        list(&r.issued_not_expected),
        list(&twice),
        list(&r.issued_never_confirmed),
        if r.clean() { "OK, the order and the ledger agree" } else { "DIFFERENCES" }
    );
    let status = if r.clean() { 0 } else { exit::AUDIT };
    let mut out = Output::new(r, text);
    out.status = status;
    Ok(out)
}

fn reconcile_aws(cli: &Cli, a: &ReconcileArgs) -> Result<Box<dyn Report>> {
    use audit::aws_reconcile::{self, AwsReconciliation, Findings, LedgerIssued, RegistryIssued};
    let st = Station::load(cli)?;
    let overrides =
        crate::aws::Overrides { regions: a.regions.clone(), endpoint_url: a.endpoint_url.clone(), mode: None };
    let settings = crate::aws::Settings::resolve(&st.config, &overrides)?;
    let quiet = cli.json;
    let progress = |p: &aws_reconcile::Pair| {
        if !quiet {
            match &p.error {
                None => eprintln!("  … {} {}: {} listed, {} stray", p.region, p.ca, p.listed, p.stray),
                Some(e) => eprintln!("  … {} {}: error[{}] {}", p.region, p.ca, e.code, e.message),
            }
        }
    };
    let ledger;
    let r: AwsReconciliation = match &st.config.registry {
        Some(reg) => {
            let target = crate::registry::Target::new(reg)?;
            let mut src = RegistryIssued::new(target.connect()?, &target.name)?;
            aws_reconcile::reconcile(&settings, &mut src, &progress)?
        }
        None => {
            ledger = st.ledger()?;
            let mut src = LedgerIssued::new(&ledger, &st.config.station.id, &st.config.ledger.path)?;
            aws_reconcile::reconcile(&settings, &mut src, &progress)?
        }
    };
    let mut text = format!("AWS IoT against the {}\n", r.source);
    for p in &r.pairs {
        text += &match &p.error {
            None => format!(
                "  {:<16} {:<16} {:>9} listed {:>9} issued here {:>6} stray\n",
                p.region, p.ca, p.listed, p.known, p.stray
            ),
            Some(e) => format!(
                "  {:<16} {:<16} NOT READ: error[{}] {}\n    hint: {}\n",
                p.region, p.ca, e.code, e.message, e.remedy
            ),
        };
    }
    text += &format!(
        "\nconnected (AWS holds the certificate), current issuances:\n  {:<10} {:<16} {:<12} {:<16} {:>8} {:>9} {:>8}\n",
        "DAY", "STATION", "BENCH", "CA", "ISSUED", "CONNECTED", "PENDING"
    );
    for g in &r.groups {
        text += &format!(
            "  {:<10} {:<16} {:<12} {:<16} {:>8} {:>9} {:>8}\n",
            g.day,
            g.station,
            if g.bench.is_empty() { "-" } else { &g.bench },
            g.ca,
            g.issued,
            g.connected,
            g.pending_activation
        );
    }
    let list = |title: &str, code: &str, f: &Findings| {
        let mut s = format!("\n{title}: {}", f.count);
        if f.count > 0 {
            s += &format!("  [{code}]");
        }
        for x in &f.listed {
            s += &format!(
                "\n  {} {} {} {}{}",
                x.region,
                x.ca,
                x.certificate_id,
                x.aws_status,
                match (&x.serial, &x.station) {
                    (Some(s), Some(st)) =>
                        format!(" serial {s} station {st} bench {}", x.bench.as_deref().unwrap_or("-")),
                    _ => format!(
                        " created {}{}",
                        x.aws_created.as_deref().unwrap_or("?"),
                        x.subject.as_ref().map(|s| format!(" subject {s}")).unwrap_or_default()
                    ),
                }
            );
        }
        if (f.listed.len() as u64) < f.count {
            s += &format!(
                "\n  … and {} more (--json lists the first {})",
                f.count - f.listed.len() as u64,
                f.listed.len()
            );
        }
        s
    };
    text += &list("stray: under a station CA, in no ledger", "stray-certificate", &r.stray);
    text += &list("REVOKED or INACTIVE in AWS, good in the ledger", "certificate-inactive-in-aws", &r.inactive_in_aws);
    text +=
        &list("re-issued in the ledger, old one still ACTIVE in AWS", "superseded-active-in-aws", &r.superseded_active);
    let codes = r.codes();
    let status = if !codes.is_empty() {
        text += &format!("\nresult: DIFFERENCES ({})", codes.join(", "));
        exit::AUDIT
    } else if let Some(e) = r.first_error() {
        text += &format!("\nresult: INCOMPLETE, a region could not be read (error[{}])", e.code);
        exit::AWS
    } else {
        text += "\nresult: OK, every certificate AWS holds under the station's CAs was issued by the station";
        0
    };
    let mut out = Output::new(serde_json::json!({ "codes": codes, "ok": r.clean(), "reconciliation": r }), text);
    out.status = status;
    Ok(out)
}

fn stats(cli: &Cli, by: audit::stats::By) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let groups = audit::stats::stats(&st.ledger()?, by)?;
    let mut text = format!(
        "{:<24} {:>9} {:>9} {:>10}  REFUSALS\n",
        format!("{by:?}").to_uppercase(),
        "ISSUED",
        "REISSUED",
        "CONFIRMED"
    );
    for g in &groups {
        let refusals: Vec<String> = g.refusals.iter().map(|(c, n)| format!("{c}={n}")).collect();
        text += &format!(
            "{:<24} {:>9} {:>9} {:>10}  {}\n",
            if g.key.is_empty() { "-" } else { &g.key },
            g.issued,
            g.reissued,
            g.confirmed,
            if refusals.is_empty() { "-".into() } else { refusals.join(" ") }
        );
    }
    Ok(Output::new(groups, text.trim_end()))
}

fn checkpoint(cli: &Cli) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let mut ledger = st.ledger()?;
    let state_dir = &st.config.station.state_dir;
    // Checkpoints a crash left out of the witness file are written first, even if signing fails below.
    let restored = audit::checkpoint::reconcile_witness(state_dir, ledger.conn())?;
    let hsm = st.hsm()?;
    let cp = match audit::key::AuditKey::configured(&st.config, &hsm, ledger.conn())? {
        Some(a) => audit::checkpoint::create(&mut ledger, &audit::key::Signer::Audit(&a), state_dir)?,
        None => {
            let ca = ledger.active_ca()?.ok_or(crate::ca::CaError::NoneActive)?;
            let key = crate::ca::signing_key(&hsm, &ca)?;
            audit::checkpoint::create(&mut ledger, &audit::key::Signer::Ca { name: &ca.name, key: &key }, state_dir)?
        }
    };
    let who = if cp.signer_kind == "audit-key" { "audit key" } else { "CA" };
    let mut text = format!(
        "checkpoint {} signed by {who} {}: event {} (head {}), {} issuances",
        cp.id, cp.ca_name, cp.seq, cp.head_hash, cp.issuances
    );
    if restored > 0 {
        text += &format!("\nwitness file: {restored} checkpoint(s) missing from it were restored from the ledger");
    }
    let mut json = serde_json::to_value(&cp).unwrap_or_default();
    json["witness_restored"] = restored.into();
    Ok(Output::new(json, text))
}

fn verify(cli: &Cli, no_hsm: bool) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let ledger = st.ledger()?;
    let hsm = if no_hsm { None } else { Some(st.hsm()?) };
    let quiet = cli.json;
    let report = audit::verify(&ledger, &st.config.station.state_dir, hsm.as_ref(), |what, n| {
        if !quiet {
            eprintln!("  … {n} {what} checked");
        }
    })?;
    let mut text = format!(
        "events:      {} (hash chain head {})\nissuances:   {}\ncheckpoints: {}\nHSM keys:    {}\n",
        report.events,
        report.chain_head,
        report.issuances,
        report.checkpoints,
        if report.hsm_checked { "checked" } else { "not checked (--no-hsm)" }
    );
    for s in &report.checkpoint_signers {
        let who = if s.kind == "audit-key" { "audit key" } else { "CA" };
        let fp = s.fingerprint.get(..16).unwrap_or("unknown");
        text += &format!(
            "  signed by:  {who} {} (certificate {fp}…): {} checkpoint(s), {} to {}\n",
            s.name, s.checkpoints, s.first, s.last
        );
    }
    for w in &report.warnings {
        text += &format!("warning:     [{}] {}: {}\n", w.check, w.subject, w.problem);
    }
    if report.ok {
        text += "result:      OK, the ledger is intact";
    } else {
        text += "result:      FAILED\n";
        for f in &report.findings {
            text += &format!("  [{}] {}: {}\n", f.check, f.subject, f.problem);
        }
    }
    let status = if report.ok { 0 } else { exit::AUDIT };
    let mut out = Output::new(report, text.trim_end());
    out.status = status;
    Ok(out)
}
