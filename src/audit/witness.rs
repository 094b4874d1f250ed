//! The witness file `state_dir/checkpoints.log`: one JSON line per checkpoint, outside the database, so a ledger
//! rolled back together with its checkpoint rows is still caught.
//!
//! Crash safety. A checkpoint is committed to the ledger first and witnessed afterwards, so a kill between the two
//! leaves a checkpoint the witness lacks, and a kill inside the write can leave a torn last line. Every write to the
//! witness is therefore a [`sync`]: under a lock file, it first repairs a torn tail (the fragment is kept beside the
//! file, never dropped, and the rest is rewritten through a temporary file and a rename), then appends every ledger
//! checkpoint the witness lacks, in id order, and fsyncs. Writers that always sync keep the witness an in-order
//! prefix of the ledger's checkpoints: the only gap a crash can leave is at the end, and the next start repairs it.

use crate::Result;
use crate::ledger::{Checkpoint, checkpoints};
use rusqlite::Connection;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The witness file for a station.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("checkpoints.log")
}

/// A witness line: the checkpoint's id (lines written before the id was recorded have none), the event it signed,
/// that event's hash, and when it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: Option<i64>,
    pub seq: i64,
    pub head_hash: String,
    pub at: String,
}

/// The checkpoints a witness file holds.
#[derive(Debug, Clone, Default)]
pub struct Witnessed {
    ids: HashSet<i64>,
    /// Lines without an id: (seq, head_hash, at).
    legacy: HashSet<(i64, String, String)>,
}

impl Witnessed {
    /// Whether the witness holds this ledger checkpoint: a line with its id (and its head), or an older line
    /// without an id that has its head and time.
    pub fn contains(&self, cp: &Checkpoint) -> bool {
        self.ids.contains(&cp.id) || self.legacy.contains(&(cp.seq, cp.head_hash.clone(), cp.at.clone()))
    }
}

/// One line of the witness file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// `None`: the line is not a witness record.
    pub record: Option<Record>,
}

/// The witness file as read: its complete lines, and a torn last line (no newline: a write cut short).
#[derive(Debug, Clone, Default)]
pub struct Witness {
    pub exists: bool,
    pub lines: Vec<Line>,
    /// The bytes after the last newline, when there are any.
    pub torn: Option<Vec<u8>>,
}

impl Witness {
    /// Reads the witness file; a missing file is an empty witness.
    pub fn read(state_dir: &Path) -> Result<Witness> {
        let bytes = match std::fs::read(path(state_dir)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Witness::default()),
            Err(e) => return Err(io_error(state_dir, e)),
        };
        Ok(Witness::parse(&bytes))
    }

    fn parse(bytes: &[u8]) -> Witness {
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let torn = (complete < bytes.len()).then(|| bytes[complete..].to_vec());
        // Every complete line ends in a newline; the last one's is not a separator.
        let body = bytes[..complete].strip_suffix(b"\n");
        let lines = body.map_or_else(Vec::new, |b| {
            b.split(|c| *c == b'\n').enumerate().map(|(i, l)| Line { number: i + 1, record: record(l) }).collect()
        });
        Witness { exists: true, lines, torn }
    }

    /// The checkpoints witnessed.
    pub fn witnessed(&self) -> Witnessed {
        let mut w = Witnessed::default();
        for r in self.lines.iter().filter_map(|l| l.record.as_ref()) {
            match r.id {
                Some(id) => drop(w.ids.insert(id)),
                None => drop(w.legacy.insert((r.seq, r.head_hash.clone(), r.at.clone()))),
            }
        }
        w
    }

    /// The events the witness says were signed.
    pub fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.lines.iter().filter_map(|l| l.record.as_ref().map(|r| r.seq))
    }
}

fn record(line: &[u8]) -> Option<Record> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    Some(Record {
        id: v["id"].as_i64(),
        seq: v["seq"].as_i64()?,
        head_hash: v["head_hash"].as_str()?.to_string(),
        at: v["at"].as_str()?.to_string(),
    })
}

