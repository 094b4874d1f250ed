//! The SQLite ledger: one file, mode 0600, WAL with synchronous=FULL, schema versioned by migrations.
//! Every event is hash-chained (see `chain`), and a certificate leaves the station only after its row
//! is committed.

pub mod audit_keys;
mod aws;
mod cas;
pub mod chain;
pub mod checkpoints;
mod error;
pub mod issuances;
pub mod leases;
mod writer;

pub use audit_keys::AuditKeyRow;
pub use aws::{AwsRegistration, AwsVerification};
pub use cas::{CaRow, CaState};
pub use chain::{ChainReport, Event, GENESIS, head as chain_head, walk as walk_chain};
pub use checkpoints::Checkpoint;
pub use error::LedgerError;
pub use issuances::{InsertConflict, IssuanceRow, NewIssuance};
pub use leases::Lease;
pub use writer::{Reservation, SerialFormat, Writer};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use std::path::{Path, PathBuf};

/// The schema versions this binary knows, oldest first.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/001_init.sql")),
        M::up(include_str!("migrations/002_aws.sql")),
        M::up(include_str!("migrations/003_leases.sql")),
        M::up(include_str!("migrations/004_bench_counts.sql")),
        M::up(include_str!("migrations/005_audit_keys.sql")),
    ])
}

/// The newest schema version this binary can use.
pub const SCHEMA_VERSION: i64 = 5;

/// An open ledger.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

impl Ledger {
    /// Creates a new ledger file (0600). Refuses a file that already exists.
    pub fn create(path: &Path) -> Result<Ledger, LedgerError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| LedgerError::Create { path: path.to_path_buf(), source })?;
        Self::open(path)
    }

    /// Opens an existing ledger and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Missing { path: path.to_path_buf() });
        }
        let mut conn = open_connection(path)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(LedgerError::sql("read schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(LedgerError::SchemaTooNew { path: path.to_path_buf(), found, known: SCHEMA_VERSION });
        }
        migrations().to_latest(&mut conn).map_err(|e| LedgerError::Migration(e.to_string()))?;
        Ok(Ledger { conn, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// A connection with the station's durability settings.
pub fn open_connection(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path).map_err(|source| LedgerError::Open { path: path.to_path_buf(), source })?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(LedgerError::sql("set busy timeout"))?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(LedgerError::sql("enable WAL"))?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(LedgerError::sql("set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(LedgerError::sql("enable foreign keys"))?;
    Ok(conn)
}

/// Now, as the ledger stores times (RFC 3339, UTC, seconds).
pub fn now_text() -> String {
    crate::pki::rfc3339(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests;
