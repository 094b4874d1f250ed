//! `[http]`: the operations endpoint (`/metrics`, `/healthz`, `/readyz` and the line view). Off unless the section
//! is there.
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:9464"
//! ```

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// The `[http]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Where to listen: a loopback address unless `allow_remote` says otherwise.
    pub listen: SocketAddr,
    /// Listen on an address other than loopback. The endpoint has neither TLS nor authentication: put it behind a
    /// TLS proxy (README, "The HTTP endpoint").
    #[serde(default)]
    pub allow_remote: bool,
}

pub(super) fn check(http: &HttpSection, path: &Path) -> Result<(), ConfigError> {
    if !http.listen.ip().is_loopback() && !http.allow_remote {
        return Err(ConfigError::Field {
            path: path.to_path_buf(),
            field: "http.listen".into(),
            problem: format!("is {}, which is not a loopback address", http.listen),
            fix: "use 127.0.0.1:9464; to serve other hosts, set allow_remote = true and put a TLS proxy in front \
                  (README: The HTTP endpoint)"
                .into(),
        });
    }
    Ok(())
}
