//! The registry role's password: from `STATION_REGISTRY_PASSWORD` or a 0600 file; never from argv, never logged or
//! shown by Debug (as the HSM PIN, src/hsm/pin.rs).

use super::RegistryError;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::path::Path;

/// The environment variable that carries the password when no file is used.
pub const PASSWORD_ENV: &str = "STATION_REGISTRY_PASSWORD";

/// A password, zeroised on drop; `Debug` prints `Password(***)`.
pub struct Password(SecretString);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub(super) fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The password from `STATION_REGISTRY_PASSWORD`, else from `password_file`.
    pub fn load(password_file: Option<&Path>) -> Result<Password, RegistryError> {
        if let Ok(v) = std::env::var(PASSWORD_ENV)
            && !v.is_empty()
        {
            return Ok(Password(SecretString::from(v)));
        }
        match password_file {
            Some(p) => Self::from_file(p),
            None => Err(RegistryError::PasswordMissing(format!(
                "{PASSWORD_ENV} is not set and [registry] password_file is not configured"
            ))),
        }
    }

    /// Reads a password file, refusing one that group or others can read.
    pub fn from_file(path: &Path) -> Result<Password, RegistryError> {
        use std::os::unix::fs::PermissionsExt;
        let unreadable = |e: std::io::Error| RegistryError::PasswordFileUnreadable {
            path: path.to_path_buf(),
            problem: e.to_string(),
        };
        let mode = std::fs::metadata(path).map_err(unreadable)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(RegistryError::PasswordFilePermissions { path: path.to_path_buf(), mode });
        }
        let mut text = std::fs::read_to_string(path).map_err(unreadable)?;
        let pw = text.trim_end_matches(['\r', '\n']).to_string();
        zeroize::Zeroize::zeroize(&mut text);
        if pw.is_empty() {
            return Err(RegistryError::PasswordMissing(format!("{} is empty", path.display())));
        }
        Ok(Password(SecretString::from(pw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_never_shows_the_password() {
        assert_eq!(format!("{:?}", Password(SecretString::from("hunter2"))), "Password(***)");
    }

    #[test]
    fn a_password_file_readable_by_others_is_refused_and_0600_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Password::from_file(&p).unwrap_err();
        assert!(matches!(err, RegistryError::PasswordFilePermissions { mode: 0o640, .. }), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Password::from_file(&p).unwrap().expose(), "s3cret");
    }
}
