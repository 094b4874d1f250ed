//! Field proof: a device's key and the chain the station gave it connect to a real TLS MQTT broker
//! that trusts the station CA, and the broker knows the device by its serial.

mod common;
use common::mqtt::Broker;
use common::*;

/// Issues a chain for `serial` with a fresh key (as a device would hold them).
fn device(st: &TestStation, serial: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (csr, key) = openssl_csr(st.path(), serial, "ec:P-256", &format!("/CN={serial}"), &[]);
    st.issue(&csr, &format!("{serial}-chain.pem"), &[]).ok();
    (st.file(&format!("{serial}-chain.pem")), key)
}

#[test]
fn a_provisioned_device_publishes_under_its_serial_and_only_there() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let broker = Broker::start(st.path(), &ca);
    let (chain, key) = device(&st, "SN-000042");
    let (mchain, mkey) = device(&st, "monitor");
    let sub = broker.subscribe(&mchain, &mkey, "monitor", "#", 1);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Outside its own prefix first: denied (the monitor must not see it) …
    let (_ok, out) = broker.publish(&chain, &key, "SN-000042", "SN-000099/hello", "forged");
    let denied_out = out;
    // … then its own topic: delivered.
    let (ok, out) = broker.publish(&chain, &key, "SN-000042", "SN-000042/hello", "hi from the bench");
    assert!(ok, "{out}");
    let got = sub.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&got.stdout).to_string();
    assert_eq!(seen.trim(), "SN-000042/hello hi from the bench", "the broker delivered only the allowed message");
    let log = broker.log_text();
    assert!(log.contains("u'SN-000042'"), "the broker knows the device by its CN:\n{log}");
    assert!(log.contains("Denied PUBLISH from SN-000042"), "{log}\n{denied_out}");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let broker = Broker::start(st.path(), &ca);
    // A second station with its own CA issues a certificate the broker must not accept.
    let other = TestStation::new();
    other.create_ca("ca-other", "ec-p256");
    let (chain, key) = device(&other, "SN-000042");
    let (ok, out) = broker.publish(&chain, &key, "SN-000042", "SN-000042/hello", "intruder");
    assert!(!ok, "the broker accepted a foreign certificate: {out}");
}
