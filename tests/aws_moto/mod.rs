//! The AWS IoT emulator for tests: scripts/moto-iot.py (moto + station's emulator fixes) on a free loopback
//! port, stopped on drop; awscli from the same venv as the independent client; the fault-injection endpoint.
#![allow(dead_code)]

use crate::common::{Run, STATION, TestStation};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ROLE: &str = "arn:aws:iam::123456789012:role/StationJITP";

/// The environment every AWS client in the tests gets: moto's test credentials, nothing from the host.
pub fn aws_env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", dir.join("no-aws-config").display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials").display().to_string()),
    ]
}

/// The venv's python: `$STATION_VENV_PYTHON`, else `<repo>/.venv/bin/python`, made by scripts/python-env.sh
/// when missing.
pub fn venv_python() -> PathBuf {
    if let Some(p) = std::env::var_os("STATION_VENV_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv/bin/python");
    if !python.exists() {
        // One test at a time creates the venv.
        let lock = std::fs::File::create(std::env::temp_dir().join("station-python-env.lock")).expect("lock file");
        lock.lock().expect("lock");
        if !python.exists() {
            let st = Command::new(repo.join("scripts/python-env.sh")).status().expect("run scripts/python-env.sh");
            assert!(st.success(), "scripts/python-env.sh failed");
        }
    }
    python
}

/// A running emulator.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub url: String,
    scratch: tempfile::TempDir,
}

impl Moto {
    /// Starts `moto-iot.py --port 0 --strict-verification` and waits for `READY <port>`.
    pub fn start() -> Moto {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/moto-iot.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .args(["--port", "0", "--strict-verification"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start scripts/moto-iot.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(port) = line.trim().strip_prefix("READY ").and_then(|p| p.parse::<u16>().ok()) else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("moto-iot.py did not print READY <port>: {line:?}\n{err}");
        };
        let moto = Moto {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            scratch: tempfile::tempdir().expect("tempdir"),
        };
        moto.provisioning_role();
        moto
    }

    /// The account's JITP provisioning role `ROLE` (the one `aws_station` configures), as a real JITP account has it:
    /// trusting iot.amazonaws.com, with AWSIoTThingsRegistration attached. IAM is global, so one role serves every
    /// region. Made with two raw IAM requests (quicker than two awscli runs); tests of the role checks change it with
    /// awscli.
    pub fn provisioning_role(&self) {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"iot.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let name = ROLE.rsplit('/').next().unwrap();
        let form = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect::<Vec<_>>().join("&")
        };
        for body in [
            form(&[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", trust),
            ]),
            form(&[
                ("Action", "AttachRolePolicy"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("PolicyArn", "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration"),
            ]),
        ] {
            let (status, text) = self.raw("POST", "/", "iam", "us-east-1", "application/x-www-form-urlencoded", &body);
            assert_eq!(status, 200, "IAM {body}: {text}");
        }
    }

    /// A JITR topic rule in `region` as a JITR account has it: enabled, on every CA's registered topic (`+`), with a
    /// Lambda action (moto runs no action; `ca verify` checks that there is one).
    pub fn jitr_rule(&self, region: &str) {
        let payload = r#"{"sql": "SELECT * FROM '$aws/events/certificates/registered/+'", "ruleDisabled": false,
            "actions": [{"lambda": {"functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:activate"}}]}"#;
        let (status, text) = self.raw("POST", "/rules/station_jitr", "iot", region, "application/json", payload);
        assert_eq!(status, 200, "CreateTopicRule in {region}: {text}");
    }

