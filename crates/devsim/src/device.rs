//! One simulated device: HELLO → WELCOME → CSR → CHAIN → (check, store) → STORED → DONE, with the protocol's
//! recovery rules (schemas/bench-protocol.md section 5):
//! - an ERROR with a `frame-*` code: re-send the last frame unchanged;
//! - a frame from the station that does not decode: answer ERROR with its code, so the station re-sends;
//! - `--max-frame-errors` of those two in a row: ERROR too-many-frame-errors, then start again from HELLO;
//! - while waiting for WELCOME, ERROR `timeout` or `unexpected-message` answers an earlier session: ignored;
//! - a valid message the device does not wait for (a late CHAIN after a restart): ignored;
//! - any other retryable ERROR, or no answer within `--reply-timeout`: start again from HELLO with the same key,
//!   after a back-off, at most `--retries` times;
//! - `csr-key-type-not-allowed` for the key it holds: a new key of the first offered type it can make, and again;
//! - a non-retryable ERROR, or a chain the device refuses: stop.

use super::args::{DevsimArgs, KeyTypeArg, firmware};
use super::keys::DeviceKey;
use super::report::DeviceReport;
use super::store::{self, Stored};
use super::verify::{self, TrustedCa};
use super::wire::{Incoming, Wire};
use super::{codes, misbehave};
use station_protocol::{self as protocol, Chain, Csr, Done, ErrorMsg, Hello, Message, PROTOCOL_VERSION, Welcome};
use std::time::{Duration, Instant};

/// The engine's code for a key type `[policy] key_types` does not allow.
const CSR_KEY_TYPE_NOT_ALLOWED: &str = "csr-key-type-not-allowed";
/// The longest back-off before a retry.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Why a device ended without being provisioned: a stable code and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure { code: code.into(), message: message.into() }
    }
    fn from_error(e: &ErrorMsg) -> Failure {
        Failure::new(e.code.clone(), format!("the station answered ERROR {}: {}", e.code, e.message))
    }
    pub fn port_io(e: &std::io::Error) -> Failure {
        Failure::new(codes::PORT_IO, format!("the serial port failed: {e}"))
    }
}

/// How a session attempt ended early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Start again from HELLO with the same key (retryable).
    Restart(Failure),
    /// Give up on this device.
    Fail(Failure),
}

impl Stop {
    pub fn into_failure(self) -> Failure {
        match self {
            Stop::Restart(f) | Stop::Fail(f) => f,
        }
    }
}

/// A provisioned device.
#[derive(Debug)]
pub(crate) struct Provisioned {
    pub serial: String,
    pub stored: Stored,
}

/// What happened to one device, for its report.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    pub serial: Option<String>,
    pub retries: u32,
    pub resends: u32,
    pub codes_seen: Vec<String>,
    /// Of those, the codes of the station's own ERROR frames (not the device's decode errors).
    pub station_errors: Vec<String>,
    /// The chain's SHA-256 from the first CHAIN this device accepted; a retry must get the identical chain.
    pub chain_sha256: Option<String>,
    /// Valid messages that came when the device waited for something else, and were ignored (e.g. a late CHAIN).
    pub ignored: Vec<Message>,
}

/// One device on the wire.
pub(crate) struct Device<'a> {
    pub args: &'a DevsimArgs,
    pub cas: &'a [TrustedCa],
    pub wire: &'a mut Wire,
    pub key: DeviceKey,
    pub own_serial: Option<String>,
    pub trace: Trace,
    /// `--misbehave garbage`: send a noise line before every frame.
    pub noise: bool,
    /// The key types the last WELCOME offered.
    pub offered: Vec<String>,
}

/// Device `index`'s key (1-based), with its CSR made ahead when it has its own serial.
pub(crate) fn pregenerate(args: &DevsimArgs, index: u32) -> Result<DeviceKey, String> {
    let mut key = DeviceKey::generate(args.key_type)?;
    if let Some(serial) = args.serial_for(index) {
        key.prepare_csr(&serial)?;
    }
    Ok(key)
}

