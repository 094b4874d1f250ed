//! `registry verify`: every station's hash chain and signed heads re-checked from PostgreSQL alone. A changed,
//! deleted, inserted or reordered event is named (station and seq), and so is a signed head that does not verify,
//! that covers events no longer there, or that was made under a CA the station's own chain never introduced.
//! Across stations: a serial issued by two stations, overlapping serial blocks, and a station-allocated serial
//! outside every block its station leased.

use super::RegistryError;
use super::client::query_error;
use crate::ledger::checkpoints::SignerKind;
use crate::ledger::{GENESIS, chain::row_hash, checkpoints};
use crate::pki;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub station: String,
    pub subject: String,
    pub problem: String,
}

/// Per station: what was checked.
#[derive(Debug, Clone, Serialize)]
pub struct StationChecked {
    pub station: String,
    pub events: i64,
    pub heads: usize,
    pub head_seq: i64,
    pub issuances: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub stations: Vec<StationChecked>,
    pub findings: Vec<Finding>,
}

/// At most this many findings per station and check (the first ones name where to look).
const MAX_PER_CHECK: usize = 5;

fn q(op: &'static str) -> impl Fn(postgres::Error) -> RegistryError {
    move |e| query_error(op, "registry", &e)
}

pub fn verify(c: &mut Client) -> Result<VerifyReport, RegistryError> {
    let stations: Vec<(String, String, i64, String)> = c
        .query("SELECT station_id, genesis_hash, last_seq, last_hash FROM registry.stations ORDER BY station_id", &[])
        .map_err(q("read the stations"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut report = VerifyReport { ok: true, stations: Vec::new(), findings: Vec::new() };
    for (id, genesis, last_seq, last_hash) in &stations {
        let checked = verify_station(c, id, genesis, *last_seq, last_hash, &mut report.findings)?;
        report.stations.push(checked);
    }
    across_stations(c, &mut report.findings)?;
    report.ok = report.findings.is_empty();
    Ok(report)
}

struct Walk {
    events: i64,
    last_seq: i64,
    last_hash: String,
    /// seq → (row_hash, issuances up to it) for the seqs a head signed.
    at_heads: HashMap<i64, (String, i64)>,
    /// CA fingerprint → the seq of the event that introduced it.
    cas: HashMap<String, i64>,
    /// Audit certificate fingerprint → the seq of its `audit-key-created` event.
    audit_keys: HashMap<String, i64>,
    issuances: i64,
}

fn walk_events(
    c: &mut Client,
    id: &str,
    head_seqs: &HashSet<i64>,
    findings: &mut Vec<Finding>,
) -> Result<Walk, RegistryError> {
    let mut w = Walk {
        events: 0,
        last_seq: 0,
        last_hash: GENESIS.into(),
        at_heads: HashMap::new(),
        cas: HashMap::new(),
        audit_keys: HashMap::new(),
        issuances: 0,
    };
    let mut per_check: HashMap<&'static str, usize> = HashMap::new();
    let mut find = |check: &'static str, seq: i64, problem: String| {
        let n = per_check.entry(check).or_default();
        *n += 1;
        if *n <= MAX_PER_CHECK {
            findings.push(Finding { check, station: id.into(), subject: format!("event {seq}"), problem });
        }
    };
    let params: [&(dyn postgres::types::ToSql + Sync); 1] = [&id];
    let mut rows = c
        .query_raw(
            "SELECT seq, at, kind, subject, ref_id, detail, prev_hash, row_hash FROM registry.events \
             WHERE station_id = $1 ORDER BY seq",
            params,
        )
        .map_err(q("read the events"))?;
    let mut expect = 1i64;
    while let Some(r) = rows.next().map_err(q("read the events"))? {
        let (seq, at, kind, subject, ref_id, detail, prev, hash): (
            i64,
            String,
            String,
            String,
            Option<i64>,
            String,
            String,
            String,
        ) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7));
        if seq > expect {
            let gap = if seq == expect + 1 {
                format!("event {expect} is")
            } else {
                format!("events {expect} to {} are", seq - 1)
            };
            find("event-missing", expect, format!("{gap} missing: deleted from the registry"));
        } else if seq < expect {
            find("event-duplicated", seq, "a second row with this seq".into());
        }
        if prev != w.last_hash && seq == expect {
            find(
                "event-link",
                seq,
                "prev_hash is not the previous event's row_hash: a row before it was changed or moved".into(),
            );
        }
        let want = row_hash(&prev, seq, &at, &kind, &subject, ref_id, &detail);
        if want != hash {
            let moved = (seq - 64..=seq + 64)
                .filter(|s| *s != seq && *s > 0)
                .find(|s| row_hash(&prev, *s, &at, &kind, &subject, ref_id, &detail) == hash);
            let problem = match moved {
                Some(s) => format!("this row is event {s}'s, stored as event {seq}: rows were reordered"),
                None => "its content does not hash to its row_hash: the row was changed".into(),
            };
            find(if moved.is_some() { "event-reordered" } else { "event-altered" }, seq, problem);
        }
        if kind == "issued" || kind == "reissued" {
            w.issuances += 1;
        }
        if (kind == "ca-created" || kind == "ca-imported")
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&detail)
            && let Some(fp) = v["fingerprint"].as_str()
        {
            w.cas.entry(fp.to_string()).or_insert(seq);
        }
        if kind == "audit-key-created"
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&detail)
            && let Some(fp) = v["fingerprint"].as_str()
        {
            w.audit_keys.entry(fp.to_string()).or_insert(seq);
        }
        if head_seqs.contains(&seq) {
            w.at_heads.insert(seq, (hash.clone(), w.issuances));
        }
        w.events += 1;
        w.last_seq = seq;
        w.last_hash = hash;
        expect = seq + 1;
    }
    Ok(w)
}

