//! Serial blocks: a station in `serial_source = "station"` mode leases blocks of `[registry] lease_size` numbers
//! from the registry in one transaction (the prefix's pool row locked), records each in its ledger before using it,
//! and issues from it offline. A keeper thread asks for the next block when fewer than `lease_low_water` numbers
//! are left, so the benches never wait on the network; a lease the registry granted but the station never recorded
//! (a crash in between) is adopted at the next start, so no block is lost or used twice.

use super::RegistryError;
use super::client::{Target, query_error};
use super::forward::nap;
use super::session::Session;
use crate::Result;
use crate::config::{Config, RegistrySection};
use crate::error::Coded;
use crate::ledger::{self, Lease, Writer};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the benches need to know about leasing: why there is no block, and a way to ask for one now.
#[derive(Debug, Default)]
pub struct LeaseStatus {
    /// The last failure to lease, cleared by a success: (code, message).
    last_error: Mutex<Option<(&'static str, String)>>,
    wake: Condvar,
    woken: Mutex<bool>,
}

impl LeaseStatus {
    pub fn last_error(&self) -> Option<(&'static str, String)> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_error(&self, e: Option<(&'static str, String)>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    /// Asks the keeper to look now (a bench found no serial).
    pub fn poke(&self) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }

    fn wait(&self, d: Duration) {
        let guard = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self.wake.wait_timeout_while(guard, d, |w| !*w).unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }
}

/// Leases the next block of `prefix` for `station_id`, in one transaction.
pub fn lease_block(
    session: &mut Session,
    prefix: &str,
    size: u64,
    first_allowed: u64,
    last_allowed: u64,
) -> Result<Lease, RegistryError> {
    let owned = session.target.clone();
    let target: &str = &owned;
    let q = |op: &'static str| move |e: postgres::Error| query_error(op, target, &e);
    let mut tx = session.client.transaction().map_err(q("begin"))?;
    tx.execute(
        "INSERT INTO registry.serial_pools (prefix, next_first) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&prefix, &(first_allowed as i64)],
    )
    .map_err(q("create the serial pool"))?;
    let next: i64 = tx
        .query_one("SELECT next_first FROM registry.serial_pools WHERE prefix = $1 FOR UPDATE", &[&prefix])
        .map_err(q("lock the serial pool"))?
        .get(0);
    let first = (next.max(0) as u64).max(first_allowed);
    if first > last_allowed {
        return Err(RegistryError::NoFreeBlock(format!(
            "every number of {prefix}{first_allowed}..{prefix}{last_allowed} is leased (the next free is {next})"
        )));
    }
    let last = first.saturating_add(size.max(1) - 1).min(last_allowed);
    tx.execute("UPDATE registry.serial_pools SET next_first = $2 WHERE prefix = $1", &[&prefix, &(last as i64 + 1)])
        .map_err(q("advance the serial pool"))?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO registry.leases (station_id, prefix, first, last) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&session.station_id, &prefix, &(first as i64), &(last as i64)],
        )
        .map_err(q("record the lease"))?
        .get(0);
    tx.commit().map_err(q("commit the lease"))?;
    Ok(Lease { id, prefix: prefix.into(), first, last })
}

/// Leases this station holds in the registry (newest last).
fn registry_leases(session: &mut Session, prefix: &str) -> Result<Vec<Lease>, RegistryError> {
    let rows = session
        .client
        .query(
            "SELECT id, first, last FROM registry.leases WHERE station_id = $1 AND prefix = $2 ORDER BY id",
            &[&session.station_id, &prefix],
        )
        .map_err(|e| query_error("read the leases", &session.target, &e))?;
    Ok(rows
        .iter()
        .map(|r| Lease {
            id: r.get(0),
            prefix: prefix.into(),
            first: r.get::<_, i64>(1) as u64,
            last: r.get::<_, i64>(2) as u64,
        })
        .collect())
}

/// What one look at the leases did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TopUp {
    pub adopted: Vec<Lease>,
    pub leased: Option<Lease>,
    pub remaining: u64,
}

