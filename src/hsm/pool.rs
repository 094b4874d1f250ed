//! A bounded pool of PKCS#11 sessions, handed out as leases that always give their session back, or close
//! it, even when the thread holding one panics. A check-out waits for a free session at most
//! `[hsm] session_wait_ms`.
//!
//! The pool is also the gate that healing closes: while the module is being re-initialised, check-outs
//! fail at once (`hsm-unavailable`), and the healer waits until no lease is out before C_Finalize, so no
//! thread is inside the module when it is finalised. Sessions carry the generation they were opened in;
//! one from before a re-initialisation is never reused.

use super::HsmError;
use super::error::Step;
use cryptoki::context::Pkcs11;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether the pool hands out sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// The token failed; the module is being re-initialised. The cause is what failed.
    Healing(String),
    /// Healing stopped for good (the token refused the PIN): a person must act.
    Stopped(String),
}

pub(super) struct Pool {
    max: usize,
    wait: Duration,
    state: Mutex<State>,
    /// A session came back (one waiter is woken per session: no herd of benches waking for one session).
    freed: Condvar,
    /// The gate changed, or the last lease came back (everyone waiting looks again).
    changed: Condvar,
}

struct State {
    idle: Vec<Session>,
    in_use: usize,
    slot: Slot,
    generation: u64,
    gate: Gate,
}

/// A checked-out session. Dropping it returns the session to the pool, or closes it when it was
/// discarded, the thread is panicking, or the module was re-initialised meanwhile.
pub(super) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    generation: u64,
    keep: bool,
}

impl Lease<'_> {
    pub fn session(&self) -> &Session {
        self.session.as_ref().expect("a lease holds its session until dropped")
    }

    /// The module generation this session belongs to (key handles are only valid within one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Close this session instead of returning it (the module reported it broken).
    pub fn discard(&mut self) {
        self.keep = false;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        let mut st = self.pool.lock();
        let reuse = self.keep && !std::thread::panicking() && st.generation == self.generation && st.gate == Gate::Open;
        if reuse {
            st.idle.push(session);
        } else {
            // Closed before the lease counts as returned: the healer must not finalise the module while this
            // thread is still inside C_CloseSession.
            drop(st);
            drop(session);
            st = self.pool.lock();
        }
        st.in_use -= 1;
        let last = st.in_use == 0;
        drop(st);
        self.pool.freed.notify_one();
        if last {
            self.pool.changed.notify_all();
        }
    }
}

impl Pool {
    pub fn new(max: usize, wait: Duration, slot: Slot) -> Pool {
        Pool {
            max: max.max(1),
            wait,
            state: Mutex::new(State { idle: Vec::new(), in_use: 0, slot, generation: 1, gate: Gate::Open }),
            freed: Condvar::new(),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session: an idle one, else a new one while fewer than `max` are open, else the first one returned
    /// within the wait.
    pub fn checkout(&self, ctx: &Pkcs11) -> Result<Lease<'_>, HsmError> {
        let started = Instant::now();
        let deadline = started + self.wait;
        let mut st = self.lock();
        loop {
            match &st.gate {
                Gate::Open => {}
                Gate::Healing(cause) => return Err(HsmError::Unavailable { cause: cause.clone() }),
                Gate::Stopped(cause) => return Err(HsmError::RecoveryStopped { cause: cause.clone() }),
            }
            let generation = st.generation;
            if let Some(session) = st.idle.pop() {
                st.in_use += 1;
                return Ok(Lease { pool: self, session: Some(session), generation, keep: true });
            }
            if st.in_use < self.max {
                st.in_use += 1;
                let slot = st.slot;
                drop(st);
                return match ctx.open_rw_session(slot) {
                    Ok(session) => Ok(Lease { pool: self, session: Some(session), generation, keep: true }),
                    Err(e) => {
                        let mut st = self.lock();
                        st.in_use -= 1;
                        let last = st.in_use == 0;
                        drop(st);
                        self.freed.notify_one();
                        if last {
                            self.changed.notify_all();
                        }
                        Err(HsmError::ck(Step::OpenSession, "C_OpenSession")(e))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                let waited_ms = now.duration_since(started).as_millis() as u64;
                return Err(HsmError::Busy { waited_ms, max_sessions: self.max });
            }
            st = self.freed.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Closes the gate. True when it was open (the caller is the one to heal).
    pub fn close(&self, gate: Gate) -> bool {
        let mut st = self.lock();
        let was_open = st.gate == Gate::Open;
        if was_open || matches!(gate, Gate::Stopped(_)) {
            st.gate = gate;
        }
        drop(st);
        self.freed.notify_all();
        self.changed.notify_all();
        was_open
    }

    /// Waits until every lease is back, then hands over the idle sessions (for closing before C_Finalize).
    pub fn drain(&self) -> Vec<Session> {
        let mut st = self.lock();
        let started = Instant::now();
        let mut warned = false;
        while st.in_use > 0 {
            st = self.changed.wait_timeout(st, Duration::from_secs(5)).unwrap_or_else(|p| p.into_inner()).0;
            if st.in_use > 0 && !warned && started.elapsed() >= Duration::from_secs(5) {
                tracing::warn!(
                    in_flight = st.in_use,
                    "waiting for HSM calls in flight before re-initialising the module"
                );
                warned = true;
            }
        }
        std::mem::take(&mut st.idle)
    }

    /// Opens the gate again on the (re-found) slot, in a new generation.
    pub fn reopen(&self, slot: Slot) {
        let mut st = self.lock();
        st.slot = slot;
        st.generation += 1;
        st.gate = Gate::Open;
        drop(st);
        self.freed.notify_all();
        self.changed.notify_all();
    }

    pub fn gate(&self) -> Gate {
        self.lock().gate.clone()
    }

    /// (sessions checked out, sessions idle).
    pub fn usage(&self) -> (usize, usize) {
        let st = self.lock();
        (st.in_use, st.idle.len())
    }

    pub fn max(&self) -> usize {
        self.max
    }
}
