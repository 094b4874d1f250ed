use super::*;
use std::os::unix::fs::PermissionsExt;

fn temp_ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::create(&dir.path().join("station.db")).unwrap();
    (dir, l)
}

#[test]
fn ledger_file_is_0600_wal_and_full_sync() {
    let (dir, l) = temp_ledger();
    let mode = std::fs::metadata(dir.path().join("station.db")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let jm: String = l.conn().pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    let sync: i64 = l.conn().pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
    assert_eq!((jm.as_str(), sync), ("wal", 2));
}

#[test]
fn create_refuses_an_existing_file() {
    let (dir, _l) = temp_ledger();
    let err = Ledger::create(&dir.path().join("station.db")).unwrap_err();
    assert!(matches!(err, LedgerError::Create { .. }));
}

#[test]
fn newer_schema_is_refused() {
    let (dir, l) = temp_ledger();
    l.conn().pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
    drop(l);
    let err = Ledger::open(&dir.path().join("station.db")).unwrap_err();
    assert_eq!(crate::error::Coded::code(&err), "ledger-schema-too-new");
}

#[test]
fn chain_verifies_and_names_an_edited_row() {
    let (_dir, l) = temp_ledger();
    for i in 0..5 {
        chain::append(l.conn(), "test", &format!("s{i}"), None, "{}").unwrap();
    }
    let ok = chain::walk(l.conn(), |_| {}).unwrap();
    assert_eq!((ok.events, ok.first_bad.clone()), (5, None));
    l.conn().execute("UPDATE events SET subject = 'forged' WHERE seq = 3", []).unwrap();
    let bad = chain::walk(l.conn(), |_| {}).unwrap();
    assert_eq!(bad.first_bad.map(|b| b.0), Some(3));
    assert_eq!(bad.events, 2);
}

#[test]
fn chain_names_a_deleted_row() {
    let (_dir, l) = temp_ledger();
    for i in 0..4 {
        chain::append(l.conn(), "test", &format!("s{i}"), None, "{}").unwrap();
    }
    l.conn().execute("DELETE FROM events WHERE seq = 2", []).unwrap();
    let bad = chain::walk(l.conn(), |_| {}).unwrap();
    assert_eq!(bad.first_bad.map(|b| b.0), Some(3));
}

#[test]
fn leased_reservation_draws_only_from_recorded_blocks_in_order_and_a_lease_is_chained_once() {
    let (dir, l) = temp_ledger();
    drop(l);
    let path = dir.path().join("station.db");
    let w = Writer::start(&path, 8).unwrap();
    let f = SerialFormat { prefix: "SN-".into(), width: 6, first: 1, last: 999_999, leased: true };
    assert_eq!(w.reserve(f.clone()).unwrap(), None, "no lease, no serial");
    w.record_lease(Lease { id: 7, prefix: "SN-".into(), first: 101, last: 102 }).unwrap();
    w.record_lease(Lease { id: 9, prefix: "SN-".into(), first: 301, last: 301 }).unwrap();
    w.record_lease(Lease { id: 7, prefix: "SN-".into(), first: 101, last: 102 }).unwrap();
    let got: Vec<String> = (0..3).map(|_| w.reserve(f.clone()).unwrap().unwrap().serial).collect();
    assert_eq!(got, ["SN-000101", "SN-000102", "SN-000301"]);
    assert_eq!(w.reserve(f.clone()).unwrap(), None, "every leased number is reserved");
    w.close();
    let conn = open_connection(&path).unwrap();
    let leased: i64 =
        conn.query_row("SELECT COUNT(*) FROM events WHERE kind = 'serial-leased'", [], |r| r.get(0)).unwrap();
    assert_eq!(leased, 2, "recording a lease again changes nothing");
    assert_eq!(leases::remaining(&conn, "SN-").unwrap(), 3, "the three reservations are not consumed yet");
    assert_eq!(chain::walk(&conn, |_| {}).unwrap().first_bad, None);
}

#[test]
fn bench_counts_are_backfilled_at_migration_and_kept_by_the_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_connection(&dir.path().join("station.db")).unwrap();
    migrations().to_version(&mut conn, 3).unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    let issue = |conn: &Connection, id: i64, bench: &str, state: &str| {
        conn.execute(
            "INSERT INTO issuances (id, serial, cert_serial, cert_der, chain_pem, spki_sha256, cert_id, ca_name, bench, \
             issued_at, not_after, state) VALUES (?1, ?2, '01', x'00', '', ?2, ?2, 'ca', ?3, 't', 't', ?4)",
            rusqlite::params![id, format!("S{id}"), bench, state],
        )
        .unwrap();
    };
    let refuse = |conn: &Connection, bench: &str| {
        conn.execute("INSERT INTO refusals (at, code, bench) VALUES ('t', 'x', ?1)", [bench]).unwrap();
    };
    issue(&conn, 1, "a", "confirmed");
    issue(&conn, 2, "a", "issued");
    issue(&conn, 3, "b", "delivered");
    refuse(&conn, "a");
    refuse(&conn, "c");
    migrations().to_latest(&mut conn).unwrap();
    let counts = |conn: &Connection| -> Vec<(String, i64, i64, i64, Option<i64>)> {
        let mut q =
            conn.prepare("SELECT bench, issued, confirmed, refused, last_id FROM bench_counts ORDER BY bench").unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let row = |b: &str, i, c, r, l| (b.to_string(), i, c, r, l);
    assert_eq!(counts(&conn), vec![row("a", 2, 1, 1, Some(2)), row("b", 1, 0, 0, Some(3)), row("c", 0, 0, 1, None)]);
    issue(&conn, 4, "c", "issued");
    conn.execute("UPDATE issuances SET state = 'confirmed' WHERE id IN (2, 4)", []).unwrap();
    conn.execute("UPDATE issuances SET state = 'delivered' WHERE id = 1", []).unwrap();
    conn.execute("UPDATE issuances SET state = 'confirmed' WHERE id = 2", []).unwrap();
    refuse(&conn, "d");
    assert_eq!(
        counts(&conn),
        vec![
            row("a", 2, 1, 1, Some(2)),
            row("b", 1, 0, 0, Some(3)),
            row("c", 1, 1, 1, Some(4)),
            row("d", 0, 0, 1, None)
        ]
    );
}
