//! The device's "flash": `DIR/<serial>/deviceCert.key` and `DIR/<serial>/deviceCertAndCACert.crt` (the seeds' names),
//! each written atomically (temp file, fsync, rename, fsync of the directory).

use crate::certs::sha256_hex;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The private key file's name.
pub const KEY_FILE: &str = "deviceCert.key";
/// The chain file's name.
pub const CHAIN_FILE: &str = "deviceCertAndCACert.crt";

/// What was written, and the SHA-256 of the chain as read back.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub key_path: PathBuf,
    pub chain_path: PathBuf,
    pub sha256: String,
}

/// Writes the key (mode 0600) and the chain exactly as received, then reads the chain back and hashes it.
/// With `sync` false the files are written but not fsynced (`--no-sync`: a device's flash is not the
/// station host's disk, so benchmarks need not pay for it).
pub(crate) fn store(out: &Path, serial: &str, key_pem: &str, chain: &str, sync: bool) -> io::Result<Stored> {
    let dir = out.join(serial);
    fs::create_dir_all(&dir)?;
    let key_path = dir.join(KEY_FILE);
    let chain_path = dir.join(CHAIN_FILE);
    write_atomic(&key_path, key_pem.as_bytes(), 0o600, sync)?;
    write_atomic(&chain_path, chain.as_bytes(), 0o644, sync)?;
    if sync {
        File::open(&dir)?.sync_all()?;
    }
    let sha256 = sha256_hex(&fs::read(&chain_path)?);
    Ok(Stored { key_path, chain_path, sha256 })
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_writes_both_files_with_the_key_private_and_hashes_the_read_back_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stored = store(dir.path(), "SIM-000001", "KEY\n", "CHAIN\n", true).expect("stored");
        assert_eq!(stored.key_path, dir.path().join("SIM-000001").join(KEY_FILE));
        assert_eq!(fs::read_to_string(&stored.chain_path).expect("chain"), "CHAIN\n");
        assert_eq!(fs::metadata(&stored.key_path).expect("key").permissions().mode() & 0o777, 0o600);
        assert_eq!(stored.sha256, sha256_hex(b"CHAIN\n"));
        // A second store (a retry) replaces the files; no temp files are left behind.
        store(dir.path(), "SIM-000001", "KEY2\n", "CHAIN\n", false).expect("stored again");
        let names: Vec<_> = fs::read_dir(dir.path().join("SIM-000001")).expect("dir").flatten().collect();
        assert_eq!(names.len(), 2);
    }
}
