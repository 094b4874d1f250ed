//! The issuance engine, shared by `station issue` and the bench daemon.
//!
//! One request: take the key from the CSR, decide the serial, apply the idempotency rules, build the
//! certificate from policy, sign it in the HSM, commit the row (group commit), and only then return
//! the chain. Safe to call from many threads at once.

mod active;
mod checkpoints;
mod error;
pub mod gate;
mod intake;
mod profile;
mod records;

pub use active::ActiveCa;
pub use error::IssueError;
pub use intake::{DeviceCsr, MAX_CSR, parse_csr};
pub use profile::{DeviceKey, Policy};
pub use records::DeviceErrorReport;

use crate::Result;
use crate::ca::CaError;
use crate::config::{Config, SerialSource};
use crate::error::Coded;
use crate::hsm::Hsm;
use crate::ledger::{self, InsertConflict, IssuanceRow, Ledger, NewIssuance, Reservation, Writer, issuances};
use crate::pki::{self, rfc3339};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use time::OffsetDateTime;

/// One request for a certificate.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    pub csr: Vec<u8>,
    /// The device's serial (`device` mode), or the serial to re-issue (`station` mode with `reissue`).
    pub serial: Option<String>,
    /// A serial the caller reserved for this device (`station` mode, bench daemon).
    pub reservation: Option<Reservation>,
    pub bench: String,
    pub operator: String,
    /// `Some(reason)`: replace the serial's current certificate (the device has a new key).
    pub reissue: Option<String>,
    /// The serial came from the device's HELLO, so the CSR's CN is not a serial (it may be anything).
    pub ignore_cn: bool,
    /// What the device said about itself (HELLO's model and firmware), recorded with the issuance.
    pub device_model: String,
    pub device_firmware: String,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new certificate.
    New,
    /// The certificate this serial and key already had, byte for byte.
    Repeat,
    /// A new certificate replacing the serial's previous one.
    Reissue,
}

/// A certificate the ledger holds durably.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub id: i64,
    pub serial: String,
    pub certificate_id: String,
    pub fingerprint_sha256: String,
    pub ca: String,
    pub not_after: String,
    pub outcome: Outcome,
    #[serde(skip)]
    pub chain_pem: String,
    /// Hex SHA-256 of `chain_pem`: CHAIN carries it, and STORED must match it.
    #[serde(skip)]
    pub chain_sha256: String,
    /// Whether the request's reservation was used (else the caller should release it).
    #[serde(skip)]
    pub reservation_used: bool,
}

impl Issued {
    fn from_row(row: &IssuanceRow, outcome: Outcome) -> Issued {
        Issued {
            id: row.id,
            serial: row.serial.clone(),
            certificate_id: row.cert_id.clone(),
            fingerprint_sha256: row.cert_id.clone(),
            ca: row.ca_name.clone(),
            not_after: row.not_after.clone(),
            outcome,
            chain_pem: row.chain_pem.clone(),
            chain_sha256: pki::sha256_hex(row.chain_pem.as_bytes()),
            reservation_used: false,
        }
    }
}

/// The engine. Cheap to share behind an `Arc`.
pub struct Engine {
    policy: Policy,
    station_id: String,
    hsm: Arc<Hsm>,
    active: RwLock<Arc<ActiveCa>>,
    writer: Arc<Writer>,
    readers: Mutex<Vec<Connection>>,
    ledger_path: PathBuf,
    /// The fail-closed AWS IoT gate, with its own deadline.
    gate: gate::Gate,
    aws: Option<crate::config::AwsSection>,
    checkpoints: checkpoints::Checkpoints,
    /// With `[registry]` in station mode: serials come from leased blocks (see `registry::leases`).
    leasing: Option<Leasing>,
}

/// How this engine gets serial blocks.
struct Leasing {
    config: Config,
    status: Arc<crate::registry::leases::LeaseStatus>,
    /// A keeper thread leases in the background (the daemon); without one, `reserve` leases itself (the CLI).
    keeper: std::sync::atomic::AtomicBool,
}