/// What a [`sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Synced {
    /// The checkpoint ids appended, in order.
    pub appended: Vec<i64>,
    /// Where a torn last line was kept, when one was repaired.
    pub torn_kept_in: Option<PathBuf>,
}

/// Brings the witness up to the ledger: repairs a torn last line, then appends every checkpoint the ledger holds
/// and the witness lacks, in id order, fsync'd. Safe to run from several processes at once (a lock file).
pub fn sync(state_dir: &Path, conn: &Connection) -> Result<Synced> {
    let io = |e| io_error(state_dir, e);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(state_dir).map_err(io)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(state_dir.join("checkpoints.lock"))
        .map_err(io)?;
    lock.lock().map_err(io)?;
    let mut witness = Witness::read(state_dir)?;
    let mut synced = Synced::default();
    if let Some(fragment) = witness.torn.take() {
        synced.torn_kept_in = Some(repair_torn(state_dir, &fragment)?);
    }
    let have = witness.witnessed();
    let missing: Vec<Checkpoint> = checkpoints::all(conn)?.into_iter().filter(|c| !have.contains(c)).collect();
    if !missing.is_empty() {
        let mut text = String::new();
        for cp in &missing {
            text += &line(cp);
            text.push('\n');
        }
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path(state_dir)).map_err(io)?;
        #[cfg(feature = "test-hooks")]
        if let Some(cut) = crate::test_hooks::torn_write_len(text.len()) {
            f.write_all(&text.as_bytes()[..cut]).map_err(io)?;
            f.sync_all().map_err(io)?;
            crate::test_hooks::pause_point("witness-torn");
        }
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        sync_dir(state_dir).map_err(io)?;
        synced.appended = missing.iter().map(|c| c.id).collect();
    }
    drop(lock);
    Ok(synced)
}

/// A checkpoint's witness line.
fn line(cp: &Checkpoint) -> String {
    serde_json::json!({ "id": cp.id, "seq": cp.seq, "head_hash": cp.head_hash, "at": cp.at, "issuances": cp.issuances })
        .to_string()
}

/// Keeps a torn last line in `checkpoints.log.torn-<unix time>` (fsync'd), then rewrites the witness without it
/// through a temporary file and a rename. Every complete line stays, byte for byte.
fn repair_torn(state_dir: &Path, fragment: &[u8]) -> Result<PathBuf> {
    let io = |e| io_error(state_dir, e);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let kept = state_dir.join(format!("checkpoints.log.torn-{now}"));
    write_new(&kept, fragment).map_err(io)?;
    let bytes = std::fs::read(path(state_dir)).map_err(io)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let tmp = state_dir.join("checkpoints.log.tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, &bytes[..complete]).map_err(io)?;
    std::fs::rename(&tmp, path(state_dir)).map_err(io)?;
    sync_dir(state_dir).map_err(io)?;
    tracing::warn!(
        bytes = fragment.len(),
        kept = %kept.display(),
        "the witness file ended in a torn line (a write cut short); the fragment was kept and the line is written again from the ledger"
    );
    Ok(kept)
}

fn write_new(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(p)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn io_error(state_dir: &Path, e: std::io::Error) -> crate::Error {
    crate::Error::io(
        "witness-unwritable",
        format!("cannot write {}", path(state_dir).display()),
        "check [station] state_dir",
        e,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_told_apart_from_complete_lines() {
        let w = Witness::parse(b"{\"seq\":1,\"head_hash\":\"a\",\"at\":\"t\"}\nnot json\n{\"seq\":2,\"he");
        assert_eq!(w.lines.len(), 2);
        let first = Record { id: None, seq: 1, head_hash: "a".into(), at: "t".into() };
        assert_eq!(w.lines[0].record, Some(first));
        assert_eq!(w.lines[1], Line { number: 2, record: None });
        assert_eq!(w.torn.as_deref(), Some(&b"{\"seq\":2,\"he"[..]));
        let w = Witness::parse(b"{\"seq\":1,\"head_hash\":\"a\"}\n");
        assert_eq!((w.lines.len(), w.torn), (1, None));
        let w = Witness::parse(b"");
        assert_eq!((w.lines.len(), w.torn), (0, None));
    }
}