/// Runs device number `index` (1-based) to the end and reports it, with its key made ahead or (`None`) now.
pub(crate) fn run_one(
    args: &DevsimArgs,
    cas: &[TrustedCa],
    wire: &mut Wire,
    index: u32,
    made: Option<DeviceKey>,
) -> DeviceReport {
    let own_serial = args.serial_for(index);
    // At ERROR level so that the span, and its `serial` field, is on every event the filter lets through.
    let span = tracing::error_span!("device", index, serial = tracing::field::Empty);
    if let Some(serial) = &own_serial {
        span.record("serial", serial.as_str());
    }
    let _entered = span.enter();
    let started = Instant::now();
    let before = wire.stats();
    wire.discard_input();
    let key = match made.map_or_else(|| DeviceKey::generate(args.key_type), Ok) {
        Ok(key) => key,
        Err(e) => {
            let failure = Failure::new(codes::KEY_GENERATION_FAILED, format!("cannot generate the device key: {e}"));
            return DeviceReport::failed_early(index, own_serial, failure, started.elapsed());
        }
    };
    let keygen = started.elapsed();
    let trace = Trace { serial: own_serial.clone(), ..Trace::default() };
    let mut device = Device { args, cas, wire, key, own_serial, trace, noise: false, offered: Vec::new() };
    let (result, misbehaviour) = match args.misbehave {
        None => (device.provision().map(Some), None),
        Some(mode) => {
            let (result, report) = misbehave::run(&mut device, mode);
            (result, Some(report))
        }
    };
    let stats = device.wire.stats().since(&before);
    let report = DeviceReport::new(index, device.trace, result, misbehaviour, stats, started.elapsed(), keygen);
    report.log();
    report
}

