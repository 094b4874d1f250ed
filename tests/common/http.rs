//! The operations endpoint as the tests reach it: a free loopback port, plain HTTP/1.1 requests over a socket,
//! the Prometheus client's parsers (Python, from the project's venv) and headless Chromium.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Adds `[http] listen = "127.0.0.1:PORT"` to a station's config; returns the port.
pub fn enable_http(st: &TestStation) -> u16 {
    let port = free_port();
    st.edit_config(|t| format!("{t}\n[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    port
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` with extra header lines (`Name: value`), the connection closed after the answer.
pub fn get(port: u16, path: &str, headers: &[&str]) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the endpoint");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let has_host = headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:"));
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !has_host {
        req += &format!("Host: 127.0.0.1:{port}\r\n");
    }
    for h in headers {
        req += &format!("{h}\r\n");
    }
    s.write_all(format!("{req}\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Answer { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Waits until the endpoint answers `/healthz`.
pub fn wait_for_endpoint(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the endpoint did not come up on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "/healthz", &[]).status, 200);
}

/// The venv's python with the Prometheus client installed (scripts/python-env.sh makes it when missing).
pub fn venv_python() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("STATION_VENV_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join(".venv/bin/python"));
    let ready = || Command::new(&python).args(["-c", "import prometheus_client"]).status().is_ok_and(|s| s.success());
    if !ready() {
        let lock = std::fs::File::create(std::env::temp_dir().join("station-python-env.lock")).expect("lock file");
        lock.lock().expect("lock");
        if !ready() {
            let st = Command::new(repo.join("scripts/python-env.sh")).status().expect("run scripts/python-env.sh");
            assert!(st.success(), "scripts/python-env.sh failed");
        }
    }
    python
}

/// Runs one of the tests' Python helpers (`tests/common/NAME`) on `input`; its JSON output.
pub fn python_helper(name: &str, args: &[&str], input: &str) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/common").join(name);
    let mut child = Command::new(venv_python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{name} {args:?} failed:\n{}\non:\n{input}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("helper JSON")
}

/// Where tests leave files for people to look at (`test-artifacts/`, ignored by git).
pub fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Headless Chromium (Debian's `chromium`, which scripts/test.sh installs) driven over the DevTools protocol by
/// `tests/common/browser.py`: loads `url`, waits until the JavaScript `until` is true in the page, and returns the
/// value of the JavaScript `eval`; `dom` and `screenshot` (1280×800) are saved when given. Bounded by `limit`.
pub fn browser(
    url: &str,
    until: &str,
    eval: &str,
    dom: Option<&Path>,
    screenshot: Option<&Path>,
    limit: Duration,
) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/common/browser.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(url).args(["--until", until, "--eval", eval, "--size", "1280x800"]);
    cmd.arg("--timeout").arg(limit.as_secs().to_string());
    if let Some(d) = dom {
        cmd.arg("--dom").arg(d);
    }
    if let Some(s) = screenshot {
        cmd.arg("--screenshot").arg(s);
    }
    let o = cmd.output().expect("python3");
    assert!(o.status.success(), "the browser run failed: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("browser.py JSON")
}
