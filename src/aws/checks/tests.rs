use super::*;
use crate::aws::template::{BUILTIN, DeviceSubject};
use crate::config::AwsMode;

fn local_ca(days: i64) -> LocalCa {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = crate::ca::ca_params(crate::pki::parse_dn("CN=Test CA,O=Station Demo,C=DE").unwrap(), 1).unwrap();
    p.not_after = OffsetDateTime::now_utc() + Duration::days(days);
    let cert = p.self_signed(&key).unwrap();
    let info = pki::inspect(cert.der()).unwrap();
    LocalCa {
        name: "ca-1".into(),
        der: cert.der().to_vec(),
        fingerprint: info.fingerprint,
        subject: info.subject,
        not_before: info.not_before,
        not_after: info.not_after,
    }
}

fn settings(mode: AwsMode) -> Settings {
    Settings {
        regions: vec![AwsRegion { name: "eu-west-1".into(), profile: Some("factory".into()) }],
        endpoint_url: None,
        mode,
        template: None,
        role_arn: Some("arn:aws:iam::123456789012:role/R".into()),
        timeout: std::time::Duration::from_secs(5),
        max_attempts: 3,
        max_tps: 8,
        subject: DeviceSubject::default(),
        device_days: 365,
    }
}

fn healthy(ca: &LocalCa) -> Described {
    Described {
        certificate_id: ca.fingerprint.clone(),
        certificate_arn: format!("arn:aws:iot:eu-west-1:123456789012:cacert/{}", ca.fingerprint),
        status: "ACTIVE".into(),
        auto_registration_status: "ENABLE".into(),
        certificate_mode: "DEFAULT".into(),
        certificate_pem: ca.pem(),
        has_registration_config: true,
        template_body: Some(BUILTIN.into()),
        role_arn: Some("arn:aws:iam::123456789012:role/R".into()),
        ..Described::default()
    }
}

/// The codes of the failing checks.
fn failing(ca: &LocalCa, s: &Settings, d: &Described) -> Vec<&'static str> {
    let region = s.regions[0].clone();
    let ctx = Context { ca, region: &region, settings: s, recorded: None, now: OffsetDateTime::now_utc() };
    described(&ctx, d).into_iter().filter(|c| c.failed()).filter_map(|c| c.code).collect()
}

#[test]
fn a_healthy_jitp_registration_passes_every_check() {
    let ca = local_ca(3650);
    assert_eq!(failing(&ca, &settings(AwsMode::Jitp), &healthy(&ca)), Vec::<&str>::new());
}

#[test]
fn each_broken_property_fails_its_own_check() {
    let ca = local_ca(3650);
    let s = settings(AwsMode::Jitp);
    let other = local_ca(3650);
    type Break = Box<dyn Fn(&mut Described)>;
    let cases: Vec<(Break, &str)> = vec![
        (Box::new(|d| d.status = "INACTIVE".into()), "aws-ca-inactive"),
        (Box::new(|d| d.auto_registration_status = "DISABLE".into()), "aws-auto-registration-disabled"),
        (Box::new(|d| d.certificate_mode = "SNI_ONLY".into()), "aws-certificate-mode-not-default"),
        (Box::new(|d| d.template_body = None), "aws-template-missing"),
        (Box::new(|d| d.template_body = Some("{oops".into())), "aws-template-invalid"),
        (Box::new(|d| d.role_arn = None), "aws-role-arn-missing"),
        (Box::new(|d| d.certificate_id = "00".repeat(32)), "aws-certificate-id-mismatch"),
        (Box::new(move |d| d.certificate_pem = other.pem()), "aws-certificate-mismatch"),
    ];
    for (breaks, code) in cases {
        let mut d = healthy(&ca);
        breaks(&mut d);
        assert_eq!(failing(&ca, &s, &d), vec![code]);
    }
}

#[test]
fn remedies_name_the_exact_command_with_the_regions_profile() {
    let ca = local_ca(3650);
    let s = settings(AwsMode::Jitp);
    let mut d = healthy(&ca);
    d.auto_registration_status = "DISABLE".into();
    let region = s.regions[0].clone();
    let ctx = Context { ca: &ca, region: &region, settings: &s, recorded: None, now: OffsetDateTime::now_utc() };
    let check = described(&ctx, &d).into_iter().find(|c| !c.ok).unwrap();
    let want = format!(
        "aws iot update-ca-certificate --certificate-id {} --new-auto-registration-status ENABLE --region eu-west-1 --profile factory",
        ca.fingerprint
    );
    assert!(check.remedy.as_deref().unwrap().contains(&want), "{check:?}");
    let missing = exists(&ctx, None);
    assert_eq!(missing.code, Some("aws-ca-not-registered"));
    assert!(missing.remedy.unwrap().contains("station ca register --name ca-1 --region eu-west-1"));
}

#[test]
fn jitr_does_not_look_for_a_template() {
    let ca = local_ca(3650);
    let mut d = healthy(&ca);
    d.template_body = None;
    d.role_arn = None;
    assert!(failing(&ca, &settings(AwsMode::Jitr), &d).is_empty());
}

#[test]
fn a_ca_that_expires_before_a_device_would_fails_validity() {
    let ca = local_ca(100);
    assert_eq!(failing(&ca, &settings(AwsMode::Jitr), &healthy(&ca)), vec!["aws-ca-validity-short"]);
}

#[test]
fn headroom_fails_at_ten_cas_with_one_subject() {
    let ca = local_ca(3650);
    let s = settings(AwsMode::Jitp);
    let region = s.regions[0].clone();
    let ctx = Context { ca: &ca, region: &region, settings: &s, recorded: None, now: OffsetDateTime::now_utc() };
    assert!(headroom(&ctx, 9).ok);
    let full = headroom(&ctx, SAME_SUBJECT_LIMIT);
    assert_eq!(full.code, Some("aws-subject-limit"));
}
