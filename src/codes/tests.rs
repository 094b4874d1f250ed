//! The registry against the code (every code any module can produce) and against the documents (every table).

use super::*;
use crate::aws::{AwsError, CallError, CallKind, FailedVerification};
use crate::ca::CaError;
use crate::config::ConfigError;
use crate::error::Coded;
use crate::issue::IssueError;
use crate::ledger::LedgerError;
use crate::pki::PkiError;
use crate::registry::RegistryError;
use station_devsim::DevsimError;
use station_protocol::{FrameError, codes as wire};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn entry(code: &str) -> &'static Code {
    lookup(code).unwrap_or_else(|| panic!("{code} is not in src/codes.rs"))
}

/// A module's error: registered, with its own `retryable` and exit status.
fn same(e: &dyn Coded) {
    let r = entry(e.code());
    assert_eq!(r.retryable, e.retryable(), "{}: retryable", e.code());
    assert_eq!(r.exit, Some(e.exit_status()), "{}: exit status", e.code());
}

#[test]
fn every_code_is_kebab_case_listed_once_and_placed_somewhere() {
    let mut seen = BTreeSet::new();
    for c in ALL {
        assert!(seen.insert(c.code), "{} is listed twice", c.code);
        let kebab =
            c.code.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert!(kebab && c.code.len() <= 64, "{}", c.code);
        assert!(c.at != 0 && !c.meaning.is_empty(), "{}", c.code);
    }
}

fn io() -> std::io::Error {
    std::io::Error::other("x")
}

fn sql() -> rusqlite::Error {
    rusqlite::Error::InvalidQuery
}

