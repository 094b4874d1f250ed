//! One connection to the registry for one station: the identity check every forwarder and lease keeper makes
//! first. A station is its `[station] id` bound to its ledger: the hash of its event 1 (which no other ledger has)
//! is registered with the id the first time, and a station whose ledger starts otherwise is refused
//! (`registry-station-conflict`) before anything is written. The registry's head must also be an event of this
//! ledger (`registry-diverged` otherwise).

use super::client::{Target, query_error};
use super::{RegistryError, signer::HeadSigner};
use crate::ledger::{self, GENESIS, LedgerError};
use postgres::Client;
use rusqlite::Connection;

/// A checked connection for one station.
pub struct Session {
    pub client: Client,
    pub station_id: String,
    pub target: String,
    /// The registry's last event of this station (0 before the first batch) and its hash.
    pub registry_seq: i64,
    pub registry_hash: String,
}

/// The ledger's event 1 hash: the station's identity. `None` for a ledger without events.
fn genesis_of(conn: &Connection) -> Result<Option<String>, LedgerError> {
    Ok(ledger::chain::at(conn, 1)?.map(|e| e.row_hash))
}

impl Session {
    /// Connects, checks the schema, and registers or checks this station's identity.
    pub fn open(target: &Target, station_id: &str, conn: &Connection) -> Result<Session, crate::Error> {
        let mut client = target.connect()?;
        let Some(genesis) = genesis_of(conn)? else {
            return Err(RegistryError::Diverged {
                station: station_id.into(),
                why: "this ledger has no events yet (create a CA first)".into(),
            }
            .into());
        };
        let q = |op: &'static str| move |e: postgres::Error| query_error(op, &target.name, &e);
        client
            .execute(
                "INSERT INTO registry.stations (station_id, genesis_hash, last_hash, host) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (station_id) DO NOTHING",
                &[&station_id, &genesis, &GENESIS, &host_name()],
            )
            .map_err(q("register the station"))?;
        let row = client
            .query_one(
                "SELECT genesis_hash, last_seq, last_hash FROM registry.stations WHERE station_id = $1",
                &[&station_id],
            )
            .map_err(q("read the station"))?;
        let (known_genesis, registry_seq, registry_hash): (String, i64, String) = (row.get(0), row.get(1), row.get(2));
        if known_genesis != genesis {
            let cas: Vec<String> = client
                .query("SELECT ca_name || ' (' || left(fingerprint, 16) || '…)' FROM registry.station_cas WHERE station_id = $1", &[&station_id])
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            return Err(RegistryError::StationConflict {
                station: station_id.into(),
                why: format!(
                    "its ledger began with event hash {}…, this one with {}…{}",
                    &known_genesis[..16.min(known_genesis.len())],
                    &genesis[..16],
                    if cas.is_empty() { String::new() } else { format!("; it signs with CA {}", cas.join(", ")) }
                ),
            }
            .into());
        }
        if registry_seq > 0 {
            match ledger::chain::at(conn, registry_seq)? {
                Some(e) if e.row_hash == registry_hash => {}
                Some(_) => {
                    return Err(RegistryError::Diverged {
                        station: station_id.into(),
                        why: format!("the registry's event {registry_seq} has another hash than this ledger's"),
                    }
                    .into());
                }
                None => {
                    return Err(RegistryError::Diverged {
                        station: station_id.into(),
                        why: format!(
                            "the registry holds events up to {registry_seq}, and this ledger ends before that \
                             (was it restored from an older backup?)"
                        ),
                    }
                    .into());
                }
            }
        }
        Ok(Session { client, station_id: station_id.into(), target: target.name.clone(), registry_seq, registry_hash })
    }

    /// Reports in: the station is alive and its own head is `ledger_seq` (for the backlog).
    pub fn heartbeat(&mut self, ledger_seq: i64) -> Result<(), RegistryError> {
        self.client
            .execute(
                "UPDATE registry.stations SET last_seen = now(), ledger_seq = GREATEST(ledger_seq, $2) \
                 WHERE station_id = $1",
                &[&self.station_id, &ledger_seq],
            )
            .map(|_| ())
            .map_err(|e| query_error("report in", &self.target, &e))
    }

