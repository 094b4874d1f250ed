//! Questions across the factory, answered from the registry alone: status per station, where a serial was issued,
//! an export of every issuance, and a production order reconciled against all stations.

use super::RegistryError;
use super::client::query_error;
use postgres::Client;
use serde::Serialize;

fn q(op: &'static str) -> impl Fn(postgres::Error) -> RegistryError {
    move |e| query_error(op, "registry", &e)
}

/// One station as the registry sees it.
#[derive(Debug, Clone, Serialize)]
pub struct StationStatus {
    pub station: String,
    pub host: String,
    /// The last event forwarded, and when the station recorded it.
    pub forwarded_seq: i64,
    pub last_event_at: Option<String>,
    /// The station's own head at its last report, and what the registry lacks of it.
    pub ledger_seq: i64,
    pub backlog: i64,
    /// Seconds from the last forwarded event's time to its arrival (the forwarding lag of the last batch).
    pub lag_secs: Option<f64>,
    pub last_seen: String,
    pub seconds_since_seen: f64,
    pub issuances: i64,
    pub cas: Vec<String>,
    pub leases: i64,
}

pub fn status(c: &mut Client) -> Result<Vec<StationStatus>, RegistryError> {
    let rows = c
        .query(
            "SELECT s.station_id, s.host, s.last_seq, e.at, s.ledger_seq, GREATEST(s.ledger_seq - s.last_seq, 0),
                    EXTRACT(EPOCH FROM (e.received_at - (e.at)::timestamptz))::float8,
                    to_char(s.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    EXTRACT(EPOCH FROM (now() - s.last_seen))::float8,
                    (SELECT count(*) FROM registry.events i WHERE i.station_id = s.station_id
                        AND i.kind IN ('issued', 'reissued')),
                    ARRAY(SELECT ca_name FROM registry.station_cas c WHERE c.station_id = s.station_id
                        ORDER BY first_seen),
                    (SELECT count(*) FROM registry.leases l WHERE l.station_id = s.station_id)
               FROM registry.stations s
               LEFT JOIN registry.events e ON e.station_id = s.station_id AND e.seq = s.last_seq
              ORDER BY s.station_id",
            &[],
        )
        .map_err(q("read the stations"))?;
    Ok(rows
        .iter()
        .map(|r| StationStatus {
            station: r.get(0),
            host: r.get(1),
            forwarded_seq: r.get(2),
            last_event_at: r.get(3),
            ledger_seq: r.get(4),
            backlog: r.get(5),
            lag_secs: r.get(6),
            last_seen: r.get(7),
            seconds_since_seen: r.get(8),
            issuances: r.get(9),
            cas: r.get(10),
            leases: r.get(11),
        })
        .collect())
}

/// One issuance as the registry holds it (the `registry.issuances` view).
#[derive(Debug, Clone, Serialize)]
pub struct Issuance {
    pub station: String,
    pub serial: String,
    pub certificate_id: String,
    pub ca: String,
    pub ca_fingerprint: Option<String>,
    pub bench: String,
    pub operator: String,
    pub issued_at: String,
    pub not_after: String,
    pub state: String,
    pub reissue: bool,
    pub issuance_id: Option<i64>,
    pub seq: i64,
}

const ISSUANCE_SELECT: &str = "SELECT i.station_id, i.serial, i.certificate_id, i.ca,
        (SELECT c.fingerprint FROM registry.station_cas c WHERE c.station_id = i.station_id AND c.ca_name = i.ca
          ORDER BY c.first_seen DESC LIMIT 1),
        COALESCE(i.bench, ''), COALESCE(i.operator, ''), i.issued_at, i.not_after, i.state, i.reissue,
        i.issuance_id, i.seq
   FROM registry.issuances i";

fn issuance(r: &postgres::Row) -> Issuance {
    Issuance {
        station: r.get(0),
        serial: r.get::<_, Option<String>>(1).unwrap_or_default(),
        certificate_id: r.get::<_, Option<String>>(2).unwrap_or_default(),
        ca: r.get::<_, Option<String>>(3).unwrap_or_default(),
        ca_fingerprint: r.get(4),
        bench: r.get(5),
        operator: r.get(6),
        issued_at: r.get::<_, Option<String>>(7).unwrap_or_default(),
        not_after: r.get::<_, Option<String>>(8).unwrap_or_default(),
        state: r.get(9),
        reissue: r.get(10),
        issuance_id: r.get(11),
        seq: r.get(12),
    }
}

/// Every issuance of a serial, on every station, oldest first.
pub fn find(c: &mut Client, serial: &str) -> Result<Vec<Issuance>, RegistryError> {
    let sql = format!("{ISSUANCE_SELECT} WHERE i.serial = $1 ORDER BY i.issued_at, i.station_id, i.seq");
    Ok(c.query(&sql, &[&serial]).map_err(q("find the serial"))?.iter().map(issuance).collect())
}

/// The filter of `registry export`.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Issued at or after (RFC 3339 or YYYY-MM-DD, compared as text in the ledger's format).
    pub since: Option<String>,
    pub station: Option<String>,
}