impl Engine {
    /// Loads policy and the active CA, and starts the ledger writer.
    pub fn open(cfg: &Config, hsm: Arc<Hsm>) -> Result<Engine> {
        let ledger = Ledger::open(&cfg.ledger.path)?;
        let mut policy =
            Policy::from_config(&cfg.policy, crate::aws::template::serial_rule(cfg.aws.as_ref(), Path::new("/")));
        let leasing = (cfg.registry.is_some() && policy.source == SerialSource::Station).then(|| Leasing {
            config: cfg.clone(),
            status: Arc::default(),
            keeper: std::sync::atomic::AtomicBool::new(false),
        });
        policy.format.leased = leasing.is_some();
        let row = ledger.active_ca()?.ok_or(CaError::NoneActive)?;
        let active = ActiveCa::load(&hsm, &row, policy.include_root)?;
        let aws = cfg.aws.clone().filter(|a| a.require_verified);
        let gate = match &aws {
            Some(a) => gate::Gate::new(
                std::time::Duration::from_secs(a.max_verification_age.secs()),
                &row.name,
                crate::aws::gate::verdict(a, &ledger, &row.name, OffsetDateTime::now_utc()),
            ),
            None => gate::Gate::unguarded(),
        };
        let checkpoints = checkpoints::Checkpoints::open(cfg, &hsm, &ledger)?;
        drop(ledger);
        let writer = Writer::start(&cfg.ledger.path, cfg.ledger.group_commit_max)?;
        Ok(Engine {
            policy,
            station_id: cfg.station.id.clone(),
            hsm,
            active: RwLock::new(Arc::new(active)),
            writer,
            readers: Mutex::new(Vec::new()),
            ledger_path: cfg.ledger.path.clone(),
            gate,
            aws,
            checkpoints,
            leasing,
        })
    }

