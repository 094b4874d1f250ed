//! Fault injection for the test suite only: compiled with the cargo feature `test-hooks`
//! (`scripts/test.sh` turns it on), never into a release build.

/// The environment variable naming a marker: a signature over a message that contains it panics while
/// its HSM session is checked out (a panic in a bench session, as a bug would cause one).
pub const PANIC_MARKER_ENV: &str = "STATION_TEST_PANIC_MARKER";

/// The environment variable naming a fail point: the code at that point returns an error, as a fault there would.
pub const FAILPOINT_ENV: &str = "STATION_TEST_FAILPOINT";

/// Fails when [`FAILPOINT_ENV`] names `point`.
pub fn fail_point(point: &str) -> crate::Result<()> {
    if std::env::var_os(FAILPOINT_ENV).is_some_and(|p| p == point) {
        return Err(crate::Error::usage(
            "test-failpoint",
            format!("test fail point {point}"),
            "unset STATION_TEST_FAILPOINT",
        ));
    }
    Ok(())
}

/// Panics when `msg` contains the marker set in [`PANIC_MARKER_ENV`].
pub fn panic_if_marked(msg: &[u8]) {
    let Some(marker) = std::env::var_os(PANIC_MARKER_ENV) else { return };
    let marker = marker.as_encoded_bytes();
    if !marker.is_empty() && msg.windows(marker.len()).any(|w| w == marker) {
        panic!("test hook: panic while signing a message marked {:?}", String::from_utf8_lossy(marker));
    }
}

/// The environment variable naming a pause point, and the file the process creates when it reaches it.
pub const PAUSE_POINT_ENV: &str = "STATION_TEST_PAUSE_POINT";
pub const PAUSE_MARKER_ENV: &str = "STATION_TEST_PAUSE_MARKER";

/// When [`PAUSE_POINT_ENV`] names `point`: creates the marker file and waits there (a minute at most) so that a test
/// can kill the process at exactly this point.
pub fn pause_point(point: &str) {
    if std::env::var_os(PAUSE_POINT_ENV).is_none_or(|p| p != point) {
        return;
    }
    if let Some(marker) = std::env::var_os(PAUSE_MARKER_ENV) {
        let _ = std::fs::write(marker, point);
    }
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// True once per process when [`FAILPOINT_ENV`] names `point`: a fault that strikes one time (a thread that dies and
/// is started again).
pub fn fail_once(point: &str) -> bool {
    static STRUCK: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if fail_point(point).is_ok() {
        return false;
    }
    let mut struck = STRUCK.lock().unwrap_or_else(|p| p.into_inner());
    if struck.iter().any(|p| p == point) {
        return false;
    }
    struck.push(point.to_string());
    true
}

/// When [`FAILPOINT_ENV`] names `witness-torn`: how many of `len` bytes a witness append writes before the process
/// stops at the pause point `witness-torn` (a write cut short by a kill).
pub fn torn_write_len(len: usize) -> Option<usize> {
    fail_point("witness-torn").is_err().then_some(len / 2)
}
