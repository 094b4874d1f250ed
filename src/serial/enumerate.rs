//! The serial ports a machine has, read from sysfs (`/sys/class/tty/*/device`) and udev's stable links
//! (`/dev/serial/by-id`, `/dev/serial/by-path`), for `station ports`.
//!
//! A small reader of its own rather than `serialport::available_ports`: that one needs libudev for USB details or
//! reads only the fixed `/sys` and `/dev` (so it cannot be tested against a recorded tree), panics when
//! `/sys/class/tty` is missing, and knows nothing of the by-id links an engineer should put in `[[bench]] port`.

use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

/// One serial port.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PortInfo {
    /// The kernel's name, e.g. `ttyUSB0`.
    pub name: String,
    /// The device node, e.g. `/dev/ttyUSB0`. It can change when the adapter is replugged.
    pub device: PathBuf,
    /// `usb` for a USB adapter or a USB CDC-ACM device, `other` for a built-in or PCI UART.
    pub kind: &'static str,
    /// The kernel driver (`ftdi_sio`, `cp210x`, `ch341`, `cdc_acm`, …), when sysfs names one.
    pub driver: Option<String>,
    /// What the USB device says about itself.
    pub usb: Option<UsbInfo>,
    /// udev's links by vendor, product and serial number: these stay the same across replugs and ports.
    pub by_id: Vec<PathBuf>,
    /// udev's links by the physical USB port: the same as long as the cable stays in that socket.
    pub by_path: Vec<PathBuf>,
    /// What to write as `[[bench]] port`: the by-id link, else the by-path link, else the device node; by-path
    /// first for an adapter without a serial number.
    pub suggested_port: PathBuf,
}

/// A USB serial port's identity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsbInfo {
    /// The vendor id, 4 hex digits (`0403` is FTDI).
    pub vid: String,
    /// The product id, 4 hex digits.
    pub pid: String,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// The adapter's serial number; cheap adapters (many CH340) have none, and then all of them share a by-id link.
    pub serial_number: Option<String>,
    /// The USB interface number (2 hex digits), for adapters with several ports.
    pub interface: Option<String>,
}

/// Lists the serial ports under `sys` (normally `/sys`) whose node exists under `dev` (normally `/dev`), sorted by
/// name. A port of the serial core whose UART was not found (`type` 0, the phantom `ttyS1`…`ttyS31`) is left out.
pub fn list(sys: &Path, dev: &Path) -> io::Result<Vec<PortInfo>> {
    let class = sys.join("class/tty");
    let by_id = links(&dev.join("serial/by-id"));
    let by_path = links(&dev.join("serial/by-path"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&class)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let tty = entry.path();
        let Ok(device_dir) = std::fs::canonicalize(tty.join("device")) else { continue };
        let node = dev.join(&name);
        if !node.exists() || read(&tty, "type").as_deref() == Some("0") {
            continue;
        }
        let usb = usb_interface(&device_dir).and_then(|i| usb_info(&i));
        let target = std::fs::canonicalize(&node).ok();
        let matching = |all: &[(PathBuf, PathBuf)]| -> Vec<PathBuf> {
            all.iter().filter(|(_, t)| Some(t) == target.as_ref()).map(|(l, _)| l.clone()).collect()
        };
        let (by_id, by_path) = (matching(&by_id), matching(&by_path));
        // Without a serial number, a by-id link is made from vendor and model only: every adapter of the model has
        // the same one. The by-path link (the USB socket) tells them apart.
        let unique_id = usb.as_ref().is_none_or(|u| u.serial_number.is_some());
        let first = if unique_id { by_id.first().or(by_path.first()) } else { by_path.first().or(by_id.first()) };
        let suggested_port = first.unwrap_or(&node).clone();
        out.push(PortInfo {
            name,
            device: node,
            kind: if usb.is_some() { "usb" } else { "other" },
            driver: link_name(&device_dir.join("driver")),
            usb,
            by_id,
            by_path,
            suggested_port,
        });
    }
    out.sort_by_key(|p| sort_key(&p.name));
    Ok(out)
}

/// The USB interface a tty belongs to: the tty's device for CDC-ACM (`usb` bus), its parent for USB serial
/// adapters (`usb-serial` bus).
fn usb_interface(device_dir: &Path) -> Option<PathBuf> {
    match link_name(&device_dir.join("subsystem"))?.as_str() {
        "usb" => Some(device_dir.to_path_buf()),
        "usb-serial" => device_dir.parent().map(Path::to_path_buf),
        _ => None,
    }
}

/// The USB device's descriptors, read from the interface's parent.
fn usb_info(interface: &Path) -> Option<UsbInfo> {
    let device = interface.parent()?;
    Some(UsbInfo {
        vid: read(device, "idVendor")?,
        pid: read(device, "idProduct")?,
        manufacturer: read(device, "manufacturer"),
        product: read(device, "product"),
        serial_number: read(device, "serial"),
        interface: read(interface, "bInterfaceNumber"),
    })
}

/// A sysfs attribute, trimmed; `None` when missing, unreadable or empty.
fn read(dir: &Path, attr: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(attr)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The last component of where a symlink leads (a driver's or a bus's name).
fn link_name(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The links in a udev folder with what each resolves to; none when the folder is missing (no udev, no adapter).
fn links(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(PathBuf, PathBuf)> =
        entries.flatten().filter_map(|e| std::fs::canonicalize(e.path()).ok().map(|t| (e.path(), t))).collect();
    out.sort();
    out
}

/// `ttyUSB2` before `ttyUSB10`.
fn sort_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (stem.to_string(), number.parse().unwrap_or(0), name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_sort_by_stem_then_number() {
        let mut names = ["ttyUSB10", "ttyACM0", "ttyUSB2", "ttyS0", "ttyUSB0"];
        names.sort_by_key(|n| sort_key(n));
        assert_eq!(names, ["ttyACM0", "ttyS0", "ttyUSB0", "ttyUSB2", "ttyUSB10"]);
    }
}