/// Streams every issuance that passes the filter to `each`, in (station, seq) order.
pub fn export(
    c: &mut Client,
    f: &ExportFilter,
    mut each: impl FnMut(&Issuance) -> std::io::Result<()>,
) -> Result<u64, crate::Error> {
    let sql = format!(
        "{ISSUANCE_SELECT} WHERE ($1::text IS NULL OR i.issued_at >= $1) AND ($2::text IS NULL OR i.station_id = $2)
          ORDER BY i.station_id, i.seq"
    );
    let mut n = 0;
    let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&f.since, &f.station];
    let mut rows = c.query_raw(&sql, params).map_err(q("export"))?;
    use postgres::fallible_iterator::FallibleIterator;
    while let Some(r) = rows.next().map_err(q("export"))? {
        each(&issuance(&r)).map_err(|e| {
            crate::Error::io("output-unwritable", "cannot write the export", "check the path or the pipe", e)
        })?;
        n += 1;
    }
    Ok(n)
}

/// `registry reconcile`: a production order's serials against every station's issuances.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconcile {
    pub expected: usize,
    pub issued: usize,
    pub expected_not_issued: Vec<String>,
    pub issued_not_expected: Vec<String>,
    /// Serials with more than one certificate: (serial, count, stations).
    pub issued_more_than_once: Vec<(String, i64, Vec<String>)>,
    pub issued_never_confirmed: Vec<String>,
}

impl Reconcile {
    pub fn clean(&self) -> bool {
        self.expected_not_issued.is_empty()
            && self.issued_not_expected.is_empty()
            && self.issued_more_than_once.is_empty()
            && self.issued_never_confirmed.is_empty()
    }
}

pub fn reconcile(c: &mut Client, order: &str) -> Result<Reconcile, RegistryError> {
    let expected: std::collections::BTreeSet<String> =
        order.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    let rows = c
        .query(
            "SELECT serial, count(*), array_agg(DISTINCT station_id ORDER BY station_id), bool_or(state = 'confirmed')
               FROM registry.issuances GROUP BY serial ORDER BY serial",
            &[],
        )
        .map_err(q("read the issuances"))?;
    let mut r = Reconcile { expected: expected.len(), issued: rows.len(), ..Default::default() };
    let mut issued = std::collections::BTreeSet::new();
    for row in &rows {
        let serial: String = row.get::<_, Option<String>>(0).unwrap_or_default();
        let (count, stations, confirmed): (i64, Vec<String>, bool) = (row.get(1), row.get(2), row.get(3));
        if count > 1 {
            r.issued_more_than_once.push((serial.clone(), count, stations));
        }
        if !confirmed {
            r.issued_never_confirmed.push(serial.clone());
        }
        if !expected.contains(&serial) {
            r.issued_not_expected.push(serial.clone());
        }
        issued.insert(serial);
    }
    r.expected_not_issued = expected.difference(&issued).cloned().collect();
    Ok(r)
}
