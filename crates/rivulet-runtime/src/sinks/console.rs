//! Console sink, like Spark's: a banner per batch and a `show()`-style table
//! (right-aligned cells, `+---+` borders, cells cut at 20 characters, at most 20 rows).
//!
//! ```text
//! -------------------------------------------
//! Batch: 3
//! -------------------------------------------
//! +---+-------------------+-----+
//! | id|       window_start|count|
//! +---+-------------------+-----+
//! |  1|2026-11-24 10:00:10|    3|
//! +---+-------------------+-----+
//! ```

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::RuntimeError;
use crate::rows::console_cell;
use crate::Result;

/// Spark's default `numRows` for the console sink.
pub const DEFAULT_MAX_ROWS: usize = 20;
/// Spark's `truncate = true` width.
const TRUNCATE: usize = 20;

pub struct ConsoleSink<W: Write + Send> {
    out: W,
    max_rows: usize,
    schema: Option<SchemaRef>,
}

impl ConsoleSink<std::io::Stdout> {
    /// A console sink on stdout.
    pub fn stdout() -> Self {
        ConsoleSink::new(std::io::stdout())
    }
}

impl<W: Write + Send> ConsoleSink<W> {
    pub fn new(out: W) -> Self {
        ConsoleSink {
            out,
            max_rows: DEFAULT_MAX_ROWS,
            schema: None,
        }
    }

    /// The result schema, so that an epoch without rows still prints its (empty) table.
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    pub fn with_max_rows(mut self, n: usize) -> Self {
        self.max_rows = n;
        self
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn truncate(s: String) -> String {
    if s.chars().count() <= TRUNCATE {
        s
    } else {
        let mut t: String = s.chars().take(TRUNCATE - 3).collect();
        t.push_str("...");
        t
    }
}

/// Renders the batch banner and table for `epoch`.
pub fn render(
    epoch: u64,
    schema: Option<&SchemaRef>,
    batches: &[RecordBatch],
    max_rows: usize,
) -> String {
    let mut s = String::new();
    s.push_str("-------------------------------------------\n");
    s.push_str(&format!("Batch: {epoch}\n"));
    s.push_str("-------------------------------------------\n");
    let Some(schema) = batches
        .first()
        .map(|b| b.schema())
        .or_else(|| schema.cloned())
    else {
        s.push('\n');
        return s;
    };
    let headers: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| truncate(f.name().clone()))
        .collect();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut rows: Vec<Vec<String>> = Vec::new();
    'outer: for b in batches {
        for i in 0..b.num_rows() {
            if rows.len() >= max_rows {
                break 'outer;
            }
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| truncate(console_cell(c, i)))
                    .collect(),
            );
        }
    }
    // Spark's minimum column width is 3.
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(c, h)| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
                .chain([h.chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let border: String = {
        let mut b = String::from("+");
        for w in &widths {
            b.push_str(&"-".repeat(*w));
            b.push('+');
        }
        b.push('\n');
        b
    };
    let line = |cells: &[String]| {
        let mut l = String::from("|");
        for (c, w) in cells.iter().zip(&widths) {
            l.push_str(&format!("{c:>w$}|"));
        }
        l.push('\n');
        l
    };
    s.push_str(&border);
    s.push_str(&line(&headers));
    s.push_str(&border);
    for r in &rows {
        s.push_str(&line(r));
    }
    s.push_str(&border);
    if total > rows.len() {
        s.push_str(&format!(
            "only showing top {} row{}\n",
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        ));
    }
    s.push('\n');
    s
}

impl<W: Write + Send> Sink for ConsoleSink<W> {
    fn description(&self) -> String {
        "ConsoleSink".to_string()
    }

    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let text = render(epoch, self.schema.as_ref(), batches, self.max_rows);
        let fail = |e: std::io::Error| RuntimeError::Sink {
            sink: "console".into(),
            reason: e.to_string(),
        };
        self.out.write_all(text.as_bytes()).map_err(fail)?;
        self.out.flush().map_err(fail)
    }

    /// A screen is not idempotent anyway: a re-run epoch is printed again whatever it read.
    fn replays_epochs(&self) -> bool {
        false
    }
}
