use super::*;

/// An in-memory source, to test the matching rules alone.
#[derive(Default)]
struct Fake {
    known: HashMap<String, Known>,
    seen: Vec<String>,
}

impl Issued for Fake {
    fn source(&self) -> String {
        "fake".into()
    }
    fn cas(&mut self) -> Result<Vec<(String, String)>> {
        Ok(vec![("ca-1".into(), "c".repeat(64))])
    }
    fn lookup(&mut self, ids: &[String]) -> Result<HashMap<String, Known>> {
        Ok(ids.iter().filter_map(|i| self.known.get(i).map(|k| (i.clone(), k.clone()))).collect())
    }
    fn seen(&mut self, certs: &[DeviceCert]) -> Result<()> {
        self.seen.extend(certs.iter().map(|c| c.certificate_id.clone()));
        Ok(())
    }
    fn groups(&mut self) -> Result<Vec<Group>> {
        Ok(Vec::new())
    }
}

fn pair(error: Option<PairError>) -> Pair {
    Pair {
        region: "eu-west-1".into(),
        ca: "ca-1".into(),
        certificate_id: "x".into(),
        listed: 0,
        known: 0,
        stray: 0,
        error,
    }
}

fn known(serial: &str, current: bool) -> Known {
    Known {
        serial: serial.into(),
        station: "st".into(),
        bench: "b1".into(),
        ca: "ca-1".into(),
        issued_at: "2026-12-01T00:00:00Z".into(),
        current,
    }
}

fn cert(id: &str, status: &str) -> DeviceCert {
    DeviceCert {
        certificate_id: id.into(),
        status: status.into(),
        created: None,
        ca_certificate_id: None,
        subject: None,
    }
}

#[test]
fn strays_inactive_and_superseded_are_told_apart() {
    let mut f = Fake::default();
    for (id, serial, current) in [("a", "S1", true), ("b", "S2", true), ("c", "S3", false), ("d", "S4", false)] {
        f.known.insert(id.into(), known(serial, current));
    }
    let mut out = AwsReconciliation { pairs: vec![pair(None)], ..Default::default() };
    let page = [
        cert("a", "ACTIVE"),
        cert("b", "REVOKED"),
        cert("c", "ACTIVE"),
        cert("d", "INACTIVE"),
        cert("z", "ACTIVE"),
        cert("y", "PENDING_ACTIVATION"),
    ];
    match_page(&mut f, &mut out, 0, &page).unwrap();
    assert_eq!((out.pairs[0].listed, out.pairs[0].known, out.pairs[0].stray), (6, 4, 2));
    let ids = |fs: &Findings| fs.listed.iter().map(|f| f.certificate_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&out.stray), ["z", "y"]);
    assert_eq!(out.stray.listed[0].serial, None);
    assert_eq!(ids(&out.inactive_in_aws), ["b"]);
    assert_eq!(out.inactive_in_aws.listed[0].serial.as_deref(), Some("S2"));
    assert_eq!(ids(&out.superseded_active), ["c"], "a superseded certificate AWS holds INACTIVE is fine");
    assert_eq!(f.seen, ["a", "b", "c", "d"], "strays are not counted as connected devices");
    assert_eq!(out.codes(), ["stray-certificate", "certificate-inactive-in-aws", "superseded-active-in-aws"]);
    assert!(!out.clean());
}

#[test]
fn a_pair_that_could_not_be_read_is_not_clean() {
    let mut out = AwsReconciliation::default();
    assert!(out.clean());
    out.pairs.push(pair(Some(PairError { code: "aws-unreachable", message: String::new(), remedy: String::new() })));
    assert!(out.codes().is_empty());
    assert!(!out.clean(), "an unread region proves nothing");
}

#[test]
fn listed_findings_are_capped_but_counted() {
    let mut fs = Findings::default();
    for i in 0..LIST_LIMIT + 5 {
        fs.push(Finding {
            region: "r".into(),
            ca: "c".into(),
            certificate_id: i.to_string(),
            aws_status: "ACTIVE".into(),
            aws_created: None,
            subject: None,
            serial: None,
            station: None,
            bench: None,
            issued_at: None,
        });
    }
    assert_eq!((fs.count, fs.listed.len()), ((LIST_LIMIT + 5) as u64, LIST_LIMIT));
}
