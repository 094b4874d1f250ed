//! Connecting to the registry: the connection string from `[registry] url`, the password from its file or the
//! environment, TLS through OpenSSL (the server's certificate and host name checked against `ca_file`, or the
//! system's trust store), and the schema version checked before anything is read or written.

use super::{Password, RegistryError, SCHEMA_VERSION};
use crate::config::RegistrySection;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::Client;
use std::time::Duration;

/// How to reach the registry: everything but the connection itself.
pub struct Target {
    config: postgres::Config,
    tls: postgres_openssl::MakeTlsConnector,
    /// `host:port`, for messages (never the password).
    pub name: String,
    user: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).field("user", &self.user).finish()
    }
}

impl Target {
    /// Reads the password and the CA file; makes no connection yet.
    pub fn new(r: &RegistrySection) -> Result<Target, RegistryError> {
        let mut config: postgres::Config = r.url.parse().map_err(|e| RegistryError::Unreachable {
            target: "registry".into(),
            problem: format!("[registry] url: {e}"),
        })?;
        let password = Password::load(r.password_file.as_deref())?;
        config.password(password.expose());
        drop(password);
        config.connect_timeout(Duration::from_secs(r.connect_timeout_secs));
        config.application_name(&format!("station {}", env!("CARGO_PKG_VERSION")));
        config.keepalives_idle(Duration::from_secs(30));
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let name = format!("{host}:{port}");
        let user = config.get_user().unwrap_or_default().to_string();
        let tls = connector(r, &name)?;
        Ok(Target { config, tls, name, user })
    }

    /// Connects and checks the schema version: exactly the one this station knows.
    pub fn connect(&self) -> Result<Client, RegistryError> {
        let mut client = self.connect_raw()?;
        let found = super::schema::version(&mut client)?;
        match found {
            v if v > SCHEMA_VERSION => Err(RegistryError::SchemaTooNew { found: v, known: SCHEMA_VERSION }),
            v if v < SCHEMA_VERSION => Err(RegistryError::SchemaMissing { found: v, known: SCHEMA_VERSION }),
            _ => Ok(client),
        }
    }

    /// Connects without looking at the schema (`registry init`).
    pub fn connect_raw(&self) -> Result<Client, RegistryError> {
        self.config.connect(self.tls.clone()).map_err(|e| self.classify(&e))
    }

    /// A connection failure as the operator should read it: unreachable (retryable), the login refused, TLS.
    pub fn classify(&self, e: &postgres::Error) -> RegistryError {
        let problem = describe(e);
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            if code.starts_with("28") {
                return RegistryError::AuthFailed { target: self.name.clone(), user: self.user.clone(), problem };
            }
            if code == "3D000" {
                return RegistryError::SchemaMissing { found: 0, known: SCHEMA_VERSION };
            }
            return RegistryError::Query { op: "connect", problem };
        }
        let lower = problem.to_ascii_lowercase();
        if lower.contains("ssl") || lower.contains("tls") || lower.contains("certificate") {
            return RegistryError::Tls { target: self.name.clone(), problem };
        }
        RegistryError::Unreachable { target: self.name.clone(), problem }
    }
}

/// The error and its causes on one line (postgres's Display alone often says only "error connecting to server").
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        src = s.source();
    }
    text
}

/// A query failure: unreachable when the connection broke, else a failed statement.
pub fn query_error(op: &'static str, target: &str, e: &postgres::Error) -> RegistryError {
    if e.is_closed()
        || e.as_db_error().is_none() && std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
    {
        return RegistryError::Unreachable { target: target.into(), problem: describe(e) };
    }
    if let Some(db) = e.as_db_error() {
        // The server is shutting down or restarting (admin_shutdown, crash_shutdown, cannot_connect_now).
        if matches!(db.code().code(), "57P01" | "57P02" | "57P03") {
            return RegistryError::Unreachable { target: target.into(), problem: describe(e) };
        }
    }
    RegistryError::Query { op, problem: describe(e) }
}

fn connector(r: &RegistrySection, target: &str) -> Result<postgres_openssl::MakeTlsConnector, RegistryError> {
    let tls_err = |e: openssl::error::ErrorStack| RegistryError::Tls { target: target.into(), problem: e.to_string() };
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_err)?;
    builder.set_verify(SslVerifyMode::PEER);
    if let Some(ca) = &r.ca_file {
        std::fs::metadata(ca)
            .map_err(|e| RegistryError::CaFileUnreadable { path: ca.clone(), problem: e.to_string() })?;
        builder
            .set_ca_file(ca)
            .map_err(|e| RegistryError::CaFileUnreadable { path: ca.clone(), problem: e.to_string() })?;
    }
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}
