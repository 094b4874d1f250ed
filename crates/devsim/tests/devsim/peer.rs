//! A scripted station for testing the simulator: the master side of a real pty pair, in a thread, speaking the bench
//! protocol with the crate's codec. It signs device certificates with an rcgen CA made by the test, and can be told
//! to misbehave (frame errors, retryable errors, wrong CA, wrong key) so that the simulator's reactions show.

use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serialport::TTYPort;
use station_devsim::certs::{cert_pem, sha256_hex};
use station_protocol::{Chain, Decoder, Done, ErrorMsg, Message, Welcome, codes, encode};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A CA made by the test.
pub struct TestCa {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(cn: &str) -> TestCa {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        TestCa { issuer: CertifiedIssuer::self_signed(params, key).expect("CA cert") }
    }

    pub fn pem(&self) -> String {
        cert_pem(self.issuer.der())
    }
}

/// How the scripted station behaves.
pub struct Script {
    pub key_types: Vec<&'static str>,
    /// Signs device certificates.
    pub signer: Arc<TestCa>,
    /// The CA certificate sent in the chain (default: the signer's).
    pub chain_ca: Option<Arc<TestCa>>,
    /// Answer this many CSR frames with ERROR frame-crc-mismatch, as if they had arrived damaged.
    pub crc_errors_on_csr: u32,
    /// Answer the first CSR with this retryable engine ERROR.
    pub retryable_error_on_csr: Option<&'static str>,
    /// Issue the certificate for a fresh key instead of the CSR's.
    pub wrong_key: bool,
    /// Skip the CSR signature check (a broken station).
    pub accept_bad_signatures: bool,
    /// Damage one byte of the first WELCOME on the wire (the frame kept for a re-send stays intact).
    pub damage_first_welcome: bool,
    /// Never answer anything.
    pub silent: bool,
    /// Before the first WELCOME, send an ERROR timeout, as one that ends an earlier session and crosses the HELLO.
    pub stale_timeout_before_welcome: bool,
    pub csr_timeout: Duration,
}

impl Script {
    pub fn new(ca: &Arc<TestCa>) -> Script {
        Script {
            key_types: vec!["ec-p256", "rsa-2048"],
            signer: ca.clone(),
            chain_ca: None,
            crc_errors_on_csr: 0,
            retryable_error_on_csr: None,
            wrong_key: false,
            accept_bad_signatures: false,
            damage_first_welcome: false,
            silent: false,
            stale_timeout_before_welcome: false,
            csr_timeout: Duration::from_secs(30),
        }
    }
}

/// Something the station saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A valid message, when its last byte arrived, and its length on the wire.
    Frame { at: Instant, len: usize, msg: Message },
    /// A frame that failed to decode.
    Rejected { code: &'static str },
}

/// What the station saw and sent, once stopped.
#[derive(Debug, Default)]
pub struct Log {
    pub seen: Vec<Seen>,
    pub sent: Vec<Message>,
}

impl Log {
    pub fn messages(&self) -> Vec<&Message> {
        self.seen.iter().filter_map(|s| if let Seen::Frame { msg, .. } = s { Some(msg) } else { None }).collect()
    }
    pub fn count(&self, kind: &str) -> usize {
        self.messages().iter().filter(|m| m.message_type().name() == kind).count()
    }
    pub fn rejected(&self) -> usize {
        self.seen.iter().filter(|s| matches!(s, Seen::Rejected { .. })).count()
    }
    pub fn device_errors(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter_map(|m| if let Message::Error(e) = m { Some(e.code.clone()) } else { None })
            .collect()
    }
    pub fn csr_keys(&self) -> Vec<Vec<u8>> {
        self.messages()
            .iter()
            .filter_map(|m| if let Message::Csr(c) = m { Some(spki_of(&c.der)) } else { None })
            .collect()
    }
}

/// The running station; `stop` ends it and returns its log.
pub struct Peer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Log>>,
}

impl Peer {
    pub fn start(master: TTYPort, script: Script) -> Peer {
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = reader(&master, stop.clone());
        let thread = std::thread::spawn(move || Station::new(master, script).run(&bytes));
        Peer { stop, thread: Some(thread) }
    }

