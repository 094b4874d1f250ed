//! The registry's schema: versioned migrations in the PostgreSQL schema `registry`, applied by `station registry
//! init` in one transaction under an advisory lock. A registry migrated by a newer station is refused, untouched.

use super::RegistryError;
use super::client::describe;
use postgres::Client;

/// The migrations this station knows, oldest first: version n is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[include_str!("migrations/001_init.sql"), include_str!("migrations/002_audit_keys.sql")];

/// The registry schema version this station reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Serialises concurrent `registry init` runs (an arbitrary constant: "station" in ASCII).
const INIT_LOCK: i64 = 0x0073_7461_7469_6f6e;

/// The schema version the registry holds (0: none).
pub fn version(client: &mut Client) -> Result<i64, RegistryError> {
    let q = |e: postgres::Error| RegistryError::Query { op: "read the schema version", problem: describe(&e) };
    let exists: bool =
        client.query_one("SELECT to_regclass('registry.schema_version') IS NOT NULL", &[]).map_err(q)?.get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = client.query_one("SELECT max(version) FROM registry.schema_version", &[]).map_err(q)?.get(0);
    Ok(i64::from(v.unwrap_or(0)))
}

/// What `registry init` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    pub from: i64,
    pub to: i64,
    pub applied: Vec<i64>,
}

/// Creates or migrates the schema. Refuses a newer one without changing anything.
pub fn migrate(client: &mut Client) -> Result<InitReport, RegistryError> {
    let q = |op: &'static str| move |e: postgres::Error| RegistryError::Query { op, problem: describe(&e) };
    let mut tx = client.transaction().map_err(q("begin"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INIT_LOCK]).map_err(q("lock"))?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS registry;
         CREATE TABLE IF NOT EXISTS registry.schema_version (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .map_err(q("create the schema"))?;
    let from: Option<i32> =
        tx.query_one("SELECT max(version) FROM registry.schema_version", &[]).map_err(q("read the version"))?.get(0);
    let from = i64::from(from.unwrap_or(0));
    if from > SCHEMA_VERSION {
        // Dropping the transaction rolls it back: nothing was written.
        return Err(RegistryError::SchemaTooNew { found: from, known: SCHEMA_VERSION });
    }
    let mut applied = Vec::new();
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(sql).map_err(q("apply a migration"))?;
        tx.execute("INSERT INTO registry.schema_version (version) VALUES ($1)", &[&v]).map_err(q("record"))?;
        applied.push(i64::from(v));
    }
    tx.commit().map_err(q("commit the migration"))?;
    Ok(InitReport { from, to: SCHEMA_VERSION, applied })
}
