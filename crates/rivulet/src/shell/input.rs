//! The shell's input: lines from rustyline (with history), whole-line commands, and statements
//! gathered across lines until a `;` ends them (`rivulet_sql::split_statements`), each kept
//! at the line:column where it was typed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;

use super::ShellArgs;
use crate::signals::{Sig, Signals};

/// What reading one line gave.
pub(super) enum Input {
    Line(String),
    /// Ctrl-C at the prompt (terminal only: raw mode reads it as a key).
    Interrupted,
    Eof,
    /// SIGTERM while waiting for input.
    Terminated,
}

/// The line editor and its history file.
pub(super) struct LineReader {
    /// Taken by the reader thread while it waits for a line.
    editor: Option<Editor<(), DefaultHistory>>,
    history: Option<PathBuf>,
    tty: bool,
}

impl LineReader {
    pub(super) fn open(args: &ShellArgs, tty: bool) -> Result<LineReader> {
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .max_history_size(1000)
            .context("history size")?
            .build();
        let mut editor: Editor<(), DefaultHistory> =
            Editor::with_config(config).context("starting the line editor")?;
        let history = history_path(args);
        if let Some(h) = &history {
            // A missing or unreadable history file is no reason not to start.
            let _ = editor.load_history(h);
        }
        Ok(LineReader {
            editor: Some(editor),
            history,
            tty,
        })
    }

    /// Reads one line; SIGINT without a terminal is answered here, SIGTERM ends the input.
    pub(super) async fn read(
        &mut self,
        prompt: &'static str,
        signals: &mut Signals,
    ) -> Result<Input> {
        let mut ed = self.editor.take().context("line editor lost")?;
        if !self.tty {
            // rustyline prints no prompt when stdin is not a terminal; a driving program (and
            // the tests) still needs to see when the shell is ready, and stdout stays results
            // only.
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        let mut task = tokio::task::spawn_blocking(move || {
            let r = ed.readline(prompt);
            (ed, r)
        });
        loop {
            tokio::select! {
                done = &mut task => {
                    let (ed, r) = done.context("line reader thread")?;
                    self.editor = Some(ed);
                    return Ok(match r {
                        Ok(line) => Input::Line(line),
                        Err(ReadlineError::Interrupted) => Input::Interrupted,
                        Err(ReadlineError::Eof) => Input::Eof,
                        Err(e) => return Err(e).context("reading input"),
                    });
                }
                // Without a terminal, Ctrl-C reaches us as SIGINT while the reader waits.
                sig = signals.next() => match sig {
                    Sig::Interrupt => eprintln!("(no query is running: \\q or Ctrl-D quits)"),
                    Sig::Terminate => return Ok(Input::Terminated),
                },
            }
        }
    }

    /// Adds `entry` to the history and saves it.
    pub(super) fn add_history(&mut self, entry: &str) {
        let Some(ed) = self.editor.as_mut() else {
            return;
        };
        if entry.is_empty() || ed.add_history_entry(entry).is_err() {
            return;
        }
        if let Some(p) = &self.history {
            // Saved after every statement, so a killed shell loses nothing; failures are
            // silent (a read-only home is no reason to stop).
            let _ = ed.save_history(p);
        }
    }
}

fn history_path(args: &ShellArgs) -> Option<PathBuf> {
    if let Some(p) = &args.history {
        return (!p.as_os_str().is_empty()).then(|| p.clone());
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".rivulet_sql_history"))
}

/// Lines typed so far that do not yet end a statement.
#[derive(Default)]
pub(super) struct Pending {
    buf: String,
}

/// The statements a line completed.
pub(super) struct Complete {
    /// Their text, one line, for the history.
    pub(super) history: String,
    /// Each statement (without its `;`), positioned as typed (see [`positioned`]); empty
    /// ones left out.
    pub(super) statements: Vec<String>,
}

impl Pending {
    /// Whether no statement is in progress.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.trim().is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
    }

    /// Adds a line; the statements it completes, if any.
    pub(super) fn push_line(&mut self, line: &str) -> Option<Complete> {
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
        let split = rivulet_sql::split_statements(&self.buf);
        if split.complete.is_empty() {
            return None;
        }
        // History holds whole statements, one line each.
        let history = self.buf[..split.rest]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let statements = split
            .complete
            .into_iter()
            .map(|r| positioned(&self.buf, r.start, r.end))
            .filter(|t| !t.trim().is_empty())
            .collect();
        self.buf = self.buf[split.rest..].to_string();
        if self.is_empty() {
            self.buf.clear();
        }
        Some(Complete {
            history,
            statements,
        })
    }
}

/// `buf[start..end]` with everything before it blanked (newlines kept), so positions in
/// errors are line:column of the input as typed.
fn positioned(buf: &str, start: usize, end: usize) -> String {
    let mut s: String = buf[..start]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    s.push_str(&buf[start..end]);
    s
}

/// The first word of a statement, upper-cased.
pub(super) fn first_word(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '(' || c == '*')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_uppercase()
}

/// What a whole input line means when no statement is in progress.
pub(super) enum Meta {
    Quit,
    Help,
    Sources,
}

pub(super) fn meta_command(line: &str) -> Option<Meta> {
    let t = line.trim().trim_end_matches(';').trim();
    let lower = t.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["\\q"] | ["exit"] | ["quit"] => Some(Meta::Quit),
        ["\\?"] | ["\\h"] | ["help"] => Some(Meta::Help),
        ["\\d"] | ["show", "sources"] => Some(Meta::Sources),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_stay_those_of_the_input() {
        let buf = "SET a = 'b'; SELECT\n  x;";
        let split = rivulet_sql::split_statements(buf);
        let r = split.complete[1].clone();
        let t = positioned(buf, r.start, r.end);
        assert_eq!(t, "             SELECT\n  x");
    }

    #[test]
    fn statements_gather_across_lines() {
        let mut p = Pending::default();
        assert!(p.push_line("SET a = 'b'; SELECT").is_some_and(
            |c| c.history == "SET a = 'b';" && c.statements == vec!["SET a = 'b'".to_string()]
        ));
        assert!(!p.is_empty());
        assert!(p.push_line("  x").is_none());
        // Positions are those of the pending lines; the empty statement is left out.
        let c = p.push_line(";; SELECT 2;").expect("complete");
        assert_eq!(c.history, "SELECT x ;; SELECT 2;");
        assert_eq!(
            c.statements,
            vec![
                " SELECT\n  x\n".to_string(),
                "       \n   \n   SELECT 2".to_string()
            ]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn meta_commands_are_whole_lines() {
        assert!(matches!(meta_command(" \\q "), Some(Meta::Quit)));
        assert!(matches!(meta_command("exit;"), Some(Meta::Quit)));
        assert!(matches!(
            meta_command("show  Sources;"),
            Some(Meta::Sources)
        ));
        assert!(matches!(meta_command("\\?"), Some(Meta::Help)));
        assert!(meta_command("SELECT 1;").is_none());
    }

    #[test]
    fn history_needs_no_home() {
        let args = ShellArgs {
            brokers: String::new(),
            topic: String::new(),
            from_beginning: false,
            history: Some(PathBuf::from("/tmp/h")),
            client: Default::default(),
        };
        assert_eq!(history_path(&args), Some(PathBuf::from("/tmp/h")));
    }
}
