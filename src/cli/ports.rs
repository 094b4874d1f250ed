//! `station ports`: the serial ports this machine has, with what each USB adapter says about itself and the stable
//! `/dev/serial/by-id/…` link to write as `[[bench]] port`. Needs no config, no HSM and no ledger.

use super::{Output, Report};
use crate::Result;
use crate::error::Error;
use crate::serial::enumerate::{self, PortInfo};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PortsArgs {
    /// Read sysfs from here instead of /sys (a recorded tree; the tests use one).
    #[arg(long, value_name = "DIR", default_value = "/sys", hide = true)]
    pub sysfs: PathBuf,
    /// Look for device nodes and udev's links here instead of /dev.
    #[arg(long, value_name = "DIR", default_value = "/dev", hide = true)]
    pub dev: PathBuf,
}

#[derive(Serialize)]
struct Ports {
    ports: Vec<PortInfo>,
}

pub fn run(a: &PortsArgs) -> Result<Box<dyn Report>> {
    let class = a.sysfs.join("class/tty");
    let ports = enumerate::list(&a.sysfs, &a.dev).map_err(|e| {
        Error::io(
            "ports-sysfs-unreadable",
            format!("cannot list serial ports: cannot read {}", class.display()),
            "run on the Linux host the adapters are plugged into, with sysfs mounted at /sys (in a container: \
             mount it)",
            e,
        )
    })?;
    let text = render(&ports, &a.dev);
    Ok(Output::new(Ports { ports }, text))
}

fn render(ports: &[PortInfo], dev: &std::path::Path) -> String {
    let mut t = String::new();
    if ports.is_empty() {
        return "no serial ports found: plug the adapter in and look at `dmesg` for its driver (ftdi_sio, cp210x, \
                ch341, cdc_acm)"
            .into();
    }
    for p in ports {
        let _ = write!(t, "{}  {}", p.device.display(), p.kind);
        if let Some(u) = &p.usb {
            let _ = write!(t, " {}:{}", u.vid, u.pid);
            for part in [&u.manufacturer, &u.product].into_iter().flatten() {
                let _ = write!(t, "  {part}");
            }
            let _ = write!(t, "  serial {}", u.serial_number.as_deref().unwrap_or("(none)"));
            if let Some(i) = &u.interface {
                let _ = write!(t, "  interface {i}");
            }
        }
        if let Some(d) = &p.driver {
            let _ = write!(t, "  driver {d}");
        }
        t.push('\n');
        for l in &p.by_id {
            let _ = writeln!(t, "    by-id:   {}", l.display());
        }
        for l in &p.by_path {
            let _ = writeln!(t, "    by-path: {}", l.display());
        }
        if p.usb.as_ref().is_some_and(|u| u.serial_number.is_none()) {
            let _ = writeln!(
                t,
                "    no serial number: every adapter of this model has the same by-id link; the by-path link (the USB \
                 socket) tells them apart"
            );
        } else if p.by_id.is_empty() && p.usb.is_some() {
            let _ = writeln!(t, "    no by-id link (udev made none): the by-path link names the USB socket instead");
        }
        let _ = writeln!(t, "    [[bench]] port = {:?}", p.suggested_port.display().to_string());
    }
    if !dev.join("serial").exists() {
        t.push_str("no /dev/serial links: udev is not running here, so only the device nodes are shown\n");
    }
    let _ = write!(t, "{} serial port(s)", ports.len());
    t
}