    /// Sends one batch (events in order, right after the registry's head) with its signed head, in one
    /// transaction that first locks the station's row and checks it is still where this session left it.
    pub fn send(
        &mut self,
        events: &[ledger::Event],
        issuances: i64,
        ledger_seq: i64,
        signer: &HeadSigner,
    ) -> Result<(), crate::Error> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(()) };
        let head = ledger::checkpoints::Head {
            seq: last.seq,
            head_hash: last.row_hash.clone(),
            issuances,
            at: ledger::now_text(),
        };
        let signed = signer.sign(&head)?;
        let owned = self.target.clone();
        let target: &str = &owned;
        let q = |op: &'static str| move |e: postgres::Error| query_error(op, target, &e);
        let mut tx = self.client.transaction().map_err(q("begin"))?;
        let row = tx
            .query_one(
                "SELECT last_seq, last_hash FROM registry.stations WHERE station_id = $1 FOR UPDATE",
                &[&self.station_id],
            )
            .map_err(q("lock the station"))?;
        let (seq, hash): (i64, String) = (row.get(0), row.get(1));
        if seq != first.seq - 1 {
            return Err(RegistryError::OutOfStep { station: self.station_id.clone(), registry_seq: seq }.into());
        }
        if hash != first.prev_hash {
            return Err(RegistryError::Diverged {
                station: self.station_id.clone(),
                why: format!("event {} does not follow the registry's event {seq}", first.seq),
            }
            .into());
        }
        tx.execute(
            "INSERT INTO registry.station_cas (station_id, fingerprint, ca_name, subject, cert_der) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&self.station_id, &signed.ca_fingerprint, &signed.ca_name, &signed.ca_subject, &signed.ca_cert_der],
        )
        .map_err(q("record the CA"))?;
        if let Some(a) = &signed.audit {
            tx.execute(
                "INSERT INTO registry.station_audit_keys (station_id, fingerprint, label, ca_fingerprint, cert_der) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&self.station_id, &a.fingerprint, &a.label, &signed.ca_fingerprint, &a.cert_der],
            )
            .map_err(q("record the audit key"))?;
        }
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let ats: Vec<&str> = events.iter().map(|e| e.at.as_str()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
        let refs: Vec<Option<i64>> = events.iter().map(|e| e.ref_id).collect();
        let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        let prevs: Vec<&str> = events.iter().map(|e| e.prev_hash.as_str()).collect();
        let hashes: Vec<&str> = events.iter().map(|e| e.row_hash.as_str()).collect();
        tx.execute(
            "INSERT INTO registry.events (station_id, seq, at, kind, subject, ref_id, detail, prev_hash, row_hash) \
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], \
             $8::text[], $9::text[])",
            &[&self.station_id, &seqs, &ats, &kinds, &subjects, &refs, &details, &prevs, &hashes],
        )
        .map_err(q("insert events"))?;
        tx.execute(
            "INSERT INTO registry.heads (station_id, seq, head_hash, issuances, at, ca_name, ca_fingerprint, signed, \
             signature, audit_key_fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &self.station_id,
                &head.seq,
                &head.head_hash,
                &head.issuances,
                &head.at,
                &signed.ca_name,
                &signed.ca_fingerprint,
                &signed.text,
                &signed.signature_hex,
                &signed.audit.as_ref().map(|a| a.fingerprint.clone()),
            ],
        )
        .map_err(q("insert the signed head"))?;
        tx.execute(
            "UPDATE registry.stations SET last_seq = $2, last_hash = $3, ledger_seq = GREATEST(ledger_seq, $4), \
             last_seen = now(), last_batch_at = now() WHERE station_id = $1",
            &[&self.station_id, &last.seq, &last.row_hash, &ledger_seq],
        )
        .map_err(q("advance the station"))?;
        #[cfg(feature = "test-hooks")]
        crate::test_hooks::pause_point("registry-batch");
        tx.commit().map_err(q("commit the batch"))?;
        self.registry_seq = last.seq;
        self.registry_hash = last.row_hash.clone();
        Ok(())
    }
}

/// This machine's name, recorded with the station (for an auditor: which computer a station id ran on).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}
