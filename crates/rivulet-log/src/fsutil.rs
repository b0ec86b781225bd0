//! Small filesystem helpers shared by the log and the manager: directory fsync and atomic
//! file replacement (write a temp file, fsync it, rename over the target, fsync the directory),
//! so a crash leaves either the old or the new content, never a torn mix.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{LogError, Result};

/// Fsyncs a directory so that creates, renames and deletes inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

/// Atomically replaces `path` with `contents` (tmp + fsync + rename + dir fsync).
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    // A short temp name beside the target: `<name>.tmp` would pass the 255-byte file name
    // limit for the longest legal topic names (249 characters + ".json").
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| LogError::io(&tmp, e))?;
        f.write_all(contents).map_err(|e| LogError::io(&tmp, e))?;
        f.sync_all().map_err(|e| LogError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| LogError::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}