/// Records leases the registry has for this station and the ledger lacks, then leases a new block if fewer than
/// `low_water` numbers are left (or none, with `low_water` 0 meaning "only when empty"). Without `adopt`, it does not
/// connect at all while enough numbers are left.
pub fn top_up(cfg: &Config, r: &RegistrySection, writer: &Writer, low_water: u64, adopt: bool) -> Result<TopUp> {
    let p = &cfg.policy;
    let conn = ledger::open_connection(&cfg.ledger.path)?;
    let left = ledger::leases::remaining(&conn, &p.serial_prefix)?;
    if !adopt && left > 0 && left >= low_water {
        return Ok(TopUp { remaining: left, ..Default::default() });
    }
    let target = Target::new(r)?;
    let mut session = Session::open(&target, &cfg.station.id, &conn)?;
    let known: Vec<i64> = ledger::leases::all(&conn)?.iter().map(|l| l.id).collect();
    let mut out = TopUp::default();
    for l in registry_leases(&mut session, &p.serial_prefix)? {
        if !known.contains(&l.id) {
            writer.record_lease(l.clone())?;
            out.adopted.push(l);
        }
    }
    out.remaining = ledger::leases::remaining(&conn, &p.serial_prefix)?;
    if out.remaining == 0 || out.remaining < low_water {
        let l = lease_block(&mut session, &p.serial_prefix, r.lease_size, p.serial_first, p.serial_last)?;
        // Durable in the ledger before any bench can reserve from it.
        writer.record_lease(l.clone())?;
        tracing::info!(lease = l.id, first = l.first, last = l.last, "serial block leased");
        out.remaining = ledger::leases::remaining(&conn, &p.serial_prefix)?;
        out.leased = Some(l);
    }
    Ok(out)
}

/// The daemon's lease keeper: tops up at start, then whenever a bench pokes it or every few seconds.
pub fn spawn_keeper(
    cfg: Config,
    r: RegistrySection,
    writer: Arc<Writer>,
    status: Arc<LeaseStatus>,
    stop: Arc<AtomicBool>,
    notify: super::forward::Notify,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("registry-leases".into()).spawn(move || {
        let mut backoff = Duration::from_millis(200);
        let mut adopted = false;
        while !stop.load(Ordering::Relaxed) {
            match top_up(&cfg, &r, &writer, r.low_water(), !adopted) {
                Ok(t) => {
                    adopted = true;
                    if status.last_error().is_some() {
                        notify(&format!("REGISTRY serial leasing works again: {} serial(s) in hand", t.remaining));
                    }
                    status.set_error(None);
                    if let Some(l) = &t.leased {
                        notify(&format!(
                            "REGISTRY leased serial block {}: {} to {}",
                            l.id,
                            cfg.policy.serial_prefix.clone() + &fmt_n(&cfg, l.first),
                            cfg.policy.serial_prefix.clone() + &fmt_n(&cfg, l.last)
                        ));
                    }
                    backoff = Duration::from_millis(200);
                    status.wait(Duration::from_millis(500));
                }
                Err(e) => {
                    let line = (e.code(), e.to_string());
                    if status.last_error().as_ref() != Some(&line) {
                        tracing::warn!(code = e.code(), error = %e, "serial leasing failed");
                        notify(&format!("REGISTRY cannot lease serials: [{}] {e}", e.code()));
                    }
                    status.set_error(Some(line));
                    nap(backoff, &stop);
                    backoff = (backoff * 2).min(Duration::from_millis(r.retry_max_ms));
                }
            }
        }
    })
}

fn fmt_n(cfg: &Config, n: u64) -> String {
    format!("{n:0width$}", width = cfg.policy.serial_width)
}

/// The leases in a ledger (for `registry status` on the station and the tests).
pub fn in_ledger(path: &Path) -> Result<Vec<Lease>> {
    Ok(ledger::leases::all(&ledger::open_connection(path)?)?)
}
