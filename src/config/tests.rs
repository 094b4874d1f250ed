use super::*;

const MINIMAL: &str = r#"
[station]
id = "bench-room-1"
[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "station"
pin_file = "hsm-pin"
module_env = { SOFTHSM2_CONF = "/etc/station/softhsm2.conf", TPM2_PKCS11_TCTI = "device:/dev/tpmrm0" }
[ledger]
path = "station.db"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/station/station.toml"))
}

#[test]
fn minimal_config_resolves_relative_paths_against_its_folder() {
    let cfg = load(MINIMAL).expect("valid");
    assert_eq!(cfg.ledger.path, Path::new("/etc/station/station.db"));
    assert_eq!(cfg.hsm.pin_file.as_deref(), Some(Path::new("/etc/station/hsm-pin")));
    assert_eq!(cfg.hsm.module_env["SOFTHSM2_CONF"], "/etc/station/softhsm2.conf");
    // Values reach the module exactly as written: a TCTI with a '/' is not a path of the station's.
    assert_eq!(cfg.hsm.module_env["TPM2_PKCS11_TCTI"], "device:/dev/tpmrm0");
    assert_eq!(cfg.station.state_dir, Path::new("/etc/station/state"));
    assert_eq!(cfg.policy.serial_source, SerialSource::Device);
}

#[test]
fn a_relative_module_env_file_next_to_the_config_is_refused_with_the_absolute_path_as_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("softhsm2.conf"), "").unwrap();
    let text = MINIMAL.replace("\"/etc/station/softhsm2.conf\"", "\"softhsm2.conf\"");
    let err = Config::from_toml(&text, &dir.path().join("station.toml")).unwrap_err();
    assert_eq!(err.code(), "config-field-invalid");
    assert!(err.to_string().contains("hsm.module_env.SOFTHSM2_CONF"), "{err}");
    assert!(err.hint().contains(&dir.path().join("softhsm2.conf").display().to_string()), "{}", err.hint());
}

#[test]
fn unknown_field_is_refused_by_name() {
    let text = MINIMAL.replace("[ledger]", "[ledger]\npaht = \"x\"");
    let err = load(&text).unwrap_err();
    assert_eq!(err.code(), "config-invalid");
    assert!(err.to_string().contains("paht"), "{err}");
}