#[test]
fn every_variant_of_every_module_error_is_registered_with_its_retryable_and_exit_status() {
    let (p, s) = (PathBuf::from("/x"), String::new);
    let issue = [
        IssueError::CsrTooLarge { size: 1, limit: 1 },
        IssueError::CsrMalformed(s()),
        IssueError::CsrBadSignature(s()),
        IssueError::KeyTypeNotAllowed { found: s(), allowed: s() },
        IssueError::KeyTooWeak(s()),
        IssueError::SerialMissing(s()),
        IssueError::SerialInvalid { serial: s(), why: s() },
        IssueError::SerialMismatch { given: s(), cn: s() },
        IssueError::SerialPattern { serial: s(), pattern: s() },
        IssueError::SerialNotAllowed(s()),
        IssueError::SerialRangeExhausted { prefix: s(), first: 1, last: 1 },
        IssueError::SerialLeaseUnavailable(s()),
        IssueError::SerialAlreadyIssued { serial: s(), issued_at: s(), ca: s() },
        IssueError::KeyReuse { serial: s() },
        IssueError::NothingToReissue(s()),
        IssueError::Halted(s()),
        IssueError::StoredHashMismatch { serial: s() },
    ];
    for e in &issue {
        // A new variant does not compile until it is added above (and so checked here).
        match e {
            IssueError::CsrTooLarge { .. }
            | IssueError::CsrMalformed(_)
            | IssueError::CsrBadSignature(_)
            | IssueError::KeyTypeNotAllowed { .. }
            | IssueError::KeyTooWeak(_)
            | IssueError::SerialMissing(_)
            | IssueError::SerialInvalid { .. }
            | IssueError::SerialMismatch { .. }
            | IssueError::SerialPattern { .. }
            | IssueError::SerialNotAllowed(_)
            | IssueError::SerialRangeExhausted { .. }
            | IssueError::SerialLeaseUnavailable(_)
            | IssueError::SerialAlreadyIssued { .. }
            | IssueError::KeyReuse { .. }
            | IssueError::NothingToReissue(_)
            | IssueError::Halted(_)
            | IssueError::StoredHashMismatch { .. } => same(e),
        }
    }
    let ledger = [
        LedgerError::Missing { path: p.clone() },
        LedgerError::Create { path: p.clone(), source: io() },
        LedgerError::Open { path: p.clone(), source: sql() },
        LedgerError::SchemaTooNew { path: p.clone(), found: 9, known: 1 },
        LedgerError::Migration(s()),
        LedgerError::Sql { op: "x", source: sql() },
        LedgerError::Corrupt(s()),
        LedgerError::WriterGone,
        LedgerError::Signing(s()),
        LedgerError::NotCommitted(s()),
    ];
    for e in &ledger {
        match e {
            LedgerError::Missing { .. }
            | LedgerError::Create { .. }
            | LedgerError::Open { .. }
            | LedgerError::SchemaTooNew { .. }
            | LedgerError::Migration(_)
            | LedgerError::Sql { .. }
            | LedgerError::Corrupt(_)
            | LedgerError::WriterGone
            | LedgerError::Signing(_)
            | LedgerError::NotCommitted(_) => same(e),
        }
    }
    let ca = [
        CaError::NameTaken { name: s() },
        CaError::BadName { name: s() },
        CaError::NotFound { name: s() },
        CaError::NoneActive,
        CaError::NotPending { name: s(), state: "x" },
        CaError::ImportKeyMismatch { name: s(), subject: s() },
        CaError::WrongState { name: s(), state: "x", wanted: "y" },
        CaError::RetireActive { name: s() },
        CaError::ChainMismatch { name: s(), subject: s() },
    ];
    for e in &ca {
        match e {
            CaError::NameTaken { .. }
            | CaError::BadName { .. }
            | CaError::NotFound { .. }
            | CaError::NoneActive
            | CaError::NotPending { .. }
            | CaError::ImportKeyMismatch { .. }
            | CaError::WrongState { .. }
            | CaError::RetireActive { .. }
            | CaError::ChainMismatch { .. } => same(e),
        }
    }
    let pki = [
        PkiError::BadSubject { input: s(), problem: s() },
        PkiError::BadCertificate(s()),
        PkiError::NotACa(s()),
        PkiError::NotValidNow { not_before: s(), not_after: s() },
        PkiError::Build(s()),
    ];
    for e in &pki {
        match e {
            PkiError::BadSubject { .. }
            | PkiError::BadCertificate(_)
            | PkiError::NotACa(_)
            | PkiError::NotValidNow { .. }
            | PkiError::Build(_) => same(e),
        }
    }
    let config = [
        ConfigError::Read { path: p.clone(), source: io() },
        ConfigError::Parse { path: p.clone(), message: s() },
        ConfigError::Field { path: p.clone(), field: s(), problem: s(), fix: s() },
    ];
    for e in &config {
        match e {
            ConfigError::Read { .. } | ConfigError::Parse { .. } | ConfigError::Field { .. } => same(e),
        }
    }
    let failed = || FailedVerification { ca: s(), region: s(), at: s(), check: s(), message: s(), remedy: s() };
    let aws = [
        AwsError::NotConfigured,
        AwsError::BadRegion { region: s() },
        AwsError::RoleArnMissing,
        AwsError::TemplateUnreadable { path: p.clone(), source: io() },
        AwsError::TemplateInvalid { origin: s(), problem: s() },
        AwsError::TemplateParameterUnfilled { origin: s(), parameter: s(), why: s() },
        AwsError::TemplateThingNameInvalid { origin: s(), parameter: s(), why: s() },
        AwsError::TemplateAttributeInvalid { origin: s(), attribute: s(), why: s() },
        AwsError::CaNotRegistrable { name: s(), state: "x" },
        AwsError::VerificationCertInvalid { region: s(), problem: s() },
        AwsError::Runtime(io()),
        AwsError::VerificationMissing { ca: s(), region: s() },
        AwsError::VerificationStale { ca: s(), region: s(), at: s(), max_age: s() },
        AwsError::VerificationFailed(Box::new(failed())),
    ];
    for e in &aws {
        match e {
            AwsError::NotConfigured
            | AwsError::BadRegion { .. }
            | AwsError::RoleArnMissing
            | AwsError::TemplateUnreadable { .. }
            | AwsError::TemplateInvalid { .. }
            | AwsError::TemplateParameterUnfilled { .. }
            | AwsError::TemplateThingNameInvalid { .. }
            | AwsError::TemplateAttributeInvalid { .. }
            | AwsError::CaNotRegistrable { .. }
            | AwsError::VerificationCertInvalid { .. }
            | AwsError::Runtime(_)
            | AwsError::VerificationMissing { .. }
            | AwsError::VerificationStale { .. }
            | AwsError::VerificationFailed(_) => same(e),
        }
    }
    let registry = [
        RegistryError::NotConfigured,
        RegistryError::PasswordMissing(s()),
        RegistryError::PasswordFilePermissions { path: p.clone(), mode: 0o644 },
        RegistryError::PasswordFileUnreadable { path: p.clone(), problem: s() },
        RegistryError::CaFileUnreadable { path: p.clone(), problem: s() },
        RegistryError::Unreachable { target: s(), problem: s() },
        RegistryError::AuthFailed { target: s(), user: s(), problem: s() },
        RegistryError::Tls { target: s(), problem: s() },
        RegistryError::SchemaTooNew { found: 2, known: 1 },
        RegistryError::SchemaMissing { found: 0, known: 1 },
        RegistryError::StationConflict { station: s(), why: s() },
        RegistryError::Diverged { station: s(), why: s() },
        RegistryError::OutOfStep { station: s(), registry_seq: 1 },
        RegistryError::NoFreeBlock(s()),
        RegistryError::Query { op: "x", problem: s() },
    ];
    for e in &registry {
        match e {
            RegistryError::NotConfigured
            | RegistryError::PasswordMissing(_)
            | RegistryError::PasswordFilePermissions { .. }
            | RegistryError::PasswordFileUnreadable { .. }
            | RegistryError::CaFileUnreadable { .. }
            | RegistryError::Unreachable { .. }
            | RegistryError::AuthFailed { .. }
            | RegistryError::Tls { .. }
            | RegistryError::SchemaTooNew { .. }
            | RegistryError::SchemaMissing { .. }
            | RegistryError::StationConflict { .. }
            | RegistryError::Diverged { .. }
            | RegistryError::OutOfStep { .. }
            | RegistryError::NoFreeBlock(_)
            | RegistryError::Query { .. } => same(e),
        }
    }
    use crate::audit::AuditError;
    let audit = [
        AuditError::KeyMissing { label: s(), why: s() },
        AuditError::KeyExists { label: s() },
        AuditError::BadLabel { label: s() },
        AuditError::ManifestNeedsKey,
        AuditError::ManifestSelection(s()),
        AuditError::ManifestInvalid { path: s(), problem: s() },
        AuditError::ManifestSignature(s()),
        AuditError::ManifestUntrusted(s()),
    ];
    for e in &audit {
        match e {
            AuditError::KeyMissing { .. }
            | AuditError::KeyExists { .. }
            | AuditError::BadLabel { .. }
            | AuditError::ManifestNeedsKey
            | AuditError::ManifestSelection(_)
            | AuditError::ManifestInvalid { .. }
            | AuditError::ManifestSignature(_)
            | AuditError::ManifestUntrusted(_) => same(e),
        }
    }
    let devsim = [
        DevsimError::usage("serial-needs-count-1", "", ""),
        DevsimError::CaRead { path: p.clone(), source: io() },
        DevsimError::CaInvalid { path: p.clone(), reason: s() },
        DevsimError::OutDir { path: p.clone(), source: io() },
        DevsimError::KeyGeneration(s()),
    ];
    for e in &devsim {
        let r = entry(e.code());
        assert!(r.appears(at::DEVSIM) && r.exit == Some(e.exit_status()), "{}", e.code());
    }
}

