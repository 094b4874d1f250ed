//! systemd's notification protocol through the `sd-notify` crate: READY, STOPPING, STATUS and the watchdog.
//!
//! `NOTIFY_SOCKET` may name a socket file (`/run/systemd/notify`) or a Linux abstract socket (`@name`; systemd
//! documents both). The crate renders each state and reads the watchdog interval; the datagram goes out here, to
//! either kind of socket (the crate would take an abstract name for a relative path). The socket is read from the
//! environment once, when the notifier is made.

use sd_notify::NotifyState;
use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Talks to the service manager, when there is one (`NOTIFY_SOCKET` set); otherwise every call does nothing.
pub struct Notifier {
    watchdog: Option<Duration>,
    /// `NOTIFY_SOCKET`, when systemd set one.
    socket: Option<OsString>,
}

impl Notifier {
    /// Reads the socket and the watchdog interval systemd asks for (`WatchdogSec=`), if any.
    pub fn from_env() -> Notifier {
        Notifier { watchdog: sd_notify::watchdog_enabled(), socket: std::env::var_os(NOTIFY_SOCKET) }
    }

    /// How often systemd wants a ping, when it watches this process.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends the states in one datagram. Failures are logged, never fatal: the station works without systemd.
    pub fn send(&self, states: &[NotifyState<'_>]) {
        let Some(target) = &self.socket else { return };
        if let Err(e) = send(target, states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

fn send(target: &OsString, states: &[NotifyState<'_>]) -> std::io::Result<()> {
    let text: String = states.iter().map(|s| format!("{s}\n")).collect();
    let addr = match abstract_name(target) {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(target)?,
    };
    UnixDatagram::unbound()?.send_to_addr(text.as_bytes(), &addr).map(|_| ())
}

/// `@name`: the abstract socket `name`.
fn abstract_name(target: &OsString) -> Option<&[u8]> {
    target.as_bytes().strip_prefix(b"@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_a_socket_file_and_an_abstract_socket_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let file = UnixDatagram::bind(&path).unwrap();
        let name = format!("station-notify-test-{}", std::process::id());
        let abstract_sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let mut buf = [0u8; 256];
        for (target, sock) in [(path.display().to_string(), &file), (format!("@{name}"), &abstract_sock)] {
            let notifier = Notifier { watchdog: None, socket: Some(target.clone().into()) };
            notifier.send(&[NotifyState::Ready, NotifyState::Status("2 benches")]);
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"READY=1\nSTATUS=2 benches\n", "{target}");
        }
        // Without systemd, nothing is sent and nothing fails.
        Notifier { watchdog: None, socket: None }.send(&[NotifyState::Watchdog]);
    }
}
