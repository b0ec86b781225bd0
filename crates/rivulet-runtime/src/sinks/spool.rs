//! The write-ahead spool of the storage sinks (Parquet, PostgreSQL): one Arrow IPC file per
//! epoch, `<dir>/<epoch as 20 digits>.arrow`, written atomically and fsynced in
//! `write_epoch`, before the checkpoint's commit marker.
//!
//! Why: those sinks make an epoch visible later than the checkpoint commits it (the Parquet
//! sink when it rolls a file, the PostgreSQL sink when the server takes the transaction). A
//! crash in between must not lose the epoch — the driver does not replay committed epochs —
//! so its rows wait here until the sink has made them durable in the destination. On start,
//! spooled epochs up to the checkpoint's last committed one are delivered again; later ones
//! are deleted (the driver replays that epoch and spools it anew).

use std::fs;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use arrow::record_batch::RecordBatch;

use crate::checkpoint::write_atomic;
use crate::error::RuntimeError;
use crate::Result;

/// A spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating when missing) the spool in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Spool> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("creating", &dir, e))?;
        Ok(Spool { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("{epoch:020}.arrow"))
    }

    /// Writes the epoch's rows durably (replacing an earlier write of the same epoch).
    pub fn write(&self, epoch: u64, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        let mut w = FileWriter::try_new(Vec::new(), schema)?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
        write_atomic(&self.path(epoch), &w.into_inner()?)
    }

    /// The rows of a spooled epoch.
    pub fn read(&self, epoch: u64) -> Result<Vec<RecordBatch>> {
        let p = self.path(epoch);
        let f = fs::File::open(&p).map_err(|e| RuntimeError::io("opening", &p, e))?;
        let r = FileReader::try_new(std::io::BufReader::new(f), None)?;
        r.collect::<Result<Vec<_>, _>>().map_err(Into::into)
    }

    /// Deletes a spooled epoch (absent is fine).
    pub fn remove(&self, epoch: u64) -> Result<()> {
        let p = self.path(epoch);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("removing", &p, e)),
        }
    }

    /// Spooled epochs, ascending. Leftover temporary files of an interrupted write are
    /// deleted.
    pub fn epochs(&self) -> Result<Vec<u64>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| RuntimeError::io("listing", &self.dir, e))?;
        let mut v = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| RuntimeError::io("listing", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name
                .strip_suffix(".arrow")
                .and_then(|n| n.parse::<u64>().ok())
            {
                v.push(n);
            } else if name.ends_with(".tmp") {
                let p = entry.path();
                fs::remove_file(&p).map_err(|e| RuntimeError::io("removing", &p, e))?;
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// Keeps the spooled epochs up to `last_committed` (they must still be delivered) and
    /// deletes the later ones (the driver replays them). Returns the kept epochs.
    pub fn recover(&self, last_committed: Option<u64>) -> Result<Vec<u64>> {
        let mut keep = Vec::new();
        for e in self.epochs()? {
            if last_committed.is_some_and(|c| e <= c) {
                keep.push(e);
            } else {
                self.remove(e)?;
            }
        }
        Ok(keep)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn write_read_recover() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path().join("spool")).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        for e in [3, 4, 5] {
            s.write(e, &schema, std::slice::from_ref(&b)).unwrap();
        }
        s.write(4, &schema, &[]).unwrap();
        fs::write(s.dir().join(".00000000000000000006.arrow.tmp"), b"x").unwrap();
        assert_eq!(s.read(3).unwrap(), vec![b]);
        assert!(s.read(4).unwrap().is_empty());
        assert_eq!(s.recover(Some(4)).unwrap(), vec![3, 4]);
        assert_eq!(s.epochs().unwrap(), vec![3, 4]);
        assert_eq!(s.recover(None).unwrap(), Vec::<u64>::new());
        assert_eq!(fs::read_dir(s.dir()).unwrap().count(), 0);
    }
}