#[test]
fn every_frame_error_protocol_code_and_device_code_is_registered_for_the_wire() {
    for fe in [
        FrameError::TooLarge,
        FrameError::Crc { received: 0, computed: 1 },
        FrameError::Malformed(String::new()),
        FrameError::UnsupportedVersion(2),
        FrameError::UnknownType("X".into()),
        FrameError::BadBody { kind: "HELLO", reason: String::new() },
    ] {
        let r = entry(fe.code());
        assert!(r.appears(at::WIRE) && r.appears(at::DEVICE), "{}: both sides send it", fe.code());
        assert_eq!(r.retryable, fe.retryable(), "{}", fe.code());
    }
    for code in wire::ALL {
        assert!(entry(code).appears(at::WIRE), "{code}");
    }
    for (code, retryable) in wire::device::ALL {
        let r = entry(code);
        assert!(r.appears(at::DEVICE) && r.appears(at::LEDGER), "{code}");
        assert_eq!(r.retryable, *retryable, "{code}");
    }
    for code in station_devsim::codes::OWN {
        assert!(entry(code).appears(at::DEVSIM), "{code}");
    }
    for kind in [
        CallKind::Unreachable,
        CallKind::Timeout,
        CallKind::Throttled,
        CallKind::Credentials,
        CallKind::Denied,
        CallKind::NotFound,
        CallKind::AlreadyExists { id: None, arn: None },
        CallKind::Service(String::new()),
        CallKind::Other,
    ] {
        let e = CallError { kind, op: "x", region: String::new(), message: String::new() };
        assert!(entry(e.code()).code.starts_with("aws-"));
    }
}