    /// One request to moto, signed in form only (moto reads the service and region from the credential scope):
    /// (HTTP status, body).
    pub fn raw(&self, method: &str, path: &str, service: &str, region: &str, ctype: &str, body: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    /// Runs `aws --endpoint-url … --region R SERVICE ARGS` (awscli, one attempt): (success, stdout or stderr).
    pub fn try_cli(&self, region: &str, service: &str, args: &[&str]) -> (bool, String) {
        let aws = venv_python().with_file_name("aws");
        let mut cmd = Command::new(aws);
        cmd.args(["--endpoint-url", &self.url, "--region", region, "--output", "json", service]).args(args);
        cmd.env("AWS_MAX_ATTEMPTS", "1").env_remove("AWS_PROFILE");
        for (k, v) in aws_env(self.scratch.path()) {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run awscli");
        let text = if o.status.success() { o.stdout } else { o.stderr };
        (o.status.success(), String::from_utf8_lossy(&text).into_owned())
    }

    /// Runs, as an operator pasting them into bash, the `aws …` commands between backticks in a remedy (with the venv's
    /// awscli first on PATH and the tests' credentials), asserting each succeeds; returns how many ran.
    pub fn paste(&self, remedy: &str) -> usize {
        let bin = venv_python().parent().expect("venv bin").to_path_buf();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let commands: Vec<&str> = remedy.split('`').skip(1).step_by(2).filter(|c| c.starts_with("aws ")).collect();
        for c in &commands {
            let mut cmd = Command::new("bash");
            cmd.args(["-c", c]).env("PATH", &path).env("AWS_MAX_ATTEMPTS", "1").env_remove("AWS_PROFILE");
            for (k, v) in aws_env(self.scratch.path()) {
                cmd.env(k, v);
            }
            let o = cmd.output().expect("run bash");
            assert!(o.status.success(), "pasted {c}: {}", String::from_utf8_lossy(&o.stderr));
        }
        commands.len()
    }

    /// `aws iam ARGS` (IAM is global; signed for us-east-1), asserting success.
    pub fn iam(&self, args: &[&str]) -> serde_json::Value {
        let (ok, out) = self.try_cli("us-east-1", "iam", args);
        assert!(ok, "aws iam {args:?} failed: {out}");
        if out.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&out).expect("aws JSON") }
    }

    /// Runs `aws --endpoint-url … --region R iot ARGS` (awscli, one attempt) and returns its JSON output.
    pub fn aws(&self, region: &str, args: &[&str]) -> serde_json::Value {
        let (ok, out) = self.try_aws(region, args);
        assert!(ok, "aws iot {args:?} in {region} failed: {out}");
        if out.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&out).expect("aws JSON") }
    }

    /// Like `aws`, returning (success, stdout or stderr).
    pub fn try_aws(&self, region: &str, args: &[&str]) -> (bool, String) {
        self.try_cli(region, "iot", args)
    }

    /// `/_station/faults`: GET the state, POST a rule, DELETE everything.
    pub fn faults(&self, method: &str, body: &str) -> serde_json::Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            s,
            "{method} /_station/faults HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("send");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        // The JSON object, whether the body came chunked or not (the headers hold no braces).
        let body = match (resp.find('{'), resp.rfind('}')) {
            (Some(a), Some(b)) if a < b => &resp[a..=b],
            _ => "",
        };
        serde_json::from_str(body).unwrap_or_else(|e| panic!("faults answer {resp:?}: {e}"))
    }

    /// The number of IoT calls of `action` moto saw in `region` (failed ones included).
    pub fn calls(&self, region: &str, action: &str) -> u64 {
        self.faults("GET", "")["calls"][format!("{region}:{action}")].as_u64().unwrap_or(0)
    }
}

/// application/x-www-form-urlencoded, for the raw IAM requests.
fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A station (SoftHSM token, ledger) with CA `ca-1` valid 20 years and an `[aws]` section for `regions` at
/// `endpoint` (the emulator's URL); `extra` lines go into `[aws]`.
pub fn aws_station(endpoint: &str, regions: &[&str], extra: &str) -> TestStation {
    let st = TestStation::new();
    st.run(&["ca", "create", "--name", "ca-1", "--days", "7300"]).ok();
    let regions: Vec<String> = regions.iter().map(|r| format!("{{ name = \"{r}\" }}")).collect();
    st.edit_config(|t| {
        format!(
            "{t}\n[aws]\nregions = [{}]\nendpoint_url = \"{}\"\nrole_arn = \"{ROLE}\"\n{extra}\n",
            regions.join(", "),
            endpoint
        )
    });
    st
}

/// `station -c CONFIG --json ARGS…` with the tests' AWS environment.
pub fn run(st: &TestStation, args: &[&str]) -> Run {
    let env = aws_env(st.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    st.run_env(args, &env)
}

/// The same without `--json`: what an operator reads.
pub fn run_text(st: &TestStation, args: &[&str]) -> Run {
    let mut cmd = Command::new(STATION);
    cmd.arg("-c").arg(st.config()).args(args).env_remove("STATION_HSM_PIN");
    for (k, v) in aws_env(st.path()) {
        cmd.env(k, v);
    }
    cmd.output().expect("run station").into()
}

/// A CA's certificate ID (hex SHA-256 of its DER) as `station ca show` reports it.
pub fn ca_id(st: &TestStation, name: &str) -> String {
    st.run(&["ca", "show", name]).ok().json()["certificate_id"].as_str().expect("certificate_id").to_string()
}

/// The verify row for (ca, region).
pub fn row<'a>(report: &'a serde_json::Value, ca: &str, region: &str) -> &'a serde_json::Value {
    report["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["ca"] == ca && r["region"] == region))
        .unwrap_or_else(|| panic!("no row for {ca} {region} in {report}"))
}
