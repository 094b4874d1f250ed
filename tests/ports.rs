//! Issue 14, real serial ports: `station ports` on a recorded sysfs tree and on this machine; a bench's port options
//! on real pty pairs: exclusive open (TIOCEXCL and the lock: a second station and a second program are refused),
//! `exclusive = false`, the DTR/RTS requests (traced with strace: a pty refuses them, and a bench on a pty still
//! works), and a by-id style link re-pointed to another pty while `serve` runs.
//!
//! What a pty cannot show: the electrical effect of DTR/RTS on an adapter (ptys have no modem lines), and udev
//! making the by-id links. README "Serial ports" says so.

mod common;
use common::bench::*;
use common::http::{enable_http, get, wait_for_endpoint};
use common::sim::{self, finish};
use common::*;
use serde_json::Value;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---- station ports --------------------------------------------------------------------------------------------

/// Writes `attrs` (name, content) into `dir`, creating it.
fn attrs(dir: &Path, attrs: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in attrs {
        std::fs::write(dir.join(name), format!("{text}\n")).unwrap();
    }
}

/// `link` → `target`, the link's folder created.
fn link(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(target, link).unwrap();
}

/// A sysfs tree as Linux lays it out for: an FTDI adapter (ttyUSB3, usb-serial bus), a Raspberry Pi Pico
/// (ttyACM0, CDC-ACM on the usb bus), a CH340 without a serial number (ttyUSB10, by-path link only), a 16550 UART
/// (ttyS0), a phantom serial-core port without a UART (ttyS1, type 0) and a virtual console (tty0, no device).
/// And the /dev it belongs to, with udev's links.
fn recorded_tree(root: &Path) -> (PathBuf, PathBuf) {
    let (sys, dev) = (root.join("sys"), root.join("dev"));
    for bus in ["usb", "usb-serial", "pnp", "serial-base"] {
        std::fs::create_dir_all(sys.join(format!("bus/{bus}/drivers"))).unwrap();
    }
    for (bus, driver) in [("usb", "ftdi_sio"), ("usb-serial", "ftdi_sio"), ("usb", "cdc_acm"), ("usb-serial", "ch341")]
    {
        std::fs::create_dir_all(sys.join(format!("bus/{bus}/drivers/{driver}"))).unwrap();
    }
    std::fs::create_dir_all(sys.join("bus/serial-base/drivers/port")).unwrap();
    let hub = sys.join("devices/pci0000:00/0000:00:14.0/usb1");
    // FTDI FT232R: device 1-2, interface 1-2:1.0, usb-serial port ttyUSB3.
    let ftdi = hub.join("1-2");
    attrs(
        &ftdi,
        &[
            ("idVendor", "0403"),
            ("idProduct", "6001"),
            ("manufacturer", "FTDI"),
            ("product", "FT232R USB UART"),
            ("serial", "A10KXYZ1"),
        ],
    );
    attrs(&ftdi.join("1-2:1.0"), &[("bInterfaceNumber", "00")]);
    let port = ftdi.join("1-2:1.0/ttyUSB3");
    link("../../../../../../bus/usb-serial", &port.join("subsystem"));
    link("../../../../../../bus/usb-serial/drivers/ftdi_sio", &port.join("driver"));
    link("../../../ttyUSB3", &port.join("tty/ttyUSB3/device"));
    link("../../devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/ttyUSB3/tty/ttyUSB3", &sys.join("class/tty/ttyUSB3"));
    // Raspberry Pi Pico, CDC-ACM: the tty's device is the interface itself.
    let pico = hub.join("1-3");
    attrs(
        &pico,
        &[
            ("idVendor", "2e8a"),
            ("idProduct", "000a"),
            ("manufacturer", "Raspberry Pi"),
            ("product", "Pico"),
            ("serial", "E6614103E7452D2F"),
        ],
    );
    let acm = pico.join("1-3:1.0");
    attrs(&acm, &[("bInterfaceNumber", "00")]);
    link("../../../../../bus/usb", &acm.join("subsystem"));
    link("../../../../../bus/usb/drivers/cdc_acm", &acm.join("driver"));
    link("../../../1-3:1.0", &acm.join("tty/ttyACM0/device"));
    link("../../devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/tty/ttyACM0", &sys.join("class/tty/ttyACM0"));
    // CH340 without a serial number.
    let ch340 = hub.join("1-4");
    attrs(&ch340, &[("idVendor", "1a86"), ("idProduct", "7523"), ("product", "USB Serial")]);
    attrs(&ch340.join("1-4:1.0"), &[("bInterfaceNumber", "00")]);
    let port = ch340.join("1-4:1.0/ttyUSB10");
    link("../../../../../../bus/usb-serial", &port.join("subsystem"));
    link("../../../../../../bus/usb-serial/drivers/ch341", &port.join("driver"));
    link("../../../ttyUSB10", &port.join("tty/ttyUSB10/device"));
    link(
        "../../devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0/ttyUSB10/tty/ttyUSB10",
        &sys.join("class/tty/ttyUSB10"),
    );
    // The serial core's ports: ttyS0 has a 16550A (type 4), ttyS1 none (type 0).
    for (n, uart_type) in [(0, "4"), (1, "0")] {
        let base = sys.join(format!("devices/pnp0/00:0{n}/00:0{n}:0/00:0{n}:0.0"));
        link("../../../../../bus/serial-base", &base.join("subsystem"));
        link("../../../../../bus/serial-base/drivers/port", &base.join("driver"));
        let tty = base.join(format!("tty/ttyS{n}"));
        attrs(&tty, &[("type", uart_type)]);
        link(&format!("../../../00:0{n}:0.0"), &tty.join("device"));
        link(
            &format!("../../devices/pnp0/00:0{n}/00:0{n}:0/00:0{n}:0.0/tty/ttyS{n}"),
            &sys.join(format!("class/tty/ttyS{n}")),
        );
    }
    std::fs::create_dir_all(sys.join("devices/virtual/tty/tty0")).unwrap();
    link("../../devices/virtual/tty/tty0", &sys.join("class/tty/tty0"));
    // /dev: the nodes (plain files stand in for them) and udev's links.
    std::fs::create_dir_all(&dev).unwrap();
    for node in ["ttyUSB3", "ttyACM0", "ttyUSB10", "ttyS0", "ttyS1", "tty0"] {
        std::fs::write(dev.join(node), "").unwrap();
    }
    link("../../ttyUSB3", &dev.join("serial/by-id/usb-FTDI_FT232R_USB_UART_A10KXYZ1-if00-port0"));
    link("../../ttyACM0", &dev.join("serial/by-id/usb-Raspberry_Pi_Pico_E6614103E7452D2F-if00"));
    link("../../ttyUSB3", &dev.join("serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0"));
    link("../../ttyACM0", &dev.join("serial/by-path/pci-0000:00:14.0-usb-0:3:1.0"));
    link("../../ttyUSB10", &dev.join("serial/by-path/pci-0000:00:14.0-usb-0:4:1.0-port0"));
    link("../../ttyUSB10", &dev.join("serial/by-id/usb-1a86_USB_Serial-if00-port0"));
    (sys, dev)
}