#[test]
fn bad_field_values_name_the_field_and_the_fix() {
    let cases = [
        ("[station]\nid = \"bench-room-1\"", "[station]\nid = \"has space\"", "station.id"),
        ("token_label = \"station\"", "token_label = \"\"", "hsm.token_label"),
        ("[ledger]", "[policy]\ncountry = \"Germany\"\n[ledger]", "policy.country"),
        ("[ledger]", "[policy]\nkey_types = [\"ed25519\"]\n[ledger]", "policy.key_types"),
        ("[ledger]", "[policy]\nserial_pattern = \"([\"\n[ledger]", "policy.serial_pattern"),
        ("[ledger]", "[policy]\nserial_first = 10\nserial_last = 5\n[ledger]", "policy.serial_first"),
        ("[ledger]", "[ca]\nkey_type = \"dsa\"\n[ledger]", "ca.key_type"),
    ];
    for (from, to, field) in cases {
        let err = load(&MINIMAL.replace(from, to)).unwrap_err();
        assert_eq!(err.code(), "config-field-invalid", "{field}: {err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
        assert!(!err.hint().is_empty());
    }
}

#[test]
fn config_path_prefers_flag_then_env_then_cwd() {
    let env = || Some(std::ffi::OsString::from("/etc/station/from-env.toml"));
    assert_eq!(choose_config_path(None, None), Path::new("station.toml"));
    assert_eq!(choose_config_path(None, Some("".into())), Path::new("station.toml"), "an empty variable is unset");
    assert_eq!(choose_config_path(None, env()), Path::new("/etc/station/from-env.toml"));
    assert_eq!(choose_config_path(Some(Path::new("/x.toml")), env()), Path::new("/x.toml"));
}

#[test]
fn a_serial_prefix_or_pattern_that_could_make_an_unencodable_serial_is_refused_at_the_config_check() {
    let cases = [
        ("serial_prefix = \"LINE_1/\"", "policy.serial_prefix", "'_'"),
        ("serial_prefix = \"-SN\"", "policy.serial_prefix", "letter or digit"),
        ("serial_pattern = \"LINE_1/[0-9]+\"", "policy.serial_pattern", "'_'"),
        ("serial_pattern = \"[\\\\w-]+\"", "policy.serial_pattern", "'_'"),
        ("serial_pattern = \"[A-Z0-9]+ [0-9]+\"", "policy.serial_pattern", "' '"),
    ];
    for (line, field, needle) in cases {
        let err = load(&MINIMAL.replace("[ledger]", &format!("[policy]\n{line}\n[ledger]"))).unwrap_err();
        assert_eq!(err.code(), "config-field-invalid", "{line}: {err}");
        assert!(err.to_string().contains(field) && err.to_string().contains(needle), "{line}: {err}");
    }
    // `.` is a PrintableString character: allowed unless a JITP template makes the thing name from the serial.
    let dotted = MINIMAL.replace("[ledger]", "[policy]\nserial_pattern = \"[A-Z0-9][A-Z0-9.-]*\"\n[ledger]");
    load(&dotted).expect("no JITP: a dot is fine");
    let jitp = format!(
        "{dotted}\n[aws]\nregions = [{{ name = \"eu-west-1\" }}]\nmode = \"jitp\"\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\n"
    );
    let err = load(&jitp).unwrap_err();
    assert!(err.to_string().contains("thing name"), "{err}");
    load(&jitp.replace("mode = \"jitp\"", "mode = \"jitr\"")).expect("JITR makes no thing name from the serial");
    assert_eq!(load(MINIMAL).unwrap().policy.serial_pattern, DEFAULT_SERIAL_PATTERN);
}

#[test]
fn a_registry_section_resolves_its_files_and_refuses_a_password_in_the_url_and_a_low_water_above_the_block() {
    let with = |extra: &str| {
        format!(
            "{MINIMAL}[registry]\nurl = \"host=db.example port=5432 user=st dbname=fleet sslmode=require\"\npassword_file = \"pw\"\n{extra}"
        )
    };
    let cfg = load(&with("")).expect("valid");
    let r = cfg.registry.as_ref().unwrap();
    assert_eq!(r.password_file.as_deref(), Some(Path::new("/etc/station/pw")));
    assert_eq!((r.lease_size, r.low_water(), r.batch_max), (1000, 500, 1000));
    let err = load(&with("").replace("user=st", "user=st password=hunter2")).unwrap_err();
    assert_eq!(err.code(), "config-field-invalid");
    assert!(err.to_string().contains("registry.url") && !err.to_string().contains("hunter2"), "{err}");
    let err = load(&with("lease_size = 100\nlease_low_water = 100\n")).unwrap_err();
    assert!(err.to_string().contains("registry.lease_low_water"), "{err}");
    let err = load(&with("").replace("sslmode=require", "sslmode=verify-full")).unwrap_err();
    assert!(err.to_string().contains("registry.url"), "{err}");
    assert!(load(MINIMAL).unwrap().registry.is_none(), "without [registry] nothing changes");
}

#[test]
fn the_http_endpoint_is_off_by_default_and_listens_outside_loopback_only_when_allowed() {
    assert!(load(MINIMAL).unwrap().http.is_none(), "no [http]: no endpoint");
    let on = load(&format!("{MINIMAL}\n[http]\nlisten = \"127.0.0.1:9464\"\n")).unwrap();
    assert_eq!(on.http.unwrap().listen, "127.0.0.1:9464".parse().unwrap());
    load(&format!("{MINIMAL}\n[http]\nlisten = \"[::1]:9464\"\n")).expect("IPv6 loopback");
    let err = load(&format!("{MINIMAL}\n[http]\nlisten = \"0.0.0.0:9464\"\n")).unwrap_err();
    assert_eq!(err.code(), "config-field-invalid");
    assert!(err.to_string().contains("http.listen") && err.hint().contains("allow_remote"), "{err}");
    load(&format!("{MINIMAL}\n[http]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n")).expect("an explicit choice");
    let err = load(&format!("{MINIMAL}\n[http]\nlisten = \"localhost\"\n")).unwrap_err();
    assert_eq!(err.code(), "config-invalid", "not an address: {err}");
}

#[test]
fn the_sample_config_parses_and_so_does_its_http_block_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("station.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(Config::from_toml(&text, &path).unwrap().http.is_none(), "the endpoint is off in the sample");
    let on: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("[http]") || rest.starts_with("listen =") || rest.starts_with("allow_remote =") =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let http = Config::from_toml(&on, &path).unwrap().http.expect("[http] uncommented");
    assert_eq!((http.listen.to_string().as_str(), http.allow_remote), ("127.0.0.1:9464", false));
}

#[test]
fn a_bench_deasserts_dtr_and_rts_and_opens_exclusively_unless_told_otherwise() {
    let bench = "[[bench]]\nname = \"bench-1\"\nport = \"/dev/serial/by-id/usb-x-if00-port0\"\n";
    let b = load(&format!("{MINIMAL}\n{bench}")).unwrap().benches.remove(0);
    assert_eq!((b.dtr, b.rts, b.exclusive, b.baud), (false, false, true, 115_200));
    assert_eq!(b, BenchSection::new("bench-1", "/dev/serial/by-id/usb-x-if00-port0", 115_200));
    let b = load(&format!("{MINIMAL}\n{bench}dtr = true\nrts = true\nexclusive = false\n")).unwrap().benches.remove(0);
    assert_eq!((b.dtr, b.rts, b.exclusive), (true, true, false));
    let err = load(&format!("{MINIMAL}\n{bench}dtr = \"on\"\n")).unwrap_err();
    assert_eq!(err.code(), "config-invalid", "{err}");
    assert!(err.to_string().contains("expected a boolean (line "), "says what and where: {err}");
    let err = load(&format!("{MINIMAL}\n{bench}dsr = true\n")).unwrap_err();
    assert_eq!(err.code(), "config-invalid", "an unknown field: {err}");
}
