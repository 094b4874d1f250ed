//! One port's device sessions: HELLO → WELCOME → CSR → CHAIN → STORED → DONE, with the timers and
//! error answers of schemas/bench-protocol.md (section 4.2 is the state table this follows).

use super::{BenchState, OperatorLine, Shared};
use crate::config::SerialSource;
use crate::error::{Coded, Error};
use crate::issue::{DeviceErrorReport, IssueRequest, Issued};
use crate::ledger::{Reservation, Writer};
use crate::serial::Port;
use station_protocol::{
    self as protocol, Chain, Decoder, Done, ErrorMsg, FrameError, Hello, Message, Welcome, codes, serial_source,
};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The station's timers (section 5.1) and the frame error limit.
#[derive(Debug, Clone)]
pub struct Timers {
    pub hello: Duration,
    pub csr: Duration,
    pub stored: Duration,
    pub max_frame_errors: u32,
}

enum State {
    Idle,
    AwaitCsr(Instant),
    AwaitStored(Instant),
}

impl State {
    /// The name the ledger records with a device's ERROR.
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::AwaitCsr(_) => "await-csr",
            State::AwaitStored(_) => "await-stored",
        }
    }
}

/// The device last sent DONE on this port: an ERROR that arrives after DONE (`done-serial-mismatch`) is its.
struct Finished {
    serial: String,
    issuance: i64,
}

/// The device being provisioned on this port.
struct Device {
    started: Instant,
    hello_serial: Option<String>,
    model: String,
    firmware: String,
    reservation: Option<ReservationGuard>,
    issued: Option<Issued>,
}

impl Device {
    fn serial(&self) -> String {
        self.issued
            .as_ref()
            .map(|i| i.serial.clone())
            .or_else(|| self.reservation.as_ref().map(|r| r.r.serial.clone()))
            .or_else(|| self.hello_serial.clone())
            .unwrap_or_default()
    }
}

/// A station serial held for a device; handed back unless an issuance used it.
struct ReservationGuard {
    writer: Arc<Writer>,
    r: Reservation,
    used: bool,
}

impl Drop for ReservationGuard {
    fn drop(&mut self) {
        if !self.used {
            self.writer.release(self.r.number);
        }
    }
}

/// One port's protocol state.
pub struct Session<'a> {
    shared: &'a Shared,
    /// What the bench shows the supervisor, the metrics and the line view.
    board: &'a BenchState,
    bench: &'a str,
    decoder: Decoder,
    state: State,
    device: Option<Device>,
    last_sent: Option<Vec<u8>>,
    /// Consecutive frame-level errors in either direction: damaged frames received, and `frame-*` ERRORs received
    /// (each answered by a re-send). Reset by every other frame (spec 4.2).
    frame_errors: u32,
    partial_since: Option<Instant>,
    finished: Option<Finished>,
}