impl Device<'_> {
    /// Provisions the device, starting again from HELLO (same key) after retryable failures.
    pub fn provision(&mut self) -> Result<Provisioned, Failure> {
        let mut failed_sessions = 0u32;
        loop {
            let stop = match self.session() {
                Ok(done) => return Ok(done),
                Err(stop) => stop,
            };
            let failure = match stop {
                Stop::Fail(failure) if failure.code == CSR_KEY_TYPE_NOT_ALLOWED => {
                    self.new_key_of_offered_type(failure)?
                }
                Stop::Fail(failure) => return Err(failure),
                Stop::Restart(failure) => failure,
            };
            failed_sessions += 1;
            if failed_sessions > self.args.retries {
                let message = format!("{} (gave up after {failed_sessions} sessions)", failure.message);
                return Err(Failure::new(failure.code, message));
            }
            self.trace.retries += 1;
            let pause = backoff(self.args.backoff, failed_sessions);
            tracing::warn!(code = %failure.code, retry = failed_sessions, ?pause, "starting again from HELLO, same key");
            std::thread::sleep(pause);
            self.wire.discard_input();
        }
    }

    fn session(&mut self) -> Result<Provisioned, Stop> {
        let welcome = self.hello()?;
        let csr = self.csr_der(&welcome, false)?;
        let chain = self.request(&Csr { der: csr }.into(), "CHAIN", pick_chain)?;
        self.complete(chain)
    }

    /// The station refused the key type of the key this device holds (no certificate was issued for it, or the
    /// station would have served that chain): a key of the first offered type the device can make, and a new
    /// session. None of them: ERROR no-acceptable-key-type, and stop.
    fn new_key_of_offered_type(&mut self, refused: Failure) -> Result<Failure, Failure> {
        let current = self.key.kind();
        let next = self.offered.iter().find_map(|t| {
            [KeyTypeArg::EcP256, KeyTypeArg::Rsa2048].into_iter().find(|k| k.as_str() == t && *k != current)
        });
        let Some(kind) = next else {
            let message =
                format!("the station accepts {} and this device makes only ec-p256, rsa-2048", self.offered.join(", "));
            return Err(self.refuse(codes::NO_ACCEPTABLE_KEY_TYPE, message, false));
        };
        tracing::warn!(from = current.as_str(), to = kind.as_str(), "the station refused the key type; a new key");
        self.key = DeviceKey::generate(kind)
            .map_err(|e| Failure::new(codes::KEY_GENERATION_FAILED, format!("cannot generate the device key: {e}")))?;
        self.trace.chain_sha256 = None;
        Ok(refused)
    }

    /// HELLO → WELCOME. The device keeps the key it holds even when WELCOME does not list its type: the station
    /// serves a chain it already issued for that key, and refuses a new one with `csr-key-type-not-allowed`.
    pub fn hello(&mut self) -> Result<Welcome, Stop> {
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            model: self.args.model.clone(),
            firmware: firmware(),
            serial: self.own_serial.clone(),
            revision: (self.args.revision > 0).then_some(self.args.revision),
        };
        let welcome = self.request(&hello.into(), "WELCOME", pick_welcome)?;
        self.offered = welcome.key_types.clone();
        if let Some(serial) = welcome.serial.as_deref().filter(|_| self.trace.serial.is_none()) {
            tracing::Span::current().record("serial", serial);
            self.trace.serial = Some(serial.to_string());
        }
        Ok(welcome)
    }

    /// The CSR (or, for `bad-csr`, one with a broken signature), CN = the serial if known, else the model.
    pub fn csr_der(&self, welcome: &Welcome, broken: bool) -> Result<Vec<u8>, Stop> {
        let cn = self.own_serial.as_deref().or(welcome.serial.as_deref()).unwrap_or(&self.args.model);
        let der = if broken { self.key.bad_csr_der(cn) } else { self.key.csr_der(cn) };
        der.map_err(|e| Stop::Fail(Failure::new(codes::KEY_GENERATION_FAILED, format!("cannot make the CSR: {e}"))))
    }

    /// Checks the chain, stores it, and confirms: STORED → DONE.
    pub fn complete(&mut self, chain: Chain) -> Result<Provisioned, Stop> {
        self.accept_chain(&chain)?;
        let stored = match store::store(
            &self.args.out,
            &chain.serial,
            &self.key.pkcs8_pem(),
            &chain.chain,
            !self.args.no_sync,
        ) {
            Ok(stored) => stored,
            Err(e) => {
                let message = format!("writing DIR/{}/ failed: {e}", chain.serial);
                return Err(Stop::Restart(self.refuse(codes::FLASH_WRITE_FAILED, message, true)));
            }
        };
        let stored_msg = protocol::Stored { sha256: stored.sha256.clone() };
        let done = self.request(&stored_msg.into(), "DONE", pick_done)?;
        if done.serial != chain.serial {
            let message = format!("DONE names serial {} but CHAIN named {}", done.serial, chain.serial);
            return Err(Stop::Fail(self.refuse(codes::DONE_SERIAL_MISMATCH, message, false)));
        }
        Ok(Provisioned { serial: chain.serial, stored })
    }

    /// The device's checks on a CHAIN (verify.rs), and that a retry got the identical chain.
    pub fn accept_chain(&mut self, chain: &Chain) -> Result<(), Stop> {
        let own = self.own_serial.clone();
        if let Err(refusal) = verify::check_chain(chain, &self.key.spki_der(), own.as_deref(), self.cas) {
            return Err(Stop::Fail(self.refuse(refusal.code, refusal.message, false)));
        }
        if let Some(first) = self.trace.chain_sha256.as_ref().filter(|first| **first != chain.sha256) {
            let message = format!("a retry with the same key got chain {} but the first was {first}", chain.sha256);
            return Err(Stop::Fail(self.refuse(codes::CHAIN_NOT_IDEMPOTENT, message, false)));
        }
        self.trace.chain_sha256 = Some(chain.sha256.clone());
        self.trace.serial = Some(chain.serial.clone());
        tracing::Span::current().record("serial", chain.serial.as_str());
        Ok(())
    }

    /// Tells the station why the device stops (an ERROR frame, best effort) and returns the failure.
    fn refuse(&mut self, code: &str, message: String, retryable: bool) -> Failure {
        tracing::warn!(code, %message, "the device refuses");
        let error = ErrorMsg::new(code, message.clone(), "", retryable);
        if let Err(e) = self.send(&error.into()) {
            tracing::warn!(error = %e, "could not send ERROR to the station");
        }
        Failure::new(code, message)
    }

    /// Sends a message (after a noise line with `--misbehave garbage`).
    pub fn send(&mut self, msg: &Message) -> std::io::Result<()> {
        if self.noise {
            let noise = misbehave::noise(self.wire.rng());
            self.wire.send_raw(&noise)?;
        }
        self.wire.send(msg)
    }

    /// Sends `msg` and waits for the answer `pick` takes, applying the recovery rules.
    pub fn request<T>(
        &mut self,
        msg: &Message,
        want: &'static str,
        pick: fn(Message) -> Result<T, Message>,
    ) -> Result<T, Stop> {
        let timeout = self.args.reply_timeout;
        self.send(msg).map_err(|e| Stop::Fail(Failure::port_io(&e)))?;
        let mut deadline = Instant::now() + timeout;
        let (mut frame_errors, mut unexpected) = (0u32, None);
        loop {
            let incoming = self.wire.recv(deadline).map_err(|e| Stop::Fail(Failure::port_io(&e)))?;
            match incoming {
                Incoming::Timeout => {
                    let failure = match unexpected {
                        Some(kind) => Failure::new(
                            protocol::codes::UNEXPECTED_MESSAGE,
                            format!("waiting for {want}, the station sent {kind}"),
                        ),
                        None => Failure::new(codes::REPLY_TIMEOUT, format!("no {want} within {timeout:?}")),
                    };
                    return Err(Stop::Restart(failure));
                }
                Incoming::Bad(e) => {
                    // The station's frame was damaged: ask for it again (this ERROR becomes our last frame).
                    self.trace.codes_seen.push(e.code().to_string());
                    frame_errors += 1;
                    if frame_errors >= self.args.max_frame_errors {
                        return Err(self.too_many_frame_errors(want, e.code()));
                    }
                    self.send(&e.to_error_msg().into()).map_err(|e| Stop::Fail(Failure::port_io(&e)))?;
                    deadline = Instant::now() + timeout;
                }
                Incoming::Message(Message::Error(e)) => {
                    self.trace.codes_seen.push(e.code.clone());
                    self.trace.station_errors.push(e.code.clone());
                    if want == "WELCOME"
                        && (e.code == protocol::codes::TIMEOUT || e.code == protocol::codes::UNEXPECTED_MESSAGE)
                    {
                        // The station never answers HELLO with these: they end an earlier session (spec 11).
                        tracing::info!(code = %e.code, "ignoring an ERROR that answers an earlier session");
                        continue;
                    }
                    if !protocol::codes::is_frame_level(&e.code) {
                        let failure = Failure::from_error(&e);
                        return Err(if e.retryable { Stop::Restart(failure) } else { Stop::Fail(failure) });
                    }
                    frame_errors += 1;
                    if frame_errors >= self.args.max_frame_errors {
                        return Err(self.too_many_frame_errors(want, &e.code));
                    }
                    self.trace.resends += 1;
                    self.wire.resend_last().map_err(|e| Stop::Fail(Failure::port_io(&e)))?;
                    deadline = Instant::now() + timeout;
                }
                Incoming::Message(other) => match pick(other) {
                    Ok(answer) => return Ok(answer),
                    Err(other) => {
                        tracing::warn!(got = %other.message_type(), want, "ignoring an unexpected message");
                        unexpected = Some(other.message_type().name());
                        self.trace.ignored.push(other);
                    }
                },
            }
        }
    }

    /// The device's own frame-error limit (spec 5.2): tell the station, then start again from HELLO.
    fn too_many_frame_errors(&mut self, want: &str, last: &str) -> Stop {
        let message =
            format!("{} frame errors in a row (last {last}) while waiting for {want}", self.args.max_frame_errors);
        Stop::Restart(self.refuse(protocol::codes::TOO_MANY_FRAME_ERRORS, message, true))
    }
}

fn backoff(base: Duration, failed_sessions: u32) -> Duration {
    let factor = 1u32 << failed_sessions.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

pub(crate) fn pick_welcome(m: Message) -> Result<Welcome, Message> {
    match m {
        Message::Welcome(w) => Ok(w),
        other => Err(other),
    }
}

pub(crate) fn pick_chain(m: Message) -> Result<Chain, Message> {
    match m {
        Message::Chain(c) => Ok(c),
        other => Err(other),
    }
}

fn pick_done(m: Message) -> Result<Done, Message> {
    match m {
        Message::Done(d) => Ok(d),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_is_capped() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 3), Duration::from_secs(2));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 5), Duration::ZERO);
    }
}
