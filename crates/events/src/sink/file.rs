//! The `file` sink: one JSON line per event appended to a file, rotated by size
//! (`path` → `path.1` → … → `path.<max_files>`, the oldest dropped).
//!
//! Writes are flushed per batch but not fsynced. A missing directory is a delivery failure,
//! never created here. A single event larger than `max_bytes` is written alone into a fresh file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use warren_store::events::OutboxEntry;

pub(crate) struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
}

impl FileSink {
    pub(crate) fn new(path: &str, max_bytes: u64, max_files: u32) -> FileSink {
        FileSink {
            path: PathBuf::from(path),
            max_bytes,
            max_files,
        }
    }

    pub(crate) async fn deliver(&mut self, rows: &[OutboxEntry]) -> Result<(), String> {
        let payloads: Vec<String> = rows.iter().map(|r| r.payload.clone()).collect();
        let (path, max_bytes, max_files) = (self.path.clone(), self.max_bytes, self.max_files);
        tokio::task::spawn_blocking(move || append(&path, max_bytes, max_files, &payloads))
            .await
            .map_err(|e| format!("file writer task failed: {e}"))?
            .map_err(|e| describe(&self.path, &e))
    }
}

fn describe(path: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        let dir = path.parent().unwrap_or(Path::new("/"));
        format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        )
    } else {
        format!("cannot write {}: {e}", path.display())
    }
}

fn open(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

/// Appends the events of `payloads` (each one or more JSON lines), rotating between events.
fn append(path: &Path, max_bytes: u64, max_files: u32, payloads: &[String]) -> io::Result<()> {
    let (mut out, mut size) = open(path)?;
    for line in payloads.iter().flat_map(|p| p.split('\n')) {
        let len = line.len() as u64 + 1;
        if size > 0 && size + len > max_bytes {
            out.flush()?;
            drop(out);
            rotate(path, max_files)?;
            (out, size) = open(path)?;
        }
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        size += len;
    }
    out.flush()
}

/// Numbered sibling `path.<n>`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Shifts `path.<n>` to `path.<n+1>` (dropping `path.<max_files>`) and `path` to `path.1`.
fn rotate(path: &Path, max_files: u32) -> io::Result<()> {
    let max_files = max_files.max(1);
    for n in (1..max_files).rev() {
        match std::fs::rename(numbered(path, n), numbered(path, n + 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::rename(path, numbered(path, 1))
}
