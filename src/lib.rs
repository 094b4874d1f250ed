//! `station`: gives every device on a flashing bench its identity.
//!
//! The folders follow the path of one device: `serial` → the bench protocol (its own crate, `station-protocol`,
//! shared with the simulator) → `bench` → `issue` → `hsm` → `ledger`. Around that path sit `ca` (CA lifecycle),
//! `aws` (AWS IoT registration), `audit` and `config`, `registry` (the fleet registry on PostgreSQL) and `cli`,
//! which turns each command into a report.

#![forbid(unsafe_code)]

pub mod audit;
pub mod aws;
pub mod bench;
pub mod ca;
pub mod cli;
pub mod codes;
pub mod config;
pub mod error;
pub mod hsm;
pub mod http;
pub mod issue;
pub mod ledger;
pub mod metrics;
pub mod pki;
pub mod registry;
pub mod serial;
pub mod softhsm;
pub mod supervise;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;

pub use error::{Error, Result};
