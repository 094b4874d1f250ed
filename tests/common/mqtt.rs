//! A real mosquitto broker on 127.0.0.1 with a TLS listener that trusts the station CA, names each
//! client by its certificate CN and lets it use only `<CN>/#`.

use super::*;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub child: Child,
    pub port: u16,
    pub server_ca: PathBuf,
    pub log: PathBuf,
}

impl Broker {
    /// Starts mosquitto; `client_ca` is the CA the broker requires client certificates to chain to.
    pub fn start(dir: &Path, client_ca: &Path) -> Broker {
        let p = |n: &str| dir.join(n);
        // The broker's own server certificate, from a throwaway CA (not the station's).
        let server_ca = OpensslCa::new(dir, "server-ca", "/CN=test broker CA");
        let (csr, key) = openssl_csr(dir, "server", "ec:P-256", "/CN=localhost", &[]);
        let cert = server_ca.sign(&csr, "server.pem", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
        std::fs::write(p("acl"), "pattern readwrite %u/#\n\nuser monitor\ntopic read #\n").unwrap();
        let port = free_port();
        let log = p("mosquitto.log");
        std::fs::write(
            p("mosquitto.conf"),
            format!(
                "user {user}\nper_listener_settings false\nallow_anonymous false\nacl_file {acl}\nlog_dest file {log}\nlog_type all\n\
                 listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n\
                 use_identity_as_username true\n",
                user = whoami(),
                acl = p("acl").display(),
                log = log.display(),
                ca = client_ca.display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(p("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port, server_ca: server_ca.cert, log }
    }

    /// `mosquitto_pub` as a device (`client_id` = its CN); returns (success, output).
    pub fn publish(&self, chain: &Path, key: &Path, client_id: &str, topic: &str, msg: &str) -> (bool, String) {
        let o = Command::new("mosquitto_pub")
            .args([
                "-h",
                "localhost",
                "-p",
                &self.port.to_string(),
                "-V",
                "mqttv5",
                "-q",
                "1",
                "-i",
                client_id,
                "-t",
                topic,
                "-m",
                msg,
            ])
            .arg("--cafile")
            .arg(&self.server_ca)
            .arg("--cert")
            .arg(chain)
            .arg("--key")
            .arg(key)
            .output()
            .unwrap();
        (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    }

    /// Starts a subscriber that prints `topic payload` lines.
    pub fn subscribe(&self, chain: &Path, key: &Path, client_id: &str, topic: &str, count: u32) -> Child {
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "localhost",
                "-p",
                &self.port.to_string(),
                "-i",
                client_id,
                "-t",
                topic,
                "-v",
                "-C",
                &count.to_string(),
                "-W",
                "20",
            ])
            .arg("--cafile")
            .arg(&self.server_ca)
            .arg("--cert")
            .arg(chain)
            .arg("--key")
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The broker keeps this user (as root it would otherwise switch to `mosquitto`, which cannot read
/// the test's private temp dir).
fn whoami() -> String {
    let o = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
