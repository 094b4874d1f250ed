//! `audit export`: one row per issuance, streamed (a million rows never sit in memory).

use crate::Result;
use crate::ledger::{Ledger, LedgerError};
use serde::Serialize;
use std::io::Write;

/// Which rows to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub bench: Option<String>,
    pub ca: Option<String>,
    pub serial: Option<String>,
}

/// One exported issuance.
#[derive(Debug, Serialize)]
pub struct ExportRow {
    pub serial: String,
    pub certificate_id: String,
    pub fingerprint_sha256: String,
    pub ca: String,
    pub bench: String,
    pub operator: String,
    pub issued_at: String,
    pub not_after: String,
    pub state: String,
    pub reissue_of: Option<i64>,
    pub reissue_reason: Option<String>,
    pub certificate_serial: String,
    pub id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// Writes the rows to `out`; returns how many.
pub fn export(ledger: &Ledger, filter: &Filter, format: Format, out: &mut dyn Write) -> Result<u64> {
    let (sql, args) = query(filter);
    let mut st = ledger.conn().prepare(&sql).map_err(LedgerError::sql("export"))?;
    let mut rows = st.query(rusqlite::params_from_iter(args.iter())).map_err(LedgerError::sql("export"))?;
    let io = |e: std::io::Error| {
        crate::Error::io("output-unwritable", "cannot write the export", "check the destination", e)
    };
    let mut n = 0u64;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            while let Some(r) = rows.next().map_err(LedgerError::sql("export"))? {
                let row = read_row(r).map_err(LedgerError::sql("export"))?;
                w.serialize(Sanitized(&row)).map_err(|e| io(std::io::Error::other(e)))?;
                n += 1;
            }
            w.flush().map_err(io)?;
        }
        Format::Json => {
            out.write_all(b"[").map_err(io)?;
            while let Some(r) = rows.next().map_err(LedgerError::sql("export"))? {
                let row = read_row(r).map_err(LedgerError::sql("export"))?;
                if n > 0 {
                    out.write_all(b",\n").map_err(io)?;
                }
                serde_json::to_writer(&mut *out, &row).map_err(|e| io(std::io::Error::other(e)))?;
                n += 1;
            }
            out.write_all(b"]\n").map_err(io)?;
            out.flush().map_err(io)?;
        }
    }
    Ok(n)
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExportRow> {
    Ok(ExportRow {
        id: r.get(0)?,
        serial: r.get(1)?,
        certificate_id: r.get(2)?,
        fingerprint_sha256: r.get(2)?,
        ca: r.get(3)?,
        bench: r.get(4)?,
        operator: r.get(5)?,
        issued_at: r.get(6)?,
        not_after: r.get(7)?,
        state: r.get(8)?,
        reissue_of: r.get(9)?,
        reissue_reason: r.get(10)?,
        certificate_serial: r.get(11)?,
    })
}

fn query(f: &Filter) -> (String, Vec<String>) {
    let mut sql = "SELECT id, serial, cert_id, ca_name, bench, operator, issued_at, not_after, state, reissue_of, \
                   reissue_reason, cert_serial FROM issuances WHERE 1 = 1"
        .to_string();
    let mut args = Vec::new();
    let mut add = |clause: &str, v: String| {
        args.push(v);
        sql += &format!(" AND {clause} ?{}", args.len());
    };
    if let Some(s) = &f.since {
        add("issued_at >=", s.clone());
    }
    if let Some(u) = &f.until {
        // A bare date includes that whole day.
        add("issued_at <=", if u.len() == 10 { format!("{u}T23:59:59Z") } else { u.clone() });
    }
    if let Some(b) = &f.bench {
        add("bench =", b.clone());
    }
    if let Some(c) = &f.ca {
        add("ca_name =", c.clone());
    }
    if let Some(s) = &f.serial {
        add("serial =", s.clone());
    }
    sql += " ORDER BY id";
    (sql, args)
}

/// CSV cells that a spreadsheet would run as a formula get a leading apostrophe.
struct Sanitized<'a>(&'a ExportRow);

impl Serialize for Sanitized<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.0;
        let c = |v: &str| -> String {
            if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_string() }
        };
        let mut st = s.serialize_struct("ExportRow", 13)?;
        st.serialize_field("serial", &c(&r.serial))?;
        st.serialize_field("certificate_id", &r.certificate_id)?;
        st.serialize_field("fingerprint_sha256", &r.fingerprint_sha256)?;
        st.serialize_field("ca", &c(&r.ca))?;
        st.serialize_field("bench", &c(&r.bench))?;
        st.serialize_field("operator", &c(&r.operator))?;
        st.serialize_field("issued_at", &r.issued_at)?;
        st.serialize_field("not_after", &r.not_after)?;
        st.serialize_field("state", &r.state)?;
        st.serialize_field("reissue_of", &r.reissue_of)?;
        st.serialize_field("reissue_reason", &r.reissue_reason.as_deref().map(c))?;
        st.serialize_field("certificate_serial", &r.certificate_serial)?;
        st.serialize_field("id", &r.id)?;
        st.end()
    }
}