fn ports(sys: &Path, dev: &Path, json: bool) -> Run {
    let (sys, dev) = (sys.to_str().unwrap(), dev.to_str().unwrap());
    let mut args = vec!["ports", "--sysfs", sys, "--dev", dev];
    if json {
        args.insert(0, "--json");
    }
    station(&args)
}

#[test]
fn station_ports_lists_usb_adapters_with_their_ids_and_by_id_links_and_leaves_out_what_is_not_a_port() {
    let tmp = tempfile::tempdir().unwrap();
    let (sys, dev) = recorded_tree(tmp.path());
    let v = ports(&sys, &dev, true).ok().json();
    let list = v["ports"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ttyACM0", "ttyS0", "ttyUSB3", "ttyUSB10"], "no phantom ttyS1, no tty0: {v}");
    let port = |name: &str| list.iter().find(|p| p["name"] == name).unwrap();
    let ftdi = port("ttyUSB3");
    let by_id = dev.join("serial/by-id/usb-FTDI_FT232R_USB_UART_A10KXYZ1-if00-port0");
    assert_eq!(ftdi["device"], dev.join("ttyUSB3").to_str().unwrap());
    assert_eq!((ftdi["kind"].as_str(), ftdi["driver"].as_str()), (Some("usb"), Some("ftdi_sio")));
    let usb = &ftdi["usb"];
    assert_eq!(
        [&usb["vid"], &usb["pid"], &usb["manufacturer"], &usb["product"], &usb["serial_number"], &usb["interface"]],
        ["0403", "6001", "FTDI", "FT232R USB UART", "A10KXYZ1", "00"]
    );
    assert_eq!(ftdi["by_id"], serde_json::json!([by_id.to_str().unwrap()]));
    assert_eq!(ftdi["by_path"].as_array().unwrap().len(), 1);
    assert_eq!(ftdi["suggested_port"], by_id.to_str().unwrap(), "the by-id link is what a bench should name");
    let pico = port("ttyACM0");
    assert_eq!((pico["driver"].as_str(), pico["usb"]["vid"].as_str()), (Some("cdc_acm"), Some("2e8a")));
    assert!(pico["suggested_port"].as_str().unwrap().ends_with("usb-Raspberry_Pi_Pico_E6614103E7452D2F-if00"));
    let ch340 = port("ttyUSB10");
    assert!(ch340["usb"]["serial_number"].is_null(), "{ch340}");
    assert_eq!(ch340["by_id"].as_array().unwrap().len(), 1, "udev's link from vendor and model: {ch340}");
    let socket = dev.join("serial/by-path/pci-0000:00:14.0-usb-0:4:1.0-port0");
    assert_eq!(ch340["suggested_port"], socket.to_str().unwrap(), "no serial number: the USB socket tells apart");
    let uart = port("ttyS0");
    assert_eq!((uart["kind"].as_str(), uart["usb"].is_null()), (Some("other"), true));
    assert_eq!(uart["suggested_port"], dev.join("ttyS0").to_str().unwrap());

    let text = ports(&sys, &dev, false).ok().stdout;
    assert!(text.contains(&format!("[[bench]] port = \"{}\"", by_id.display())), "{text}");
    assert!(text.contains("usb 0403:6001  FTDI  FT232R USB UART  serial A10KXYZ1"), "{text}");
    assert!(text.contains("no serial number: every adapter of this model has the same by-id link"), "{text}");
    assert!(text.trim_end().ends_with("4 serial port(s)"), "{text}");
}

#[test]
fn station_ports_on_this_machine_lists_only_nodes_that_exist_and_a_missing_sysfs_is_a_coded_error() {
    let v = station(&["--json", "ports"]).ok().json();
    for p in v["ports"].as_array().unwrap() {
        assert!(Path::new(p["device"].as_str().unwrap()).exists(), "{p}");
        assert!(Path::new(p["suggested_port"].as_str().unwrap()).exists(), "{p}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = station(&["--json", "ports", "--sysfs", tmp.path().join("nothing").to_str().unwrap()]);
    run.fails_with("ports-sysfs-unreadable", 1);
    let tmp_sys = tmp.path().join("sys");
    std::fs::create_dir_all(tmp_sys.join("class/tty")).unwrap();
    let empty = station(&["ports", "--sysfs", tmp_sys.to_str().unwrap(), "--dev", tmp.path().to_str().unwrap()]).ok();
    assert!(empty.stdout.starts_with("no serial ports found"), "{}", empty.stdout);
}

// ---- the port options on ptys ---------------------------------------------------------------------------------

/// Python run against a tty: `EXCL` prints the TIOCGEXCL flag (1: the station opened it exclusively), `OPEN` opens
/// it again and prints `opened` or the errno's name.
const TTY_PROBE: &str = r#"
import errno, fcntl, os, struct, sys
what, path = sys.argv[1], sys.argv[2]
try:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
except OSError as e:
    print(errno.errorcode[e.errno]); sys.exit(0)
if what == "EXCL":
    TIOCGEXCL = 0x80045440
    print(struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0" * 4))[0])
else:
    print("opened")
os.close(fd)
"#;

/// Runs [`TTY_PROBE`]; with `without_sys_admin`, as root without CAP_SYS_ADMIN (which TIOCEXCL lets through).
fn probe(what: &str, tty: &Path, without_sys_admin: bool) -> String {
    let mut cmd = if without_sys_admin {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set=-sys_admin", "python3"]);
        c
    } else {
        Command::new("python3")
    };
    let out = cmd.arg("-c").arg(TTY_PROBE).arg(what).arg(tty).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `[[bench]] bench-0` on `port` with `options` (lines of TOML).
fn bench_config(st: &TestStation, port: &Path, options: &str) {
    let port = port.display();
    st.edit_config(|t| {
        format!(
            "{t}\n[serve]\nreopen_backoff_max_ms = 200\n[[bench]]\nname = \"bench-0\"\nport = \"{port}\"\n{options}\n"
        )
    });
}

fn wait_serving(d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.stderr.lock().unwrap().contains("station serving") {
        assert!(Instant::now() < deadline, "serve did not start: {}", d.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One simulated device `serial` on `device_end`, provisioned.
fn provision_one(ca: &Path, out: &Path, device_end: &Path, serial: &str) {
    let (code, v) = finish(sim::spawn(device_end, ca, out, &["--serial", serial]));
    assert_eq!((code, v["devices_ok"].as_u64()), (0, Some(1)), "{v}");
}

#[test]
fn a_second_station_or_program_on_a_benchs_port_is_refused_and_the_first_keeps_provisioning() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let pair = PtyPair::new(st.path(), "bench-0");
    bench_config(&st, &pair.station_end, "");
    let daemon = Daemon::start(&st, &[], &[]);
    wait_serving(&daemon);
    let pts = std::fs::canonicalize(&pair.station_end).unwrap();
    assert_eq!(probe("EXCL", &pts, false), "1", "the station set TIOCEXCL on {}", pts.display());
    assert_eq!(probe("OPEN", &pts, true), "EBUSY", "a program without CAP_SYS_ADMIN cannot open it");

    // A second station (its own token and ledger) configured with the same port: refused before any bench starts.
    let other = TestStation::new();
    other.create_ca("ca-2", "ec-p256");
    bench_config(&other, &pair.station_end, "");
    let run = other.run(&["serve"]);
    run.fails_with("serial-port-busy", 1);
    let e = &run.json()["error"];
    let (message, hint) = (e["message"].as_str().unwrap(), e["hint"].as_str().unwrap());
    assert!(message.starts_with("bench bench-0: ") && message.contains("is in use by another process"), "{message}");
    assert!(message.contains(pair.station_end.to_str().unwrap()), "names the port: {message}");
    assert!(hint.contains(&format!("fuser -v {}", pair.station_end.display())), "{hint}");
    // Its text form, as an operator sees it.
    let text = Command::new(STATION).arg("-c").arg(other.config()).arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("error[serial-port-busy]: bench bench-0:") && stderr.contains("hint: "), "{stderr}");
    assert_eq!(other.issuance_count(), 0);

    provision_one(&ca, &st.file("devices"), &pair.device_end, "EXCL-1");
    assert!(daemon.line(10).contains("EXCL-1"), "the first station still has the port");
    assert_eq!(daemon.stop(), 0);
    assert_eq!(probe("OPEN", &pts, true), "opened", "released when the station stops");
}

#[test]
fn exclusive_false_leaves_the_port_open_to_another_program() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let pair = PtyPair::new(st.path(), "bench-0");
    bench_config(&st, &pair.station_end, "exclusive = false");
    let daemon = Daemon::start(&st, &[], &[]);
    wait_serving(&daemon);
    let pts = std::fs::canonicalize(&pair.station_end).unwrap();
    assert_eq!(probe("EXCL", &pts, false), "0", "no TIOCEXCL");
    assert_eq!(probe("OPEN", &pts, true), "opened");
    provision_one(&ca, &st.file("devices"), &pair.device_end, "SHARED-1");
    assert!(daemon.line(10).contains("SHARED-1"));
    assert_eq!(daemon.stop(), 0);
}

/// The modem-line ioctls `station serve` made on `tty`, in order, as strace shows them: (request, line).
fn serve_traced(st: &TestStation, pair: &PtyPair, ca: &Path, serial: &str) -> Vec<(String, String)> {
    let trace = st.file(&format!("strace-{serial}.txt"));
    let mut strace = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=ioctl", "-e", "signal=none", "-o"])
        .arg(&trace)
        .arg(STATION)
        .arg("-c")
        .arg(st.config())
        .arg("serve")
        .env_remove("STATION_HSM_PIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (apt-get install strace)");
    provision_one(ca, &st.file("devices"), &pair.device_end, serial);
    // Stop the traced station itself (strace's child) and let strace finish.
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", strace.id())).unwrap();
    let pid = children.split_whitespace().next().expect("the traced station").to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(strace.wait().unwrap().success());
    let pts = std::fs::canonicalize(&pair.station_end).unwrap().display().to_string();
    let re = regex::Regex::new(r"ioctl\(\d+<([^>]+)>, (TIOCMBI[SC]), \[(TIOCM_[A-Z]+)\]\)\s*= -1 ENOTTY").unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    re.captures_iter(&text).filter(|c| c[1] == pts).map(|c| (c[2].to_string(), c[3].to_string())).collect()
}

#[test]
fn dtr_and_rts_are_set_after_the_open_rts_first_and_a_pty_without_modem_lines_still_provisions() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let pair = PtyPair::new(st.path(), "bench-0");
    // The default: both deasserted (TIOCMBIC), RTS first.
    bench_config(&st, &pair.station_end, "");
    let calls = serve_traced(&st, &pair, &ca, "LINES-DEFAULT");
    let want = |a: &str, b: &str| vec![("TIOCMBIC".into(), a.into()), ("TIOCMBIC".into(), b.into())];
    assert_eq!(calls, want("TIOCM_RTS", "TIOCM_DTR"));
    // dtr = true asserts DTR (TIOCMBIS) and still deasserts RTS.
    st.edit_config(|t| t.replace("port = ", "dtr = true\nport = "));
    let calls = serve_traced(&st, &pair, &ca, "LINES-DTR");
    assert_eq!(calls, vec![("TIOCMBIC".into(), "TIOCM_RTS".into()), ("TIOCMBIS".into(), "TIOCM_DTR".into())]);
    st.edit_config(|t| t.replace("dtr = true\n", "rts = true\n"));
    let calls = serve_traced(&st, &pair, &ca, "LINES-RTS");
    assert_eq!(calls, vec![("TIOCMBIS".into(), "TIOCM_RTS".into()), ("TIOCMBIC".into(), "TIOCM_DTR".into())]);
}

#[test]
fn a_by_id_link_re_pointed_to_another_pty_is_opened_again_through_the_link() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let out = st.file("devices");
    // The bench names a link, as it would name /dev/serial/by-id/…; the link leads to the first "ttyUSB".
    let by_id = st.file("by-id/usb-FTDI_FT232R_USB_UART_A10KXYZ1-if00-port0");
    let first = PtyPair::new(st.path(), "first");
    let first_pts = std::fs::canonicalize(&first.station_end).unwrap();
    std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
    symlink(&first_pts, &by_id).unwrap();
    bench_config(&st, &by_id, "");
    let daemon = Daemon::start_env(&st, &[], &[], &[("STATION_LOG", "station=info")]);
    wait_serving(&daemon);
    provision_one(&ca, &out, &first.device_end, "LINK-1");
    assert!(daemon.line(10).contains("LINK-1"));

    // Unplug: the adapter comes back as another tty, and udev re-points the link (atomically, by rename).
    let second = PtyPair::new(st.path(), "second");
    let second_pts = std::fs::canonicalize(&second.station_end).unwrap();
    assert_ne!(first_pts, second_pts);
    let tmp_link = st.file("by-id/.tmp-link");
    symlink(&second_pts, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &by_id).unwrap();
    drop(first);
    provision_one(&ca, &out, &second.device_end, "LINK-2");
    assert!(daemon.line(10).contains("LINK-2"), "provisioned through the re-pointed link");
    let log = daemon.stderr.lock().unwrap().clone();
    let opened: Vec<&str> = log.lines().filter(|l| l.contains("port open")).collect();
    assert_eq!(opened.len(), 2, "opened, then opened again: {log}");
    let by_id = by_id.display().to_string();
    assert!(opened[0].contains(&by_id) && opened[0].contains(&first_pts.display().to_string()), "{}", opened[0]);
    assert!(opened[1].contains(&by_id) && opened[1].contains(&second_pts.display().to_string()), "{}", opened[1]);
    assert_eq!(daemon.stop(), 0);
}

/// Holds `tty` the way another program would: open, TIOCEXCL and an exclusive flock; prints `held`, then waits.
const HOLDER: &str = r#"
import fcntl, os, sys, termios, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
fcntl.ioctl(fd, termios.TIOCEXCL)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("held", flush=True)
time.sleep(600)
"#;

/// `/readyz` until `until` holds for it, within 20 s.
fn readyz_until(port: u16, what: &str, until: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(port, "/readyz", &[]).json();
        if until(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "/readyz never showed {what}: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_port_taken_by_another_program_while_unplugged_is_reported_busy_and_used_again_once_free() {
    let st = TestStation::new();
    let ca = st.create_ca("ca-1", "ec-p256");
    let http = enable_http(&st);
    let by_id = st.file("by-id/usb-FTDI_FT232R_USB_UART_A10KXYZ1-if00-port0");
    let first = PtyPair::new(st.path(), "first");
    std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
    symlink(std::fs::canonicalize(&first.station_end).unwrap(), &by_id).unwrap();
    bench_config(&st, &by_id, "");
    let daemon = Daemon::start(&st, &[], &[]);
    wait_for_endpoint(http);
    readyz_until(http, "ready", |r| r["ready"] == true);

    // Unplugged; the adapter comes back under another name, and another program takes it before the station does.
    let second = PtyPair::new(st.path(), "second");
    let second_pts = std::fs::canonicalize(&second.station_end).unwrap();
    let mut holder =
        Command::new("python3").arg("-c").arg(HOLDER).arg(&second_pts).stdout(Stdio::piped()).spawn().unwrap();
    let mut held = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut held).unwrap();
    assert_eq!(held.trim(), "held");
    let tmp_link = st.file("by-id/.tmp-link");
    symlink(&second_pts, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, &by_id).unwrap();
    drop(first);
    let r = readyz_until(http, "serial-port-busy", |r| r["problems"].to_string().contains("serial-port-busy"));
    let problem = r["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("bench-0: serial-port-busy: "), "{problem}");
    assert!(problem.contains("is in use by another process") && problem.contains("fuser -v"), "{problem}");
    assert_eq!(r["ready"], false);

    // The other program lets go: the bench takes the port and provisions.
    holder.kill().unwrap();
    holder.wait().unwrap();
    readyz_until(http, "ready again", |r| r["ready"] == true);
    provision_one(&ca, &st.file("devices"), &second.device_end, "FREED-1");
    assert!(daemon.line(10).contains("FREED-1"));
    assert_eq!(daemon.stop(), 0);
}
