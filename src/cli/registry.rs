//! `station registry …`: the fleet registry on PostgreSQL. `init` and `push` act for this station; the other
//! commands answer questions across the factory from the registry alone (no HSM, no ledger needed).

use super::{Cli, Output, Report, Station};
use crate::Result;
use crate::error::exit;
use crate::registry::{self, RegistryError, Target, queries};

#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// Create or migrate the registry's schema (refuses a newer one).
    Init,
    /// Forward this station's ledger events the registry lacks, with signed heads (for a station not serving).
    Push,
    /// Per station: the last event forwarded, lag, last seen, backlog.
    Status,
    /// Which station issued a serial, on which bench, under which CA, when, and its state.
    Find { serial: String },
    /// Re-check every station's hash chain and signed heads from the registry; names what was changed.
    Verify,
    /// Every issuance of the factory as CSV or JSON.
    Export(ExportArgs),
    /// Compare a production order's serials (one per line) with what every station issued.
    Reconcile {
        #[arg(long)]
        expected: std::path::PathBuf,
    },
    /// Lease a serial block now if fewer than --below serials are left (station mode; `serve` does this itself).
    Lease {
        #[arg(long, default_value_t = 1)]
        below: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: crate::audit::export::Format,
    /// Issued at or after (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this station.
    #[arg(long)]
    pub station: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(cli: &Cli, cmd: &RegistryCommand) -> Result<Box<dyn Report>> {
    let st = Station::load(cli)?;
    let r = st.config.registry.clone().ok_or(RegistryError::NotConfigured)?;
    match cmd {
        RegistryCommand::Init => init(&r),
        RegistryCommand::Push => push(&st),
        RegistryCommand::Lease { below } => lease(&st, &r, *below),
        RegistryCommand::Status => status(&r),
        RegistryCommand::Find { serial } => find(&r, serial),
        RegistryCommand::Verify => verify(&r),
        RegistryCommand::Export(a) => export(&r, a),
        RegistryCommand::Reconcile { expected } => reconcile(&r, expected),
    }
}

fn client(r: &crate::config::RegistrySection) -> Result<postgres::Client> {
    Ok(Target::new(r)?.connect()?)
}

fn init(r: &crate::config::RegistrySection) -> Result<Box<dyn Report>> {
    let rep = registry::init(r)?;
    let text = if rep.applied.is_empty() {
        format!("registry schema is at version {}: nothing to do", rep.to)
    } else {
        format!("registry schema migrated from version {} to {} (applied {:?})", rep.from, rep.to, rep.applied)
    };
    Ok(Output::new(rep, text))
}

fn push(st: &Station) -> Result<Box<dyn Report>> {
    let signer =
        registry::signer::HeadSigner::new(st.hsm()?, st.config.ledger.path.clone(), st.config.audit.key.clone());
    let rep = registry::forward::push(&st.config, &signer)?;
    let text = format!(
        "station {} → registry {}: {} event(s) in {} batch(es), registry now at event {} ({:.2} s)",
        rep.station, rep.registry, rep.events, rep.batches, rep.to_seq, rep.seconds
    );
    Ok(Output::new(rep, text))
}

fn lease(st: &Station, r: &crate::config::RegistrySection, below: u64) -> Result<Box<dyn Report>> {
    let writer = crate::ledger::Writer::start(&st.config.ledger.path, 1)?;
    let out = registry::leases::top_up(&st.config, r, &writer, below, true);
    writer.close();
    let t = out?;
    let serial = |n: u64| format!("{}{n:0w$}", st.config.policy.serial_prefix, w = st.config.policy.serial_width);
    let mut text = String::new();
    for l in &t.adopted {
        text += &format!(
            "adopted lease {} ({} to {}) the ledger had not recorded\n",
            l.id,
            serial(l.first),
            serial(l.last)
        );
    }
    match &t.leased {
        Some(l) => text += &format!("leased block {}: {} to {}\n", l.id, serial(l.first), serial(l.last)),
        None => text += "no new block needed\n",
    }
    text += &format!("{} leased serial(s) in hand", t.remaining);
    Ok(Output::new(t, text))
}

fn status(r: &crate::config::RegistrySection) -> Result<Box<dyn Report>> {
    let rows = queries::status(&mut client(r)?)?;
    let mut text = format!(
        "{:<20} {:>10} {:>10} {:>8} {:>8} {:>9}  {:<30} CAS\n",
        "STATION", "FORWARDED", "LEDGER", "BACKLOG", "LAG", "ISSUED", "LAST SEEN"
    );
    for s in &rows {
        text += &format!(
            "{:<20} {:>10} {:>10} {:>8} {:>8} {:>9}  {:<30} {}\n",
            s.station,
            s.forwarded_seq,
            s.ledger_seq,
            s.backlog,
            s.lag_secs.map_or("-".into(), |l| format!("{l:.0}s")),
            s.issuances,
            format!("{} ({:.0}s ago)", s.last_seen, s.seconds_since_seen),
            s.cas.join(",")
        );
    }
    if rows.is_empty() {
        text += "(no station has reported yet)";
    }
    Ok(Output::new(rows, text.trim_end()))
}

fn find(r: &crate::config::RegistrySection, serial: &str) -> Result<Box<dyn Report>> {
    let rows = queries::find(&mut client(r)?, serial)?;
    let mut text = String::new();
    for i in &rows {
        text += &format!(
            "{}  station {}  bench {}  CA {}  issued {}  {}{}  certificate {}\n",
            i.serial,
            i.station,
            if i.bench.is_empty() { "-" } else { &i.bench },
            i.ca,
            i.issued_at,
            i.state,
            if i.reissue { " (re-issue)" } else { "" },
            i.certificate_id
        );
    }
    let status = if rows.is_empty() {
        text = format!("{serial} is not in the registry");
        exit::AUDIT
    } else {
        0
    };
    let mut out = Output::new(serde_json::json!({ "serial": serial, "issuances": rows }), text.trim_end());
    out.status = status;
    Ok(out)
}

fn verify(r: &crate::config::RegistrySection) -> Result<Box<dyn Report>> {
    let rep = registry::verify::verify(&mut client(r)?)?;
    let mut text = String::new();
    for s in &rep.stations {
        text += &format!(
            "station {:<20} events {:>8}  signed heads {:>5} (last at event {})  issuances {}\n",
            s.station, s.events, s.heads, s.head_seq, s.issuances
        );
    }
    if rep.ok {
        text += "result: OK, every station's chain and signed heads verify";
    } else {
        text += "result: FAILED\n";
        for f in &rep.findings {
            text += &format!("  [{}] station {} {}: {}\n", f.check, f.station, f.subject, f.problem);
        }
    }
    let status = if rep.ok { 0 } else { exit::AUDIT };
    let mut out = Output::new(rep, text.trim_end());
    out.status = status;
    Ok(out)
}

fn export(r: &crate::config::RegistrySection, a: &ExportArgs) -> Result<Box<dyn Report>> {
    use crate::audit::export::Format;
    let mut c = client(r)?;
    let filter = queries::ExportFilter { since: a.since.clone(), station: a.station.clone() };
    let sink: Box<dyn std::io::Write> = match &a.out {
        Some(path) => Box::new(std::fs::File::create(path).map_err(|e| {
            crate::Error::io("output-unwritable", format!("cannot write {}", path.display()), "check the path", e)
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = std::io::BufWriter::new(sink);
    let n = match a.format {
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut w);
            csv.write_record([
                "station",
                "serial",
                "certificate_id",
                "ca",
                "ca_fingerprint",
                "bench",
                "operator",
                "issued_at",
                "not_after",
                "state",
                "reissue",
                "issuance_id",
                "seq",
            ])
            .map_err(csv_io)?;
            let n = queries::export(&mut c, &filter, |i| {
                csv.write_record([
                    i.station.as_str(),
                    &cell(&i.serial),
                    &i.certificate_id,
                    &cell(&i.ca),
                    i.ca_fingerprint.as_deref().unwrap_or(""),
                    &cell(&i.bench),
                    &cell(&i.operator),
                    &i.issued_at,
                    &i.not_after,
                    &i.state,
                    if i.reissue { "true" } else { "false" },
                    &i.issuance_id.map(|n| n.to_string()).unwrap_or_default(),
                    &i.seq.to_string(),
                ])
                .map_err(|e| std::io::Error::other(e.to_string()))
            })?;
            csv.flush().map_err(|e| csv_io(e.into()))?;
            n
        }
        Format::Json => {
            use std::io::Write;
            let io = |e| crate::Error::io("output-unwritable", "cannot write the export", "check the path", e);
            w.write_all(b"[").map_err(io)?;
            let mut first = true;
            let n = queries::export(&mut c, &filter, |i| {
                if !first {
                    w.write_all(b",\n")?;
                }
                first = false;
                serde_json::to_writer(&mut w, i).map_err(std::io::Error::other)
            })?;
            w.write_all(b"]\n").map_err(io)?;
            n
        }
    };
    std::io::Write::flush(&mut w)
        .map_err(|e| crate::Error::io("output-unwritable", "cannot write the export", "check the path", e))?;
    let text = format!(
        "{n} issuance(s) exported{}",
        a.out.as_ref().map(|p| format!(" to {}", p.display())).unwrap_or_default()
    );
    let mut out = Output::new(serde_json::json!({ "rows": n, "out": a.out }), text);
    out.printed = a.out.is_none();
    Ok(out)
}

fn csv_io(e: csv::Error) -> crate::Error {
    crate::Error::io(
        "output-unwritable",
        "cannot write the export",
        "check the path",
        std::io::Error::other(e.to_string()),
    )
}

/// A CSV cell a spreadsheet will not run as a formula (as `audit export`).
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() }
}

fn reconcile(r: &crate::config::RegistrySection, expected: &std::path::Path) -> Result<Box<dyn Report>> {
    let order = std::fs::read_to_string(expected).map_err(|e| {
        crate::Error::io("input-unreadable", format!("cannot read {}", expected.display()), "one serial per line", e)
    })?;
    let rep = queries::reconcile(&mut client(r)?, &order)?;
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let twice: Vec<String> =
        rep.issued_more_than_once.iter().map(|(s, n, st)| format!("{s} ({n}x: {})", st.join("+"))).collect();
    let text = format!(
        "expected {} serial(s); the registry holds {} across the factory\nexpected, not issued:    {}\nissued, not expected:    {}\nissued more than once:   {}\nissued, never confirmed: {}\nresult: {}",
        rep.expected,
        rep.issued,
        list(&rep.expected_not_issued),
        list(&rep.issued_not_expected),
        list(&twice),
        list(&rep.issued_never_confirmed),
        if rep.clean() { "OK, the order and the registry agree" } else { "DIFFERENCES" }
    );
    let status = if rep.clean() { 0 } else { exit::AUDIT };
    let mut out = Output::new(rep, text);
    out.status = status;
    Ok(out)
}
