//! JSON-lines file sink: epoch `N` becomes `<dir>/part-<N as 20 digits>-<tag>.jsonl`, written
//! to a temporary file and renamed into place, so a replayed epoch overwrites the same file
//! with the same content — exactly once. Empty epochs write no file. The tag comes from the
//! query's checkpoint id, so several queries (or a re-run from a fresh checkpoint) writing into
//! one directory never overwrite each other's epochs.

use std::path::PathBuf;

use arrow::record_batch::RecordBatch;

use super::Sink;
use crate::checkpoint::write_atomic;
use crate::error::RuntimeError;
use crate::rows::row_json;
use crate::Result;

/// The short tag that keeps one query's files apart from another's in a shared directory: the
/// first 8 letters and digits of its checkpoint id.
pub fn file_tag(query_id: &str) -> String {
    query_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect()
}

#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    tag: String,
}

impl FileSink {
    /// A sink writing into `dir` (created when missing) for the query whose checkpoint id is
    /// `query_id`.
    pub fn new(dir: impl Into<PathBuf>, query_id: &str) -> Result<FileSink> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("creating", &dir, e))?;
        Ok(FileSink {
            dir,
            tag: file_tag(query_id),
        })
    }

    /// The file epoch `epoch` is written to.
    pub fn part_path(&self, epoch: u64) -> PathBuf {
        self.dir
            .join(format!("part-{epoch:020}-{}.jsonl", self.tag))
    }
}

impl Sink for FileSink {
    fn description(&self) -> String {
        format!("FileSink[{}]", self.dir.display())
    }

    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(());
        }
        let mut text = String::new();
        for b in batches {
            for i in 0..b.num_rows() {
                text.push_str(&row_json(b, i));
                text.push('\n');
            }
        }
        write_atomic(&self.part_path(epoch), text.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn replay_overwrites_same_file() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileSink::new(d.path().join("out"), "0123abcd-query").unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("avg", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Float64Array::from(vec![Some(1.5), None])),
            ],
        )
        .unwrap();
        s.write_epoch(3, std::slice::from_ref(&b)).unwrap();
        s.write_epoch(3, std::slice::from_ref(&b)).unwrap();
        s.write_epoch(4, &[]).unwrap();
        let files: Vec<_> = std::fs::read_dir(d.path().join("out")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(s.part_path(3)).unwrap();
        assert_eq!(text, "{\"id\":1,\"avg\":1.5}\n{\"id\":2,\"avg\":null}\n");
        assert!(s
            .part_path(3)
            .ends_with("part-00000000000000000003-0123abcd.jsonl"));
    }

    /// Regression (issue 11): two queries into one directory each keep every epoch.
    #[test]
    fn two_queries_share_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = |v: i64| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
        };
        let mut a = FileSink::new(d.path(), "aaaa1111-x").unwrap();
        let mut b = FileSink::new(d.path(), "bbbb2222-y").unwrap();
        a.write_epoch(0, &[batch(1)]).unwrap();
        b.write_epoch(0, &[batch(2)]).unwrap();
        a.write_epoch(0, &[batch(1)]).unwrap();
        let mut all: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        all.sort();
        assert_eq!(all, ["{\"id\":1}\n", "{\"id\":2}\n"]);
    }
}