/// Every source file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The codes written as literals where a code is made: usage and I/O errors, AWS checks, operator lines, HSM
/// errors (src/hsm is read as text, so its variants need not be built here).
#[test]
fn every_code_literal_in_the_sources_is_registered() {
    let patterns = [
        r#"Error::(?:usage|io)\(\s*"([a-z0-9-]+)""#,
        r#"Check::fail\(\s*"[^"]*",\s*"([a-z0-9-]+)""#,
        r#"Check::(?:fail|unknown)\(\s*[a-z_"-]+,\s*"([a-z0-9-]+)""#,
        r#"let code = if [^{]*\{\s*"([a-z0-9-]+)""#,
        r#"end_with_failure\(\s*"([a-z0-9-]+)""#,
        r#"failed_check: Some\("([a-z0-9-]+)""#,
        r#"=> "((?:hsm|aws)-[a-z0-9-]+)""#,
        r#"Problem::new\(\s*"([a-z0-9-]+)""#,
    ]
    .map(|p| regex::Regex::new(p).unwrap());
    // The station's sources and the crates beside it: the simulator's usage errors are made there.
    let mut files = Vec::new();
    for dir in ["src", "crates/protocol/src", "crates/devsim/src"] {
        sources(&root().join(dir), &mut files);
    }
    let mut found = BTreeSet::new();
    // test_hooks.rs is compiled only into the test suite (feature test-hooks); its code never reaches a user.
    for f in files.iter().filter(|f| !f.ends_with("codes/tests.rs") && !f.ends_with("test_hooks.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for re in &patterns {
            for cap in re.captures_iter(&text) {
                let code = cap[1].to_string();
                assert!(lookup(&code).is_some(), "{code} ({}) is not in src/codes.rs", f.display());
                found.insert(code);
            }
        }
    }
    let hsm = read("src/hsm/error.rs");
    for r in ALL.iter().filter(|r| r.code.starts_with("hsm-")) {
        assert!(hsm.contains(&format!("\"{}\"", r.code)), "{} is registered but src/hsm makes no such code", r.code);
        assert_eq!(r.exit, Some(crate::error::exit::HSM), "{}", r.code);
    }
    assert!(found.len() > 40, "the scan found only {} codes", found.len());
}

/// Codes in the first cell of the Markdown table rows of `text`, each with the `(exit N)` of the bold heading
/// above its table, if any.
fn table_codes(text: &str) -> Vec<(String, Option<i32>, String)> {
    let code = regex::Regex::new(r"`([a-z0-9]+(?:-[a-z0-9]+)*)`").unwrap();
    let heading = regex::Regex::new(r"^\*\*.*\(exit (\d+)\)\*\*").unwrap();
    let mut exit = None;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(h) = heading.captures(line) {
            exit = h[1].parse().ok();
        } else if line.starts_with("**") || line.starts_with('#') {
            exit = None;
        }
        let Some(cell) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else { continue };
        for c in code.captures_iter(cell) {
            out.push((c[1].to_string(), exit, line.to_string()));
        }
    }
    out
}

/// The part of `text` from the heading `start` to the next heading of the same level.
fn section<'a>(text: &'a str, start: &str) -> &'a str {
    let level = start.split(' ').next().unwrap();
    let from = text.find(start).unwrap_or_else(|| panic!("no section {start:?}"));
    let rest = &text[from + start.len()..];
    let end = rest.find(&format!("\n{level} ")).map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

fn set<'a>(it: impl Iterator<Item = &'a str>) -> BTreeSet<&'a str> {
    it.collect()
}

#[test]
fn the_readme_lists_exactly_the_command_codes_with_their_exit_statuses() {
    let readme = read("README.md");
    let listed = table_codes(section(&readme, "## Errors and exit statuses"));
    for (code, exit, line) in &listed {
        let r = entry(code);
        assert_eq!(*exit, r.exit, "README lists {code} under the wrong exit status: {line}");
    }
    let expected = set(ALL
        .iter()
        .filter(|r| r.appears(at::CLI) && !r.code.starts_with("aws-"))
        .filter(|r| r.exit.is_some() || r.at == at::CLI)
        .map(|r| r.code));
    let got = set(listed.iter().map(|(c, _, _)| c.as_str()));
    assert_eq!(got, expected, "README.md, Errors and exit statuses");
    let devsim = set(table_codes(section(&readme, "### `station-devsim")).into_iter().map(|(c, _, _)| entry(&c).code));
    let expected = set(ALL.iter().filter(|r| r.at == at::DEVSIM).map(|r| r.code));
    assert_eq!(devsim, expected, "README.md, the station-devsim codes");
    let aws = read("docs/aws.md");
    for r in ALL.iter().filter(|r| r.code.starts_with("aws-")) {
        assert!(aws.contains(&format!("`{}`", r.code)), "docs/aws.md does not document {}", r.code);
    }
}

#[test]
fn the_spec_lists_exactly_the_wire_codes_with_their_retryable() {
    let spec = read("schemas/bench-protocol.md");
    let errors = section(&spec, "## 6. Errors");
    let listed = table_codes(errors);
    for (code, _, line) in &listed {
        let r = entry(code);
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let flag = cells.iter().find_map(|c| match *c {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        });
        assert_eq!(flag, Some(r.retryable), "the spec's retryable for {code}: {line}");
    }
    let expected = set(ALL.iter().filter(|r| r.appears(at::WIRE) || r.appears(at::DEVICE)).map(|r| r.code));
    let got = set(listed.iter().map(|(c, _, _)| c.as_str()));
    assert_eq!(got, expected, "schemas/bench-protocol.md section 6");
}

#[test]
fn the_protocols_key_type_names_are_the_key_types_a_station_can_accept() {
    let names: Vec<&str> = crate::pki::KeyType::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, station_protocol::KEY_TYPES);
}
