//! Record batch headers read from segment files by hand, so a check does not depend on the
//! broker's own reading of them.

use std::path::{Path, PathBuf};

/// One record batch found in a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskBatch {
    /// Position of the batch in its file.
    pub position: u64,
    pub base_offset: i64,
    /// Record count (last offset delta + 1).
    pub records: i32,
    /// The batch's whole size in bytes (length field + 12).
    pub size: u64,
    /// The attributes (codec in the low three bits).
    pub attributes: i16,
}

/// The batches of a segment file, up to the first torn or implausible header.
pub fn segment_batches(path: &Path) -> Vec<DiskBatch> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_batches(&data)
}

/// The batches of a segment file's bytes, up to the first torn or implausible header.
fn parse_batches(data: &[u8]) -> Vec<DiskBatch> {
    let be = |at: usize, n: usize| -> i64 {
        data[at..at + n]
            .iter()
            .fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
    };
    let mut out = vec![];
    let mut pos = 0usize;
    while pos + 61 <= data.len() {
        let base = be(pos, 8);
        let len = be(pos + 8, 4) as i32;
        let attributes = be(pos + 21, 2) as i16;
        let delta = be(pos + 23, 4) as i32;
        if len < 49 || pos + 12 + len as usize > data.len() {
            break;
        }
        out.push(DiskBatch {
            position: pos as u64,
            base_offset: base,
            records: delta + 1,
            size: 12 + len as u64,
            attributes,
        });
        pos += 12 + len as usize;
    }
    out
}

/// The batches of every segment file (`*.log`) of a partition directory, in file order (none
/// while the directory does not exist).
pub fn batches_on_disk(partition_dir: &Path) -> Vec<DiskBatch> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "log"));
    files.sort();
    // A file removed meanwhile (retention) holds no batches.
    files
        .iter()
        .flat_map(|f| parse_batches(&std::fs::read(f).unwrap_or_default()))
        .collect()
}
