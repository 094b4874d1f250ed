//! The user PIN: from `STATION_HSM_PIN` or a 0600 file; never from argv, never logged or shown by Debug.

use super::HsmError;
use cryptoki::types::AuthPin;
use secrecy::ExposeSecret;
use std::fmt;
use std::path::Path;

/// The environment variable that carries the PIN when no pin file is used.
pub const PIN_ENV: &str = "STATION_HSM_PIN";

/// A token PIN. Zeroised on drop (it is a `secrecy::SecretString`); `Debug` prints `Pin(***)`.
pub struct Pin(AuthPin);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(***)")
    }
}

impl Pin {
    /// Wraps a PIN the station generated itself.
    pub fn new(secret: String) -> Pin {
        Pin(AuthPin::from(secret))
    }

    pub(super) fn auth(&self) -> &AuthPin {
        &self.0
    }

    /// The PIN for a PKCS#11 call (token set-up only; signing code uses the pool's login).
    pub(crate) fn auth_pin(&self) -> &AuthPin {
        &self.0
    }

    /// Writes the PIN to a new file created with mode 0600. Refuses to overwrite.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        f.write_all(self.0.expose_secret().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    }

    /// The PIN from `STATION_HSM_PIN`, else from `pin_file`.
    pub fn load(pin_file: Option<&Path>) -> Result<Pin, HsmError> {
        if let Ok(v) = std::env::var(PIN_ENV)
            && !v.is_empty()
        {
            return Ok(Pin::new(v));
        }
        match pin_file {
            Some(p) => Self::from_file(p),
            None => Err(HsmError::PinMissing(format!("{PIN_ENV} is not set and [hsm] pin_file is not configured"))),
        }
    }

    /// Reads a PIN file, refusing one that group or others can read.
    pub fn from_file(path: &Path) -> Result<Pin, HsmError> {
        use std::os::unix::fs::PermissionsExt;
        let unreadable =
            |e: std::io::Error| HsmError::PinFileUnreadable { path: path.to_path_buf(), problem: e.to_string() };
        let mode = std::fs::metadata(path).map_err(unreadable)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(HsmError::PinFilePermissions { path: path.to_path_buf(), mode });
        }
        let mut text = std::fs::read_to_string(path).map_err(unreadable)?;
        let pin = text.trim_end_matches(['\r', '\n']).to_string();
        zeroize::Zeroize::zeroize(&mut text);
        if pin.is_empty() {
            return Err(HsmError::PinMissing(format!("{} is empty", path.display())));
        }
        Ok(Pin::new(pin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_never_shows_the_pin() {
        assert_eq!(format!("{:?}", Pin::new("123456".into())), "Pin(***)");
    }

    #[test]
    fn world_readable_pin_file_is_refused_and_0600_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "4242\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Pin::from_file(&p).unwrap_err();
        assert!(matches!(err, HsmError::PinFilePermissions { mode: 0o644, .. }), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pin = Pin::from_file(&p).unwrap();
        assert_eq!(pin.auth().expose_secret(), "4242");
    }
}