    pub fn stop(mut self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("running").join().expect("the scripted station panicked")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads the master side in a thread of its own, with plain blocking reads.
///
/// Not through `TTYPort::read`: once the simulator has closed its end, poll() reports POLLIN|POLLHUP and serialport
/// turns that into an error, losing the last bytes the device wrote before it closed (e.g. its final ERROR). A plain
/// read returns those bytes first, then EIO while no slave is open.
fn reader(master: &TTYPort, stop: Arc<AtomicBool>) -> Receiver<Vec<u8>> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the master fd is open for as long as `master` lives, and we only duplicate it here.
    let fd = unsafe { BorrowedFd::borrow_raw(master.as_raw_fd()) };
    let mut file = std::fs::File::from(fd.try_clone_to_owned().expect("dup the pty master"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Blocks while the simulator is connected and quiet. Once it has exited, a read returns what it wrote last,
        // then EIO: only then, when asked to stop, does this end (and the station drains the channel).
        loop {
            match file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                _ if stop.load(Ordering::SeqCst) => break,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    rx
}

#[derive(Debug, PartialEq)]
enum State {
    Idle,
    AwaitCsr { since: Instant },
    AwaitStored,
}

struct Station {
    port: TTYPort,
    script: Script,
    decoder: Decoder,
    state: State,
    log: Log,
    /// Issued chains by the DER SubjectPublicKeyInfo of the device key: (serial, chain).
    issued: HashMap<Vec<u8>, Chain>,
    next_serial: u32,
    session_serial: Option<String>,
    last_sent: Vec<u8>,
    frame_errors: u32,
    csrs: u32,
}

impl Station {
    fn new(mut port: TTYPort, script: Script) -> Station {
        serialport::SerialPort::set_timeout(&mut port, Duration::from_millis(100)).expect("timeout");
        let (decoder, state, log) = (Decoder::new(), State::Idle, Log::default());
        Station {
            port,
            script,
            decoder,
            state,
            log,
            issued: HashMap::new(),
            next_serial: 1,
            session_serial: None,
            last_sent: Vec::new(),
            frame_errors: 0,
            csrs: 0,
        }
    }

    fn run(mut self, bytes: &Receiver<Vec<u8>>) -> Log {
        loop {
            match bytes.recv_timeout(Duration::from_millis(10)) {
                Ok(chunk) => self.decoder.push(&chunk),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            while let Some(frame) = self.decoder.next_frame() {
                match frame {
                    Ok(msg) => {
                        let len = encode(&msg).map(|f| f.len()).unwrap_or(0);
                        self.log.seen.push(Seen::Frame { at: now, len, msg: msg.clone() });
                        if !self.script.silent {
                            self.handle(msg);
                        }
                    }
                    Err(e) => {
                        self.log.seen.push(Seen::Rejected { code: e.code() });
                        self.frame_error(e.to_error_msg());
                    }
                }
            }
            if matches!(self.state, State::AwaitCsr { since } if since.elapsed() > self.script.csr_timeout) {
                self.state = State::Idle;
                self.send(ErrorMsg::new(codes::TIMEOUT, "no CSR in time", "start again from HELLO", true).into());
            }
        }
        self.log
    }

    fn frame_error(&mut self, error: ErrorMsg) {
        if self.script.silent {
            return;
        }
        self.frame_errors += 1;
        if self.frame_errors >= 3 {
            self.frame_errors = 0;
            self.state = State::Idle;
            let msg = ErrorMsg::new(codes::TOO_MANY_FRAME_ERRORS, "3 frame errors", "start again", true);
            return self.send(msg.into());
        }
        self.send(error.into());
    }

    fn handle(&mut self, msg: Message) {
        self.frame_errors = 0;
        match (msg, &self.state) {
            (Message::Hello(hello), _) => {
                let serial = hello.serial.unwrap_or_else(|| {
                    self.next_serial += 1;
                    format!("ST-{:06}", self.next_serial - 1)
                });
                self.session_serial = Some(serial.clone());
                self.state = State::AwaitCsr { since: Instant::now() };
                if std::mem::take(&mut self.script.stale_timeout_before_welcome) {
                    self.send(ErrorMsg::new(codes::TIMEOUT, "no CSR in time", "start again from HELLO", true).into());
                }
                let key_types = self.script.key_types.iter().map(|s| s.to_string()).collect();
                self.send(
                    Welcome {
                        station: "peer".into(),
                        key_types,
                        serial: Some(serial),
                        serial_source: None,
                        revision: None,
                    }
                    .into(),
                );
            }
            (Message::Csr(csr), State::AwaitCsr { .. } | State::AwaitStored) => self.on_csr(&csr.der),
            (Message::Stored(stored), State::AwaitStored) => {
                let chain = self.issued.values().find(|c| c.sha256 == stored.sha256).cloned();
                self.state = State::Idle;
                match chain {
                    Some(chain) => self.send(Done { serial: chain.serial }.into()),
                    None => self.send(ErrorMsg::new(codes::STORED_HASH_MISMATCH, "hash differs", "", true).into()),
                }
            }
            (Message::Error(e), _) if codes::is_frame_level(&e.code) => {
                let frame = self.last_sent.clone();
                self.write(&frame);
            }
            (Message::Error(_), _) => self.state = State::Idle,
            _ => {
                self.state = State::Idle;
                self.send(ErrorMsg::new(codes::UNEXPECTED_MESSAGE, "unexpected", "start again", true).into());
            }
        }
    }

    fn on_csr(&mut self, der: &[u8]) {
        self.csrs += 1;
        if self.csrs <= self.script.crc_errors_on_csr {
            let msg = ErrorMsg::new(codes::FRAME_CRC_MISMATCH, "frame CRC mismatch (scripted)", "re-send", true);
            return self.send(msg.into());
        }
        if let Some(code) = self.script.retryable_error_on_csr.take() {
            self.state = State::Idle;
            return self.send(ErrorMsg::new(code, "scripted transient failure", "start again", true).into());
        }
        match self.issue(der) {
            Ok(chain) => {
                self.state = State::AwaitStored;
                self.send(chain.into());
            }
            Err(code) => {
                self.state = State::Idle;
                self.send(ErrorMsg::new(code, "the CSR was refused", "", false).into());
            }
        }
    }

    fn issue(&mut self, der: &[u8]) -> Result<Chain, &'static str> {
        let spki = spki_of(der);
        if let Some(chain) = self.issued.get(&spki) {
            return Ok(chain.clone());
        }
        let csr = parse_csr(der).ok_or("csr-malformed")?;
        if !self.script.accept_bad_signatures && csr.verify_signature().is_err() {
            return Err("csr-bad-signature");
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(&spki).map_err(|_| "csr-malformed")?;
        let serial = self.session_serial.clone().ok_or("unexpected-message")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|_| "internal")?;
        params.distinguished_name.push(DnType::CommonName, serial.as_str());
        let signer = &self.script.signer.issuer;
        let cert = if self.script.wrong_key {
            let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| "internal")?;
            params.signed_by(&other, signer)
        } else {
            params.signed_by(&public_key, signer)
        }
        .map_err(|_| "internal")?;
        let ca = self.script.chain_ca.as_ref().unwrap_or(&self.script.signer);
        let text = format!("{}{}", cert_pem(cert.der()), ca.pem());
        let chain = Chain { serial, sha256: sha256_hex(text.as_bytes()), chain: text };
        self.issued.insert(spki, chain.clone());
        Ok(chain)
    }

    fn send(&mut self, msg: Message) {
        let frame = encode(&msg).expect("the scripted station encodes");
        let damage = matches!(msg, Message::Welcome(_)) && std::mem::take(&mut self.script.damage_first_welcome);
        self.log.sent.push(msg);
        self.last_sent = frame.clone();
        let mut wire = frame;
        if damage {
            wire[20] ^= 0x02;
        }
        self.write(&wire);
    }

    fn write(&mut self, frame: &[u8]) {
        // The simulator may be "unplugged": a failed write is what a real port does then.
        let _ = self.port.write_all(frame);
    }
}

fn parse_csr(der: &[u8]) -> Option<x509_parser::certification_request::X509CertificationRequest<'_>> {
    use x509_parser::prelude::FromDer;
    x509_parser::certification_request::X509CertificationRequest::from_der(der).ok().map(|(_, csr)| csr)
}

/// The DER SubjectPublicKeyInfo of a CSR, or empty if it does not parse.
pub fn spki_of(csr_der: &[u8]) -> Vec<u8> {
    parse_csr(csr_der).map(|csr| csr.certification_request_info.subject_pki.raw.to_vec()).unwrap_or_default()
}