struct HeadRow {
    seq: i64,
    head_hash: String,
    issuances: i64,
    at: String,
    ca_name: String,
    ca_fingerprint: String,
    signed: String,
    signature: String,
    /// The audit key that signed it (schema 2), else the CA's key did.
    audit_key_fingerprint: Option<String>,
}

/// An audit certificate a station signs heads with: its label and issuing CA.
struct AuditCert {
    label: String,
    ca_fingerprint: String,
    cert_der: Vec<u8>,
}

fn verify_station(
    c: &mut Client,
    id: &str,
    genesis: &str,
    last_seq: i64,
    last_hash: &str,
    findings: &mut Vec<Finding>,
) -> Result<StationChecked, RegistryError> {
    let heads: Vec<HeadRow> = c
        .query(
            "SELECT seq, head_hash, issuances, at, ca_name, ca_fingerprint, signed, signature, audit_key_fingerprint \
             FROM registry.heads WHERE station_id = $1 ORDER BY seq",
            &[&id],
        )
        .map_err(q("read the heads"))?
        .iter()
        .map(|r| HeadRow {
            seq: r.get(0),
            head_hash: r.get(1),
            issuances: r.get(2),
            at: r.get(3),
            ca_name: r.get(4),
            ca_fingerprint: r.get(5),
            signed: r.get(6),
            signature: r.get(7),
            audit_key_fingerprint: r.get(8),
        })
        .collect();
    let audit: HashMap<String, AuditCert> = c
        .query(
            "SELECT fingerprint, label, ca_fingerprint, cert_der FROM registry.station_audit_keys WHERE station_id = $1",
            &[&id],
        )
        .map_err(q("read the audit keys"))?
        .iter()
        .map(|r| (r.get(0), AuditCert { label: r.get(1), ca_fingerprint: r.get(2), cert_der: r.get(3) }))
        .collect();
    let certs: HashMap<String, Vec<u8>> = c
        .query("SELECT fingerprint, cert_der FROM registry.station_cas WHERE station_id = $1", &[&id])
        .map_err(q("read the CAs"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let head_seqs: HashSet<i64> = heads.iter().map(|h| h.seq).collect();
    let before = findings.len();
    let w = walk_events(c, id, &head_seqs, findings)?;
    let walk_clean = findings.len() == before;
    // The first event is the station's identity.
    let first: Option<String> = c
        .query_opt("SELECT row_hash FROM registry.events WHERE station_id = $1 AND seq = 1", &[&id])
        .map_err(q("read event 1"))?
        .map(|r| r.get(0));
    let mut find = |check: &'static str, subject: String, problem: String| {
        findings.push(Finding { check, station: id.into(), subject, problem });
    };
    if w.events > 0 && walk_clean && first.as_deref() != Some(genesis) {
        find("station-identity", "event 1".into(), "is not the event the station registered with".into());
    }
    if (w.last_seq, w.last_hash.as_str()) != (last_seq, last_hash) {
        find(
            "station-head",
            format!("event {last_seq}"),
            format!(
                "the station was forwarded up to event {last_seq}, and the registry's events end at event {}{}",
                w.last_seq,
                if w.last_seq < last_seq { ": events at the end were deleted" } else { " with another hash" }
            ),
        );
    }
    let mut bad_heads = 0;
    let mut spki: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    for h in &heads {
        let subject = format!("signed head at event {}", h.seq);
        let problem = head_problem(h, &w, &certs, &audit, &mut spki);
        if let Some(problem) = problem {
            bad_heads += 1;
            if bad_heads <= MAX_PER_CHECK {
                find("signed-head", subject, problem);
            }
        }
    }
    if w.events > 0 && heads.last().is_none_or(|h| h.seq < w.last_seq) {
        find(
            "signed-head",
            format!("event {}", w.last_seq),
            "no signed head covers the last events: they were inserted without the station".into(),
        );
    }
    Ok(StationChecked {
        station: id.into(),
        events: w.events,
        heads: heads.len(),
        head_seq: heads.last().map_or(0, |h| h.seq),
        issuances: w.issuances,
    })
}

fn head_problem(
    h: &HeadRow,
    w: &Walk,
    certs: &HashMap<String, Vec<u8>>,
    audit: &HashMap<String, AuditCert>,
    spki: &mut HashMap<String, Option<Vec<u8>>>,
) -> Option<String> {
    let Some(cert) = certs.get(&h.ca_fingerprint) else {
        return Some(format!("its CA {} ({}) is not among the station's CAs", h.ca_name, h.ca_fingerprint));
    };
    if pki::sha256_hex(cert) != h.ca_fingerprint {
        return Some(format!("the certificate stored for CA {} is not the one its fingerprint names", h.ca_name));
    }
    // Who signed: the CA's key, or an audit key whose certificate that CA issued.
    let (signer_fp, signer_cert, text, whose) = match &h.audit_key_fingerprint {
        None => (
            &h.ca_fingerprint,
            cert,
            checkpoints::message(h.seq, &h.head_hash, h.issuances, &h.at, &h.ca_name),
            "the station's CA certificate".to_string(),
        ),
        Some(fp) => {
            let Some(a) = audit.get(fp) else {
                return Some(format!("its audit key ({fp}) is not among the station's audit keys"));
            };
            if pki::sha256_hex(&a.cert_der) != *fp {
                return Some(format!(
                    "the certificate stored for audit key {} is not the one its fingerprint names",
                    a.label
                ));
            }
            if a.ca_fingerprint != h.ca_fingerprint || !pki::signed_by(&a.cert_der, cert) {
                return Some(format!("the audit certificate of {} is not issued by CA {}", a.label, h.ca_name));
            }
            match w.audit_keys.get(fp) {
                Some(introduced) if *introduced <= h.seq => {}
                _ => {
                    return Some(format!(
                        "it is signed by audit key {}, which the station's chain never introduced",
                        a.label
                    ));
                }
            }
            (
                fp,
                &a.cert_der,
                checkpoints::message_by(SignerKind::AuditKey, h.seq, &h.head_hash, h.issuances, &h.at, &a.label),
                format!("audit key {}'s certificate", a.label),
            )
        }
    };
    let key = spki.entry(signer_fp.clone()).or_insert_with(|| pki::inspect(signer_cert).ok().map(|i| i.spki_der));
    let text_ok = h.signed == text;
    let sig_ok = key
        .as_ref()
        .zip(hex::decode(&h.signature).ok())
        .is_some_and(|(k, sig)| pki::verify_with_spki(k, h.signed.as_bytes(), &sig));
    if !text_ok || !sig_ok {
        return Some(format!("its signature does not verify under {whose}: forged or altered"));
    }
    match w.cas.get(&h.ca_fingerprint) {
        Some(introduced) if *introduced <= h.seq => {}
        _ => return Some(format!("it is signed by CA {}, which the station's chain never introduced", h.ca_name)),
    }
    match w.at_heads.get(&h.seq) {
        None if h.seq > w.last_seq => Some(format!(
            "it signed event {}, and the registry's events end at {}: events were deleted",
            h.seq, w.last_seq
        )),
        None => Some(format!("event {} it signed is missing", h.seq)),
        Some((hash, _)) if *hash != h.head_hash => {
            Some(format!("event {} no longer has the hash this head signed: the chain was rewritten", h.seq))
        }
        Some((_, n)) if *n != h.issuances => {
            Some(format!("it signed {} issuances up to event {}, and the registry holds {n}", h.issuances, h.seq))
        }
        Some(_) => None,
    }
}

/// Serials issued by two stations; leases that overlap; station serials outside their station's leases.
fn across_stations(c: &mut Client, findings: &mut Vec<Finding>) -> Result<(), RegistryError> {
    for r in c
        .query(
            "SELECT serial, array_agg(DISTINCT station_id ORDER BY station_id) FROM registry.issuances \
             GROUP BY serial HAVING count(DISTINCT station_id) > 1 ORDER BY serial LIMIT 20",
            &[],
        )
        .map_err(q("look for serials issued twice"))?
    {
        let (serial, stations): (Option<String>, Vec<String>) = (r.get(0), r.get(1));
        findings.push(Finding {
            check: "serial-on-two-stations",
            station: stations.join(","),
            subject: serial.unwrap_or_default(),
            problem: format!("issued by {} stations: {}", stations.len(), stations.join(", ")),
        });
    }
    for r in c
        .query(
            "SELECT a.id, a.station_id, b.id, b.station_id, a.prefix FROM registry.leases a JOIN registry.leases b \
             ON a.prefix = b.prefix AND a.id < b.id AND a.first <= b.last AND b.first <= a.last LIMIT 20",
            &[],
        )
        .map_err(q("look for overlapping leases"))?
    {
        let (a, sa, b, sb, prefix): (i64, String, i64, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        findings.push(Finding {
            check: "lease-overlap",
            station: format!("{sa},{sb}"),
            subject: format!("leases {a} and {b}"),
            problem: format!("blocks of {prefix} overlap"),
        });
    }
    // Station-allocated serials: prefix + digits, where the station leased blocks of that prefix.
    let leases: Vec<(String, String, i64, i64)> = c
        .query("SELECT station_id, prefix, first, last FROM registry.leases", &[])
        .map_err(q("read the leases"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let mut by_station: BTreeMap<&str, Vec<(&str, i64, i64)>> = BTreeMap::new();
    for (s, p, f, l) in &leases {
        by_station.entry(s.as_str()).or_default().push((p.as_str(), *f, *l));
    }
    for (station, blocks) in by_station {
        let prefixes: HashSet<&str> = blocks.iter().map(|b| b.0).collect();
        let mut outside = 0;
        for r in c
            .query("SELECT serial, seq FROM registry.issuances WHERE station_id = $1 AND NOT reissue", &[&station])
            .map_err(q("read the issuances"))?
        {
            let (serial, seq): (Option<String>, i64) = (r.get(0), r.get(1));
            let serial = serial.unwrap_or_default();
            let Some(prefix) = prefixes.iter().copied().find(|p| serial.starts_with(p)) else { continue };
            let Ok(n) = serial[prefix.len()..].parse::<i64>() else { continue };
            if !blocks.iter().any(|(p, f, l)| *p == prefix && (*f..=*l).contains(&n)) {
                outside += 1;
                if outside <= MAX_PER_CHECK {
                    findings.push(Finding {
                        check: "serial-outside-lease",
                        station: station.into(),
                        subject: format!("event {seq}"),
                        problem: format!("serial {serial} lies in no block leased to this station"),
                    });
                }
            }
        }
    }
    Ok(())
}