impl<'a> Session<'a> {
    pub fn new(shared: &'a Shared, state: &'a BenchState) -> Session<'a> {
        Session {
            shared,
            board: state,
            bench: &state.name,
            decoder: Decoder::new(),
            state: State::Idle,
            device: None,
            last_sent: None,
            frame_errors: 0,
            partial_since: None,
            finished: None,
        }
    }

    /// Serves devices until the station stops (`Ok`) or the port fails (`Err`).
    pub fn run(&mut self, port: &mut dyn Port) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            self.board.beat(self.device.is_some());
            if self.shared.abort.load(Ordering::Relaxed) {
                self.end_with_failure("station-stopped", "the station stopped before the device finished");
                return Ok(());
            }
            if self.shared.stopping.load(Ordering::Relaxed) && matches!(self.state, State::Idle) {
                return Ok(());
            }
            let n = match port.read_some(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    self.end_with_failure("port-lost", "the device or its cable went away; reconnect and retry");
                    return Err(e);
                }
            };
            if n > 0 {
                self.decoder.push(&buf[..n]);
            }
            let handled = (|| {
                while let Some(frame) = self.decoder.next_frame() {
                    self.handle(port, frame)?;
                }
                self.check_timers(port)
            })();
            if let Err(e) = handled {
                self.end_with_failure("port-lost", "the device or its cable went away; reconnect and retry");
                return Err(e);
            }
        }
    }

    fn handle(&mut self, port: &mut dyn Port, frame: Result<Message, FrameError>) -> io::Result<()> {
        self.partial_since = None;
        let msg = match frame {
            Ok(m) => m,
            Err(fe) => return self.frame_error(port, &fe),
        };
        if let Message::Error(e) = &msg
            && codes::is_frame_level(&e.code)
        {
            return self.resend(port);
        }
        self.frame_errors = 0;
        match (msg, &self.state) {
            (Message::Hello(h), _) => self.hello(port, h),
            (Message::Csr(c), State::AwaitCsr(_) | State::AwaitStored(_)) => self.csr(port, c.der),
            (Message::Stored(s), State::AwaitStored(_)) => self.stored(port, &s.sha256),
            (Message::Error(e), _) => {
                self.device_error(&e);
                Ok(())
            }
            (other, _) => {
                let kind = other.message_type().name();
                let state = match self.state {
                    State::Idle => "no session is open",
                    State::AwaitCsr(_) => "the station waits for CSR",
                    State::AwaitStored(_) => "the station waits for STORED",
                };
                self.send_error(
                    port,
                    &ErrorMsg::new(
                        codes::UNEXPECTED_MESSAGE,
                        format!("{kind} arrived while {state}"),
                        "start again from HELLO",
                        true,
                    ),
                )?;
                self.end_with_failure(codes::UNEXPECTED_MESSAGE, "the device sent a message out of order; it retries");
                Ok(())
            }
        }
    }

    /// A `frame-*` ERROR from the device: re-send the last frame byte for byte, unless the errors in a row (either
    /// direction) reached the limit.
    fn resend(&mut self, port: &mut dyn Port) -> io::Result<()> {
        self.board.frame_resent();
        self.frame_errors += 1;
        if self.frame_errors >= self.shared.timers.max_frame_errors {
            return self.too_many_frame_errors(port);
        }
        match self.last_sent.clone() {
            Some(last) => port.write_frame(&last),
            None => Ok(()),
        }
    }

    /// An ERROR from the device (not `frame-*`): recorded in the ledger against the device it concerns and shown on
    /// the operator line; the session ends. Nothing is sent back (spec 6.3).
    fn device_error(&mut self, e: &ErrorMsg) {
        tracing::info!(bench = self.bench, code = %e.code, message = %e.message, "device reported an error");
        let state = if self.device.is_none() && self.finished.is_some() { "done" } else { self.state.name() };
        let chain_sent = matches!(self.state, State::AwaitStored(_));
        let (serial, issuance) = match (&self.device, &self.finished) {
            (Some(d), _) => (d.serial(), d.issued.as_ref().filter(|_| chain_sent).map(|i| i.id)),
            (None, Some(f)) => (f.serial.clone(), Some(f.issuance)),
            (None, None) => (String::new(), None),
        };
        let report = DeviceErrorReport {
            bench: self.bench,
            serial: &serial,
            code: &e.code,
            message: &e.message,
            retryable: e.retryable,
            state,
            issuance,
        };
        if let Err(err) = self.shared.engine.device_error(&report) {
            tracing::warn!(bench = self.bench, error = %err, "could not record the device's ERROR");
        }
        let hint = format!("device: {}", e.message);
        if self.device.is_some() {
            self.end_with_failure(&e.code, &hint);
            return;
        }
        self.finished = None;
        self.shared.stats.device_failed(&e.code);
        self.line(OperatorLine { bench: self.bench.into(), serial, ok: false, what: e.code.clone(), millis: 0, hint });
    }

    fn hello(&mut self, port: &mut dyn Port, h: Hello) -> io::Result<()> {
        // A HELLO always starts a new session; an abandoned attempt needs no line, but a chain it was sent is
        // recorded as delivered.
        if let Some(d) = self.device.take() {
            self.record_delivery(&d);
        }
        self.finished = None;
        self.state = State::Idle;
        if self.shared.stopping.load(Ordering::Relaxed) {
            return self.send_error(
                port,
                &ErrorMsg::new(codes::STATION_STOPPING, "the station is shutting down", "retry when it is back", true),
            );
        }
        let engine = &self.shared.engine;
        let mut device = Device {
            started: Instant::now(),
            hello_serial: h.serial,
            model: h.model,
            firmware: h.firmware,
            reservation: None,
            issued: None,
        };
        if let Err(e) = engine.check_hello(device.hello_serial.as_deref(), h.revision, self.bench) {
            self.device = Some(device);
            return self.engine_error(port, &e);
        }
        let welcome_serial = match engine.policy().source {
            SerialSource::Device => device.hello_serial.clone(),
            SerialSource::Station => match engine.reserve() {
                Ok(r) => {
                    let s = r.serial.clone();
                    device.reservation = Some(ReservationGuard { writer: engine.writer().clone(), r, used: false });
                    Some(s)
                }
                Err(e) => {
                    self.device = Some(device);
                    return self.engine_error(port, &e);
                }
            },
        };
        let key_types = engine.policy().allowed.iter().map(|k| k.to_string()).collect();
        // Revision 1.1 fields go only to a device that announced a revision: a 1.0 device meets no unknown field.
        let (source, revision) = match h.revision {
            Some(r) => {
                let source = match engine.policy().source {
                    SerialSource::Station => serial_source::STATION,
                    SerialSource::Device => serial_source::DEVICE,
                };
                (Some(source.to_string()), Some(r.min(protocol::REVISION)))
            }
            None => (None, None),
        };
        self.device = Some(device);
        self.state = State::AwaitCsr(Instant::now() + self.shared.timers.csr);
        let welcome = Welcome {
            station: self.shared.station_id.clone(),
            key_types,
            serial: welcome_serial,
            serial_source: source,
            revision,
        };
        self.send(port, &Message::Welcome(welcome))
    }

    fn csr(&mut self, port: &mut dyn Port, der: Vec<u8>) -> io::Result<()> {
        let received = Instant::now();
        let Some(device) = self.device.as_mut() else { return Ok(()) };
        let station_mode = self.shared.engine.policy().source == SerialSource::Station;
        let req = IssueRequest {
            csr: der,
            serial: if station_mode { None } else { device.hello_serial.clone() },
            reservation: device.reservation.as_ref().map(|g| g.r.clone()),
            bench: self.bench.to_string(),
            operator: String::new(),
            reissue: None,
            // HELLO's serial is the device's identity; the CSR's CN may be anything (e.g. the model).
            ignore_cn: device.hello_serial.is_some(),
            device_model: device.model.clone(),
            device_firmware: device.firmware.clone(),
        };
        let issued = match self.shared.engine.issue(&req) {
            Ok(i) => i,
            Err(e) => return self.engine_error(port, &e),
        };
        if let Some(g) = device.reservation.as_mut() {
            g.used |= issued.reservation_used;
        }
        tracing::debug!(bench = self.bench, serial = %issued.serial, outcome = ?issued.outcome, "chain ready");
        // The ledger row is durable: the engine returns only after its commit.
        let chain = Chain {
            serial: issued.serial.clone(),
            sha256: issued.chain_sha256.clone(),
            chain: issued.chain_pem.clone(),
        };
        device.issued = Some(issued);
        // Once CHAIN is written, a device that does not confirm leaves a `delivered` row (record_delivery).
        self.send(port, &Message::Chain(chain))?;
        // The same figure twice: exact percentiles for serve's summary, buckets for /metrics.
        let took = received.elapsed();
        self.shared.stats.chain_latency(took);
        self.board.issuance(took);
        self.state = State::AwaitStored(Instant::now() + self.shared.timers.stored);
        Ok(())
    }

    fn stored(&mut self, port: &mut dyn Port, sha256: &str) -> io::Result<()> {
        let Some(device) = self.device.take() else { return Ok(()) };
        let Some(issued) = device.issued.as_ref() else { return Ok(()) };
        match self.shared.engine.confirm(issued, self.bench, sha256) {
            Ok(()) => {
                self.state = State::Idle;
                self.finished = Some(Finished { serial: issued.serial.clone(), issuance: issued.id });
                // The ledger row is confirmed: the device is provisioned, and its line is due, even if the line
                // drops as DONE goes out (a device unplugged the moment it reads DONE).
                let sent = self.send(port, &Message::Done(Done { serial: issued.serial.clone() }));
                self.shared.stats.device_ok();
                let what = serde_json::to_value(issued.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                tracing::info!(bench = self.bench, serial = %issued.serial, outcome = %what, "device provisioned");
                self.line(OperatorLine {
                    bench: self.bench.into(),
                    serial: issued.serial.clone(),
                    ok: true,
                    what,
                    millis: device.started.elapsed().as_millis(),
                    hint: String::new(),
                });
                sent
            }
            Err(e) => {
                self.device = Some(device);
                self.engine_error(port, &e)
            }
        }
    }

    /// A frame that did not decode. Only `frame-*` errors count towards the limit (spec 4.2): an intact frame with
    /// a bad version, type or body is answered with its own code, ends the session, and resets the count.
    fn frame_error(&mut self, port: &mut dyn Port, fe: &FrameError) -> io::Result<()> {
        tracing::debug!(bench = self.bench, code = fe.code(), "damaged frame");
        self.board.frame_error();
        if !fe.retryable() {
            self.frame_errors = 0;
            self.send_error(port, &fe.to_error_msg())?;
            self.end_with_failure(fe.code(), fe.hint());
            return Ok(());
        }
        self.frame_errors += 1;
        if self.frame_errors >= self.shared.timers.max_frame_errors {
            return self.too_many_frame_errors(port);
        }
        self.send_error(port, &fe.to_error_msg())
    }

    fn too_many_frame_errors(&mut self, port: &mut dyn Port) -> io::Result<()> {
        self.frame_errors = 0;
        self.send_error(
            port,
            &ErrorMsg::new(
                codes::TOO_MANY_FRAME_ERRORS,
                format!("{} frame errors in a row", self.shared.timers.max_frame_errors),
                "check the cable, baud rate and ground; the device starts again from HELLO",
                true,
            ),
        )?;
        self.end_with_failure(codes::TOO_MANY_FRAME_ERRORS, "check the cable, baud rate and ground");
        Ok(())
    }

    fn check_timers(&mut self, port: &mut dyn Port) -> io::Result<()> {
        let now = Instant::now();
        let expired = match self.state {
            State::Idle => {
                if self.decoder.is_mid_frame() {
                    let since = *self.partial_since.get_or_insert(now);
                    if now - since > self.shared.timers.hello {
                        self.decoder.reset();
                        self.partial_since = None;
                        return self.send_error(port, &timeout_msg("a frame"));
                    }
                } else {
                    self.partial_since = None;
                }
                None
            }
            State::AwaitCsr(d) if now > d => Some("CSR"),
            State::AwaitStored(d) if now > d => Some("STORED"),
            _ => None,
        };
        if let Some(what) = expired {
            self.send_error(port, &timeout_msg(what))?;
            self.end_with_failure(codes::TIMEOUT, &format!("no {what} in time: check the device, then retry"));
        }
        Ok(())
    }

    fn engine_error(&mut self, port: &mut dyn Port, e: &Error) -> io::Result<()> {
        self.send_error(port, &ErrorMsg::new(e.code(), e.to_string(), e.hint(), e.retryable()))?;
        self.end_with_failure(e.code(), &e.hint());
        Ok(())
    }

    fn send(&mut self, port: &mut dyn Port, msg: &Message) -> io::Result<()> {
        let bytes = match protocol::encode(msg) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(bench = self.bench, error = %e, "cannot encode a frame");
                let fallback =
                    ErrorMsg::new(e.code(), e.to_string(), "report this to the station's maintainers", false);
                protocol::encode(&Message::Error(fallback)).map_err(io::Error::other)?
            }
        };
        port.write_frame(&bytes)?;
        self.last_sent = Some(bytes);
        Ok(())
    }

    fn send_error(&mut self, port: &mut dyn Port, e: &ErrorMsg) -> io::Result<()> {
        self.send(port, &Message::Error(e.clone()))
    }

    /// Ends the device's session with a failure line (nothing to say when no device was in progress).
    fn end_with_failure(&mut self, code: &str, hint: &str) {
        let Some(d) = self.device.take() else {
            self.state = State::Idle;
            return;
        };
        self.record_delivery(&d);
        self.shared.stats.device_failed(code);
        tracing::info!(bench = self.bench, serial = %d.serial(), code, "device failed");
        self.line(OperatorLine {
            bench: self.bench.into(),
            serial: d.serial(),
            ok: false,
            what: code.into(),
            millis: d.started.elapsed().as_millis(),
            hint: hint.into(),
        });
    }

    /// A device that was sent its CHAIN but will not confirm it: its row becomes `delivered` (one that confirms
    /// goes from `issued` straight to `confirmed`, one ledger event fewer per device). Leaves the state Idle.
    fn record_delivery(&mut self, d: &Device) {
        let chain_sent = matches!(self.state, State::AwaitStored(_));
        self.state = State::Idle;
        if let Some(issued) = d.issued.as_ref().filter(|_| chain_sent)
            && let Err(e) = self.shared.engine.delivered(issued, self.bench)
        {
            tracing::warn!(bench = self.bench, error = %e, "could not record the delivery");
        }
    }

    fn line(&self, l: OperatorLine) {
        self.board.device_done(&l);
        (self.shared.lines)(&l);
    }
}

fn timeout_msg(what: &str) -> ErrorMsg {
    ErrorMsg::new(codes::TIMEOUT, format!("no {what} within the station's timeout"), "start again from HELLO", true)
}
