//! What the shell shows: result rows as `a | b` lines (sent from the query's thread to the
//! prompt loop, which prints them), and errors with a caret under the column they point at.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::record_batch::RecordBatch;
use rivulet_runtime::progress::QueryProgress;
use rivulet_runtime::QueryObserver;
use tokio::sync::mpsc;

/// Hands each committed epoch's rows, as text lines, to the prompt loop (the observer runs on
/// the query's thread and must not block on the terminal).
#[derive(Debug)]
pub(super) struct RowPrinter {
    tx: mpsc::UnboundedSender<Vec<String>>,
    header_sent: AtomicBool,
    /// The columns a plain `SELECT a, b FROM ...` lists: the plan passes every source column
    /// through (no projection yet), so only these are shown, in this order.
    only: Option<Vec<String>>,
}

impl RowPrinter {
    /// A printer for the query `text` and the receiving end the prompt loop prints from.
    pub(super) fn new(text: &str) -> (RowPrinter, mpsc::UnboundedReceiver<Vec<String>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let printer = RowPrinter {
            tx,
            header_sent: AtomicBool::new(false),
            only: rivulet_sql::listed_columns(text),
        };
        (printer, rx)
    }
}

/// Internal columns of the decoded rows (`_key`, `_offset`, `_event_time`, ...) are not shown.
fn shown(name: &str) -> bool {
    !name.starts_with('_')
}

impl QueryObserver for RowPrinter {
    fn on_results(&self, _epoch: u64, rows: &[RecordBatch]) {
        let mut lines = Vec::new();
        for b in rows.iter().filter(|b| b.num_rows() > 0) {
            let schema = b.schema();
            let cols: Vec<usize> = match &self.only {
                Some(names) => names
                    .iter()
                    .filter_map(|n| schema.index_of(n).ok())
                    .collect(),
                None => (0..b.num_columns())
                    .filter(|&i| shown(schema.field(i).name()))
                    .collect(),
            };
            if !self.header_sent.swap(true, Ordering::Relaxed) {
                let names: Vec<&str> = cols
                    .iter()
                    .map(|&i| schema.field(i).name().as_str())
                    .collect();
                lines.push(names.join(" | "));
            }
            for r in 0..b.num_rows() {
                let cells: Vec<String> = cols
                    .iter()
                    .map(|&i| rivulet_runtime::rows::console_cell(b.column(i), r))
                    .collect();
                lines.push(cells.join(" | "));
            }
        }
        if !lines.is_empty() {
            // The prompt loop may be gone (the query outlived a Ctrl-C): nothing to print then.
            let _ = self.tx.send(lines);
        }
    }

    fn on_progress(&self, _progress: &QueryProgress) {}
}

/// Prints result lines on stdout.
pub(super) fn print_lines(lines: Vec<String>) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        // A closed stdout (a pager that quit) must not stop the shell.
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
}

/// The error, with the input line and a caret under the column when it has a position.
pub(super) fn show_error(e: &anyhow::Error, text: &str) -> String {
    let mut o = format!("error: {e:#}");
    if let Some(rivulet_sql::SqlError::At { pos, .. }) = e.downcast_ref::<rivulet_sql::SqlError>() {
        let line = usize::try_from(pos.line).unwrap_or(0);
        let col = usize::try_from(pos.col).unwrap_or(0);
        if let Some(l) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) {
            if col >= 1 && !l.trim().is_empty() {
                o.push_str(&format!("\n  {l}\n  {}^", " ".repeat(col - 1)));
            }
        }
    }
    o
}
