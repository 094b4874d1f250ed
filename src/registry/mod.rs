//! The fleet registry on PostgreSQL: many stations, one registry.
//!
//! The station's SQLite ledger stays the bench's durable source of truth; the registry is fed from it. `forward`
//! sends the ledger's chained events in order, in batches, each with the chain head signed in the HSM; `leases`
//! gives station-allocated serials blocks that never collide; `queries` and `verify` answer questions across the
//! factory from the registry alone; `schema` holds its versioned migrations. docs/fleet.md describes the design.

mod client;
mod error;
pub mod forward;
pub mod leases;
mod password;
pub mod queries;
mod schema;
mod session;
pub mod signer;
pub mod verify;

pub use client::{Target, query_error};
pub use error::RegistryError;
pub use password::{PASSWORD_ENV, Password};
pub use schema::{InitReport, SCHEMA_VERSION, migrate};
pub use session::Session;

/// `station registry init`: creates or migrates the central schema.
pub fn init(r: &crate::config::RegistrySection) -> Result<InitReport, RegistryError> {
    let target = Target::new(r)?;
    let mut client = target.connect_raw()?;
    migrate(&mut client)
}
