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
