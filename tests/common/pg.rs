//! A real PostgreSQL server per test (scripts/pg.sh: initdb in a temp folder, a free loopback port, stopped and
//! removed when the test ends), and stations that forward to it.

use super::*;
use std::collections::HashMap;

/// A throwaway PostgreSQL server with a role `station` and a database `fleet`.
pub struct Pg {
    pub dir: tempfile::TempDir,
    pub vars: HashMap<String, String>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh")
}

fn pg_sh(args: &[&str]) -> (bool, String, String) {
    let o = Command::new("bash").arg(script()).args(args).output().expect("scripts/pg.sh");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn parse(text: &str) -> HashMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Pg {
    pub fn start() -> Pg {
        Self::start_with(&[])
    }

    /// `extra`: `--tls` for a server that speaks only TLS.
    pub fn start_with(extra: &[&str]) -> Pg {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec!["start", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let (ok, out, err) = pg_sh(&args);
        assert!(ok, "pg.sh start failed: {out}\n{err}");
        Pg { dir, vars: parse(&out) }
    }

    pub fn url(&self) -> &str {
        &self.vars["REGISTRY_URL"]
    }

    pub fn password(&self) -> &str {
        &self.vars["PGPASSWORD"]
    }

    fn act(&self, what: &str) {
        let (ok, out, err) = pg_sh(&[what, self.dir.path().to_str().unwrap()]);
        assert!(ok, "pg.sh {what} failed: {out}\n{err}");
    }

    /// A fast, clean shutdown.
    pub fn stop(&self) {
        self.act("stop");
    }

    /// SIGKILL to the postmaster: a crash.
    pub fn kill(&self) {
        self.act("kill");
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&self) {
        self.act("resume");
    }

    /// Runs SQL as the superuser; returns psql's unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> String {
        let (ok, out, err) = pg_sh(&["psql", self.dir.path().to_str().unwrap(), "-At", "-c", sql]);
        assert!(ok, "psql failed on {sql}: {err}");
        out.trim().to_string()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.sql(sql).parse().unwrap_or_else(|_| panic!("not a number from {sql}"))
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = pg_sh(&["destroy", self.dir.path().to_str().unwrap()]);
    }
}

impl TestStation {
    /// A station with its own id (its own token and ledger, as every TestStation).
    pub fn with_id(id: &str) -> TestStation {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = TestStation { dir };
        let out = station(&["init", "--dir", st.path().to_str().unwrap(), "--station-id", id]);
        assert_eq!(out.status, 0, "init failed: {}\n{}", out.stdout, out.stderr);
        st
    }

    /// Adds `[registry]` for `pg` (password in a 0600 file) with `extra` lines.
    pub fn join_registry(&self, pg: &Pg, extra: &str) {
        use std::os::unix::fs::PermissionsExt;
        let pw = self.file("registry-password");
        std::fs::write(&pw, format!("{}\n", pg.password())).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let url = pg.url().to_string();
        self.edit_config(|t| {
            format!("{t}\n[registry]\nurl = \"{url}\"\npassword_file = \"registry-password\"\npoll_ms = 50\nretry_max_ms = 500\nheartbeat_secs = 1\n{extra}\n")
        });
    }

    /// Switches `[policy]` to station-allocated serials.
    pub fn station_serials(&self) {
        self.edit_config(|t| t.replace("serial_source = \"device\"", "serial_source = \"station\""));
    }

    /// The ledger's last event.
    pub fn ledger_head(&self) -> i64 {
        sqlite(&self.file("station.db"), "SELECT COALESCE(MAX(seq), 0) FROM events").parse().unwrap()
    }
}