    /// The leasing state, when serials come from registry blocks; the caller that starts a keeper thread marks it
    /// (from then on a bench never waits on the network for a serial).
    pub fn lease_status(&self, keeper: bool) -> Option<Arc<crate::registry::leases::LeaseStatus>> {
        let l = self.leasing.as_ref()?;
        if keeper {
            l.keeper.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Some(l.status.clone())
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    /// The CA issuing now, reloaded if `ca activate` switched it since the last request.
    pub fn active_ca(&self) -> Result<Arc<ActiveCa>> {
        let current = self.active.read().unwrap_or_else(|p| p.into_inner()).clone();
        let name: Option<String> = self.with_reader(|c| {
            c.prepare_cached("SELECT name FROM cas WHERE state = 'active'")
                .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
                .map_err(ledger::LedgerError::sql("read active CA"))
        })?;
        match name {
            Some(n) if n == current.name => Ok(current),
            Some(n) => {
                let row = Ledger::open(&self.ledger_path)?.ca(&n)?.ok_or(CaError::NoneActive)?;
                let next = Arc::new(ActiveCa::load(&self.hsm, &row, self.policy.include_root)?);
                tracing::info!(ca = %next.name, previous = %current.name, "active CA switched");
                *self.active.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
                Ok(next)
            }
            None => Err(CaError::NoneActive.into()),
        }
    }

    /// The gate's verdict for `ca`, as the watch found it in the ledger. Past the verdict's deadline the engine
    /// refuses by itself; a closed verdict stops new issuance at once (devices already past the gate finish).
    pub fn set_gate(&self, ca: &str, verdict: gate::Verdict) {
        self.gate.set(ca, verdict);
    }

    /// What the gate says now.
    pub fn gate_status(&self) -> gate::GateStatus {
        self.gate.status()
    }

    /// Refuses (`issuance-halted`, naming the gate's code) unless `ca` may issue now. A verdict held for another CA
    /// (`ca activate` switched) is replaced by one looked up in the ledger now.
    fn pass_gate(&self, ca: &str) -> Result<()> {
        match self.gate.check(ca) {
            Ok(()) => Ok(()),
            Err(gate::Refusal::Closed(reason)) => Err(IssueError::Halted(reason).into()),
            Err(gate::Refusal::OtherCa) => {
                let aws = self.aws.as_ref().ok_or(CaError::NoneActive)?;
                let verdict =
                    crate::aws::gate::verdict(aws, &Ledger::open(&self.ledger_path)?, ca, OffsetDateTime::now_utc());
                self.gate.set(ca, verdict);
                match self.gate.check(ca) {
                    Err(gate::Refusal::Closed(reason)) => Err(IssueError::Halted(reason).into()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Issues (or returns the existing) certificate for a request. Refusals are counted in the ledger.
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued> {
        let result = self.issue_inner(req);
        if let Err(e) = &result {
            let serial = req.serial.clone().or_else(|| req.reservation.as_ref().map(|r| r.serial.clone()));
            let ca = self.active.read().unwrap_or_else(|p| p.into_inner()).name.clone();
            self.writer.refusal(e.code(), &req.bench, &serial.unwrap_or_default(), &ca);
        }
        result
    }

    /// What the station decides at HELLO, before the device spends time on a key (spec 3.2, 4.2): in `station`
    /// mode a device serial is refused (`serial-not-allowed`); in `device` mode a revision 1.1 device must bring
    /// its serial (`serial-missing`), and a serial the station would never issue is refused at once. Refusals are
    /// counted like the engine's.
    pub fn check_hello(&self, serial: Option<&str>, revision: Option<u32>, bench: &str) -> Result<()> {
        let result = match (self.policy.source, serial) {
            (SerialSource::Station, Some(s)) => Err(IssueError::SerialNotAllowed(s.into())),
            (SerialSource::Station, None) => Ok(()),
            (SerialSource::Device, Some(s)) => self.check_serial(s),
            (SerialSource::Device, None) if revision.is_some() => Err(IssueError::SerialMissing(
                "HELLO has none, and this station takes serials from devices ([policy] serial_source = \"device\")"
                    .into(),
            )),
            // A 1.0 device may carry its serial in the CSR's CN (spec 3.4).
            (SerialSource::Device, None) => Ok(()),
        };
        if let Err(e) = &result {
            let ca = self.active.read().unwrap_or_else(|p| p.into_inner()).name.clone();
            self.writer.refusal(e.code(), bench, serial.unwrap_or_default(), &ca);
        }
        Ok(result?)
    }

    fn issue_inner(&self, req: &IssueRequest) -> Result<Issued> {
        let ca = self.active_ca()?;
        self.pass_gate(&ca.name)?;
        let csr = match parse_csr(&req.csr, &self.policy.allowed) {
            Ok(csr) => csr,
            Err(e @ IssueError::KeyTypeNotAllowed { .. }) => return self.repeat_of_withdrawn_key_type(req).ok_or(e)?,
            Err(e) => return Err(e.into()),
        };
        match self.policy.source {
            SerialSource::Device => self.issue_device(req, &csr, &ca),
            SerialSource::Station => self.issue_station(req, &csr, &ca),
        }
    }

    /// A key whose type `[policy] key_types` no longer allows still gets the chain it was already issued (spec 3.3:
    /// a device keeps its key; idempotency, 5.3, outranks a later policy change). `None`: nothing to repeat.
    fn repeat_of_withdrawn_key_type(&self, req: &IssueRequest) -> Option<Result<Issued>> {
        let csr = parse_csr(&req.csr, &crate::pki::KeyType::ALL).ok()?;
        let row = self.with_reader(|c| issuances::current_by_key(c, &csr.spki_sha256)).ok()??;
        let same_serial = match self.policy.source {
            SerialSource::Station => true,
            SerialSource::Device => {
                let cn = if req.ignore_cn { None } else { csr.cn.as_deref() };
                req.serial.as_deref().or(cn) == Some(row.serial.as_str())
            }
        };
        same_serial.then(|| Ok(Issued::from_row(&row, Outcome::Repeat)))
    }

    fn issue_device(&self, req: &IssueRequest, csr: &DeviceCsr, ca: &ActiveCa) -> Result<Issued> {
        let cn = if req.ignore_cn { None } else { csr.cn.as_deref() };
        if req.serial.is_none()
            && !req.device_model.is_empty()
            && cn.is_some_and(|cn| cn.eq_ignore_ascii_case(&req.device_model))
        {
            // The 7.1 example's CSR carries the model as its CN: at a device-serial station that would make every
            // device of the model one serial (the first issued, every later one `serial-already-issued`).
            return Err(IssueError::SerialMissing(format!(
                "HELLO has none, and the CSR's CN {:?} is the device's model, not a serial ([policy] serial_source = \"device\")",
                req.device_model
            ))
            .into());
        }
        let serial = self.device_serial(req.serial.as_deref(), cn)?;
        let (by_serial, by_key) = self.with_reader(|c| {
            Ok((issuances::current_by_serial(c, &serial)?, issuances::current_by_key(c, &csr.spki_sha256)?))
        })?;
        let reissue = match (by_serial, &req.reissue) {
            (Some(row), _) if row.spki_sha256 == csr.spki_sha256 => return Ok(Issued::from_row(&row, Outcome::Repeat)),
            (Some(row), Some(reason)) => Some((row.id, reason.clone())),
            (Some(row), None) => return Err(already_issued(&row)),
            (None, Some(_)) => return Err(IssueError::NothingToReissue(serial).into()),
            (None, None) => None,
        };
        if let Some(row) = by_key {
            return Err(IssueError::KeyReuse { serial: row.serial }.into());
        }
        self.sign_and_commit(req, csr, ca, serial, reissue, None)
    }

    fn issue_station(&self, req: &IssueRequest, csr: &DeviceCsr, ca: &ActiveCa) -> Result<Issued> {
        if let Some(reason) = &req.reissue {
            let serial =
                req.serial.clone().ok_or_else(|| IssueError::SerialMissing("--reissue needs --serial".into()))?;
            let row = self.with_reader(|c| issuances::current_by_serial(c, &serial))?;
            let row = row.ok_or_else(|| IssueError::NothingToReissue(serial.clone()))?;
            if row.spki_sha256 == csr.spki_sha256 {
                return Ok(Issued::from_row(&row, Outcome::Repeat));
            }
            return self.sign_and_commit(req, csr, ca, serial, Some((row.id, reason.clone())), None);
        }
        if let Some(s) = &req.serial {
            return Err(IssueError::SerialNotAllowed(s.clone()).into());
        }
        if let Some(row) = self.with_reader(|c| issuances::current_by_key(c, &csr.spki_sha256))? {
            return Ok(Issued::from_row(&row, Outcome::Repeat));
        }
        let (reservation, owned) = match &req.reservation {
            Some(r) => (r.clone(), false),
            None => (self.reserve()?, true),
        };
        let result = self.sign_and_commit(req, csr, ca, reservation.serial.clone(), None, Some(reservation.number));
        if owned && !result.as_ref().is_ok_and(|i| i.reservation_used) {
            self.writer.release(reservation.number);
        }
        result
    }

    /// Reserves the next station serial (durably), for a device that has said HELLO.
    pub fn reserve(&self) -> Result<Reservation> {
        let f = &self.policy.format;
        let exhausted = || IssueError::SerialRangeExhausted { prefix: f.prefix.clone(), first: f.first, last: f.last };
        if let Some(r) = self.writer.reserve(f.clone())? {
            return Ok(r);
        }
        let Some(leasing) = &self.leasing else { return Err(exhausted().into()) };
        if !leasing.keeper.load(std::sync::atomic::Ordering::Relaxed) {
            // The command line: lease a block here (no device waits on this), then reserve from it.
            let r = leasing.config.registry.as_ref().ok_or(crate::registry::RegistryError::NotConfigured)?;
            match crate::registry::leases::top_up(&leasing.config, r, &self.writer, 0, true) {
                Ok(_) => return self.writer.reserve(f.clone())?.ok_or_else(|| exhausted().into()),
                Err(crate::Error::Registry(crate::registry::RegistryError::NoFreeBlock(_))) => {
                    return Err(exhausted().into());
                }
                Err(e) => return Err(IssueError::SerialLeaseUnavailable(format!("[{}] {e}", e.code())).into()),
            }
        }
        leasing.status.poke();
        Err(match leasing.status.last_error() {
            Some(("registry-no-free-block", _)) => exhausted(),
            Some((code, why)) => IssueError::SerialLeaseUnavailable(format!("[{code}] {why}")),
            None => IssueError::SerialLeaseUnavailable("the next block is being leased".into()),
        }
        .into())
    }

    fn device_serial(&self, given: Option<&str>, cn: Option<&str>) -> Result<String, IssueError> {
        let serial = match (given, cn) {
            (Some(g), Some(c)) if g != c => return Err(IssueError::SerialMismatch { given: g.into(), cn: c.into() }),
            (Some(s), _) | (None, Some(s)) => s.to_string(),
            (None, None) => return Err(IssueError::SerialMissing("the CSR has no CN and none was given".into())),
        };
        if serial.is_empty() {
            return Err(IssueError::SerialMissing("the CSR's CN is empty and none was given".into()));
        }
        self.check_serial(&serial)?;
        Ok(serial)
    }

    /// A device's serial: one the station may issue at all (`serial-invalid`: PrintableString, and a thing name
    /// where JITP needs it), then `[policy] serial_pattern` (`serial-pattern-mismatch`).
    fn check_serial(&self, serial: &str) -> Result<(), IssueError> {
        self.policy.rule.check(serial).map_err(|why| IssueError::SerialInvalid { serial: serial.into(), why })?;
        if !self.policy.pattern.is_match(serial) {
            return Err(IssueError::SerialPattern { serial: serial.into(), pattern: self.policy.pattern_text.clone() });
        }
        Ok(())
    }

    fn sign_and_commit(
        &self,
        req: &IssueRequest,
        csr: &DeviceCsr,
        ca: &ActiveCa,
        serial: String,
        reissue: Option<(i64, String)>,
        reservation: Option<i64>,
    ) -> Result<Issued> {
        // Whatever the serial's source, nothing is signed that the rule refuses (a prefix checked by the config,
        // a serial checked at intake: this is the last line).
        self.policy.rule.check(&serial).map_err(|why| IssueError::SerialInvalid { serial: serial.clone(), why })?;
        let now = OffsetDateTime::now_utc();
        let params = self.policy.params(&serial, ca.not_after, now);
        let key = DeviceKey { key_type: csr.key_type, raw: &csr.public_raw };
        let cert = params.signed_by(&key, &ca.issuer).map_err(crate::ca::signing_error)?;
        let der = cert.der().to_vec();
        let cert_id = pki::sha256_hex(&der);
        let outcome = if reissue.is_some() { Outcome::Reissue } else { Outcome::New };
        let new = NewIssuance {
            serial: serial.clone(),
            cert_serial: params.serial_number.as_ref().map(|s| hex::encode(s.as_ref())).unwrap_or_default(),
            chain_pem: pki::cert_pem(&der) + &ca.chain_tail,
            cert_der: der,
            spki_sha256: csr.spki_sha256.clone(),
            cert_id: cert_id.clone(),
            ca_name: ca.name.clone(),
            bench: req.bench.clone(),
            operator: req.operator.clone(),
            issued_at: rfc3339(now),
            not_after: rfc3339(params.not_after),
            reissue,
            reservation,
            station: self.station_id.clone(),
            device_model: req.device_model.clone(),
            device_firmware: req.device_firmware.clone(),
        };
        match self.writer.issue(new.clone())? {
            Ok(id) => {
                self.checkpoints.count(&self.writer, || self.active_ca());
                Ok(Issued {
                    id,
                    serial,
                    certificate_id: cert_id.clone(),
                    fingerprint_sha256: cert_id,
                    ca: new.ca_name,
                    not_after: new.not_after,
                    outcome,
                    chain_sha256: pki::sha256_hex(new.chain_pem.as_bytes()),
                    chain_pem: new.chain_pem,
                    reservation_used: reservation.is_some(),
                })
            }
            // Lost a race: another request for this serial or key committed first.
            Err(InsertConflict::Serial(row)) if row.spki_sha256 == csr.spki_sha256 => {
                Ok(Issued::from_row(&row, Outcome::Repeat))
            }
            Err(InsertConflict::Serial(row)) => Err(already_issued(&row)),
            Err(InsertConflict::Key(row)) if row.serial == serial || self.policy.source == SerialSource::Station => {
                Ok(Issued::from_row(&row, Outcome::Repeat))
            }
            Err(InsertConflict::Key(row)) => Err(IssueError::KeyReuse { serial: row.serial }.into()),
        }
    }

    /// Signs a checkpoint of the chain head now (the periodic ones: `checkpoints`).
    pub fn checkpoint(&self) -> Result<ledger::Checkpoint> {
        self.checkpoints.sign(&self.writer, || self.active_ca())
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, ledger::LedgerError>) -> Result<T> {
        let conn = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = ledger::open_connection(&self.ledger_path)?;
                // Lookups touch a few index pages; a small cache keeps 64 benches' readers cheap.
                c.pragma_update(None, "cache_size", -256).map_err(ledger::LedgerError::sql("set cache size"))?;
                c
            }
        };
        let out = f(&conn);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        Ok(out?)
    }

    /// Commits what is queued and stops the writer.
    pub fn close(&self) {
        self.writer.close();
    }
}

fn already_issued(row: &IssuanceRow) -> crate::Error {
    IssueError::SerialAlreadyIssued {
        serial: row.serial.clone(),
        issued_at: row.issued_at.clone(),
        ca: row.ca_name.clone(),
    }
    .into()
}
