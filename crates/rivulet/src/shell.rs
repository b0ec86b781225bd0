//! `rivulet sql`: the interactive shell. A SELECT runs as a continuous query against a topic
//! and its rows print as micro-batches commit; Ctrl-C stops it and returns to the prompt.
//!
//! Each query is compiled by `rivulet_sql::compile_select` over the session's sources and
//! settings (a pre-declared `events` source over `--topic`, plus any `CREATE SOURCE` / `SET`
//! typed), and run by `rivulet_runtime::run_query` with a fresh temporary checkpoint directory,
//! no sinks and an observer that hands each committed epoch's rows to the prompt loop.
//!
//! Input: statements end at `;` and may span lines; backslash commands (`\q`, `\d`, `\?`) and
//! `help`/`exit`/`quit` are whole lines. When stdin is not a terminal, rustyline reads plain
//! lines and the prompt goes to stderr, so stdout holds only results (that is how the tests
//! drive the shell).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arrow::record_batch::RecordBatch;
use clap::Args;
use rivulet_engine::plan::TriggerSpec;
use rivulet_runtime::connectors::kafka::{self, SourceOptions, StartingOffsets};
use rivulet_runtime::progress::QueryProgress;
use rivulet_runtime::QueryObserver;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `rivulet sql` flags.
#[derive(Args, Debug, Clone)]
pub struct ShellArgs {
    /// Bootstrap servers of the Kafka-compatible cluster the queries read.
    #[arg(long, env = "RIVULET_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic of the pre-declared source `events` (the generator's schema: id, value,
    /// timestamp with a 5 s watermark).
    #[arg(long, env = "RIVULET_TOPIC", default_value = "events")]
    pub topic: String,
    /// Queries read each topic from its beginning; without it they see only records that
    /// arrive after they start (like kafka-console-consumer). `SET scan.startup.mode` changes
    /// it for the session.
    #[arg(long)]
    pub from_beginning: bool,
    /// History file [default: ~/.rivulet_sql_history; no history when HOME is unset].
    #[arg(long, env = "RIVULET_SQL_HISTORY")]
    pub history: Option<PathBuf>,
}

const PROMPT: &str = "rivulet> ";
const CONTINUE: &str = "     ..> ";
/// The name of every shell query: progress logs and the consumer group derive from it.
const QUERY_NAME: &str = "sql-shell";
/// How long a cancelled query may take to finish its micro-batch before the prompt returns
/// without it (it stops on its own in the background).
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How long the reachability check waits for each broker address.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);

const HELP: &str = "\
Type a SELECT ending in `;` to run it on the stream: rows print as they arrive, Ctrl-C stops it.
  SELECT * FROM events WHERE value > 90;
  SELECT id, window_start, window_end, count(*) AS n, avg(value) AS avg_value
    FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
    GROUP BY id, window_start, window_end EMIT CHANGES;
Windows: TUMBLE(src, ts, size), HOP(src, ts, slide, size), SESSION(src, ts, gap); windowed
results print when the window closes unless the query ends in EMIT CHANGES.

  CREATE SOURCE name (col TYPE, ..., WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
    WITH (connector = 'kafka', topic = '...', format = 'json');
                          declare a source (replaces one of the same name; brokers default
                          to --brokers)
  SET scan.startup.mode = 'earliest' | 'latest';
                          where later queries start reading (--from-beginning = 'earliest')
  SET trigger = 'on-arrival' | '1s';
                          how often a query runs a micro-batch (default on-arrival)
  \\d, SHOW SOURCES        list the sources
  \\?, help                this text
  \\q, exit, Ctrl-D        leave";

/// The session: sources and settings kept between statements.
struct Session {
    brokers: String,
    /// (name, statement text), in declaration order.
    sources: Vec<(String, String)>,
    /// (key, statement text) of the `SET`s the SQL front end reads.
    sets: Vec<(String, String)>,
    startup: StartingOffsets,
}

/// `'text'` as a SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Session {
    fn new(args: &ShellArgs) -> Session {
        let events = format!(
            "CREATE SOURCE events (id BIGINT, value DOUBLE, timestamp TIMESTAMP,\n  \
             WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)\n\
             WITH (connector = 'kafka', topic = {}, brokers = {}, format = 'json');",
            quote(&args.topic),
            quote(&args.brokers)
        );
        Session {
            brokers: args.brokers.clone(),
            sources: vec![("events".to_string(), events)],
            sets: Vec::new(),
            startup: if args.from_beginning {
                StartingOffsets::Earliest
            } else {
                StartingOffsets::Latest
            },
        }
    }

    /// The declarations a query compiles against: every source, then the settings (the
    /// shell's trigger default first, so a `SET trigger` typed later wins).
    fn decls(&self) -> String {
        let mut d = String::new();
        for (_, text) in &self.sources {
            d.push_str(text);
            d.push('\n');
        }
        d.push_str("SET trigger = 'on-arrival';\n");
        for (_, text) in &self.sets {
            d.push_str(text);
            d.push('\n');
        }
        d
    }

    /// Whether source `name` chose its own start position in its WITH options.
    fn source_sets_startup(&self, name: &str) -> bool {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, text)| text.to_lowercase().contains("scan.startup."))
    }

    /// `CREATE SOURCE` / `SET`: checked, then kept for the session.
    fn declare(&mut self, text: &str) -> Result<String> {
        let decls = rivulet_sql::declarations(text)?;
        let [decl] = decls.as_slice() else {
            anyhow::bail!("expected one statement");
        };
        match decl {
            rivulet_sql::Declaration::Source { name } => {
                // Brokers default to the shell's: the source text gets them when it has none.
                let mut stored = text.trim().to_string();
                if !stored.to_lowercase().contains("brokers") && !stored.contains("bootstrap") {
                    if let Some(close) = stored.rfind(')') {
                        stored.insert_str(close, &format!(", brokers = {}", quote(&self.brokers)));
                    }
                }
                // Checked now (options, watermark, types), so a later query only fails for
                // its own mistakes; positions point into what was typed.
                rivulet_sql::compile_select(text, &format!("SELECT * FROM {name}"))?;
                if !stored.ends_with(';') {
                    stored.push(';');
                }
                let replaced = self.sources.iter().position(|(n, _)| n == name);
                match replaced {
                    Some(i) => self.sources[i] = (name.clone(), stored),
                    None => self.sources.push((name.clone(), stored)),
                }
                Ok(format!(
                    "source {name} {}",
                    if replaced.is_some() {
                        "replaced"
                    } else {
                        "declared"
                    }
                ))
            }
            rivulet_sql::Declaration::Set { key, value } => self.set(key, value, text),
            rivulet_sql::Declaration::Sink { .. } | rivulet_sql::Declaration::Insert => {
                anyhow::bail!(
                    "the shell prints a SELECT's rows itself: CREATE SINK and INSERT INTO are for \
                     `rivulet run --sql FILE`"
                )
            }
        }
    }

    fn set(&mut self, key: &str, value: &str, text: &str) -> Result<String> {
        match key {
            "scan.startup.mode" => {
                self.startup = match value {
                    "earliest" | "earliest-offset" => StartingOffsets::Earliest,
                    "latest" | "latest-offset" => StartingOffsets::Latest,
                    other => {
                        anyhow::bail!(
                            "scan.startup.mode: expected 'earliest' or 'latest', got '{other}'"
                        )
                    }
                };
            }
            "trigger" | "output.trigger" => {
                TriggerSpec::try_from(value.to_string())
                    .map_err(|e| anyhow::anyhow!("trigger: {e}"))?;
                self.keep_set("trigger", text);
            }
            "name" | "pipeline.name" | "checkpoint.dir" => {
                anyhow::bail!(
                    "`{key}` has no meaning in the shell: every query runs as `{QUERY_NAME}` \
                     with a temporary checkpoint"
                )
            }
            other => anyhow::bail!("unknown setting `{other}` (scan.startup.mode, trigger)"),
        }
        Ok(format!("{key} = '{value}'"))
    }

    fn keep_set(&mut self, key: &str, text: &str) {
        let mut stored = text.trim().to_string();
        if !stored.ends_with(';') {
            stored.push(';');
        }
        self.sets.retain(|(k, _)| k != key);
        self.sets.push((key.to_string(), stored));
    }

    fn show_sources(&self) -> String {
        let mut o = String::new();
        for (_, text) in &self.sources {
            o.push_str(text);
            o.push('\n');
        }
        let start = match self.startup {
            StartingOffsets::Earliest => "earliest",
            StartingOffsets::Latest => "latest",
            StartingOffsets::Timestamp(_) => "timestamp",
        };
        o.push_str(&format!(
            "-- queries start at: {start} (unless a source sets scan.startup.mode)"
        ));
        o
    }
}

/// Hands each committed epoch's rows, as text lines, to the prompt loop (the observer runs on
/// the query's thread and must not block on the terminal).
#[derive(Debug)]
struct RowPrinter {
    tx: mpsc::UnboundedSender<Vec<String>>,
    header_sent: std::sync::atomic::AtomicBool,
    /// The columns a plain `SELECT a, b FROM ...` lists: the plan passes every source column
    /// through (no projection yet), so only these are shown, in this order.
    only: Option<Vec<String>>,
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
            if !self
                .header_sent
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
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

/// Splits `buf` at top-level `;` (not inside quotes or comments): the byte ranges of the
/// complete statements (without their `;`) and where the unfinished rest starts.
fn split_statements(buf: &str) -> (Vec<(usize, usize)>, usize) {
    let b = buf.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // To the closing quote; a doubled quote is an escaped one and simply reopens.
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                out.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    (out, start.min(b.len()))
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

/// The error, with the input line and a caret under the column when it has a position.
fn show_error(e: &anyhow::Error, text: &str) -> String {
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

/// The first word of a statement, upper-cased.
fn first_word(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c == '(' || c == '*')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_uppercase()
}

/// What a whole input line means when no statement is in progress.
enum Meta {
    Quit,
    Help,
    Sources,
}

fn meta_command(line: &str) -> Option<Meta> {
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

fn history_path(args: &ShellArgs) -> Option<PathBuf> {
    if let Some(p) = &args.history {
        return (!p.as_os_str().is_empty()).then(|| p.clone());
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".rivulet_sql_history"))
}

/// A signal the shell acts on.
enum Sig {
    /// Ctrl-C: stop the running query.
    Interrupt,
    /// SIGTERM: leave.
    Terminate,
}

/// Signals the shell handles itself, so Ctrl-C stops a query instead of the process.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) -> Sig {
        #[cfg(unix)]
        {
            tokio::select! {
                Some(()) = self.int.recv() => Sig::Interrupt,
                Some(()) = self.term.recv() => Sig::Terminate,
                else => std::future::pending::<Sig>().await,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Sig::Interrupt
        }
    }

    /// Forgets a Ctrl-C that came while no query ran, so it cannot stop the next one.
    async fn drain(&mut self) {
        #[cfg(unix)]
        {
            for _ in 0..4 {
                if tokio::time::timeout(Duration::ZERO, self.int.recv())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

/// What reading one line gave.
enum Input {
    Line(String),
    /// Ctrl-C at the prompt (terminal only: raw mode reads it as a key).
    Interrupted,
    Eof,
    /// SIGTERM while waiting for input.
    Terminated,
}

async fn read_line(
    editor: &mut Option<Editor<(), DefaultHistory>>,
    prompt: &'static str,
    tty: bool,
    signals: &mut Signals,
) -> Result<Input> {
    let mut ed = editor.take().context("line editor lost")?;
    if !tty {
        // rustyline prints no prompt when stdin is not a terminal; a driving program (and the
        // tests) still needs to see when the shell is ready, and stdout stays results only.
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
                *editor = Some(ed);
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

/// Runs the shell until `\q`, Ctrl-D or SIGTERM.
pub async fn run(args: ShellArgs) -> Result<()> {
    let tty = std::io::stdin().is_terminal();
    let mut signals = Signals::new()?;
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(1000)
        .context("history size")?
        .build();
    let mut editor: Editor<(), DefaultHistory> =
        Editor::with_config(config).context("starting the line editor")?;
    let history = history_path(&args);
    if let Some(h) = &history {
        // A missing or unreadable history file is no reason not to start.
        let _ = editor.load_history(h);
    }
    let mut editor = Some(editor);
    let mut session = Session::new(&args);
    if tty {
        println!(
            "rivulet sql: source `events` reads topic {} on {} from the {}. `help` lists commands; \
             end statements with `;`.",
            args.topic,
            args.brokers,
            if args.from_beginning {
                "beginning"
            } else {
                "latest offset"
            }
        );
    }
    let mut buf = String::new();
    loop {
        let prompt = if buf.trim().is_empty() {
            PROMPT
        } else {
            CONTINUE
        };
        let line = match read_line(&mut editor, prompt, tty, &mut signals).await? {
            Input::Line(l) => l,
            Input::Interrupted => {
                if buf.trim().is_empty() {
                    eprintln!("(\\q or Ctrl-D quits)");
                } else {
                    buf.clear();
                    eprintln!("(statement discarded)");
                }
                continue;
            }
            Input::Eof => break,
            // The line reader is blocked on stdin and cannot be stopped: returning would make
            // the runtime wait for it. No query runs here, so nothing is left to clean up.
            Input::Terminated => std::process::exit(143),
        };
        if buf.trim().is_empty() {
            if let Some(m) = meta_command(&line) {
                add_history(&mut editor, history.as_deref(), line.trim());
                match m {
                    Meta::Quit => break,
                    Meta::Help => println!("{HELP}"),
                    Meta::Sources => println!("{}", session.show_sources()),
                }
                buf.clear();
                continue;
            }
        }
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(&line);
        let (stmts, rest) = split_statements(&buf);
        if stmts.is_empty() {
            continue;
        }
        // History holds whole statements, one line each.
        let entry = buf[..rest].split_whitespace().collect::<Vec<_>>().join(" ");
        add_history(&mut editor, history.as_deref(), &entry);
        for (start, end) in stmts {
            let text = positioned(&buf, start, end);
            if text.trim().is_empty() {
                continue;
            }
            let quit = execute(&mut session, &text, &mut signals).await;
            if quit {
                return Ok(());
            }
        }
        buf = buf[rest..].to_string();
        if buf.trim().is_empty() {
            buf.clear();
        }
    }
    Ok(())
}

fn add_history(
    editor: &mut Option<Editor<(), DefaultHistory>>,
    path: Option<&std::path::Path>,
    entry: &str,
) {
    let Some(ed) = editor.as_mut() else { return };
    if entry.is_empty() || ed.add_history_entry(entry).is_err() {
        return;
    }
    if let Some(p) = path {
        // Saved after every statement, so a killed shell loses nothing; failures are silent
        // (a read-only home is no reason to stop).
        let _ = ed.save_history(p);
    }
}

/// Runs one statement; errors are printed and the shell goes on. True when the shell must
/// exit (SIGTERM during a query).
async fn execute(session: &mut Session, text: &str, signals: &mut Signals) -> bool {
    let word = first_word(text);
    let result = match word.as_str() {
        "SELECT" => run_select(session, text, signals).await,
        "SHOW" if meta_command(text).is_some() => {
            println!("{}", session.show_sources());
            Ok(false)
        }
        "CREATE" | "SET" | "INSERT" => session.declare(text).map(|msg| {
            eprintln!("{msg}");
            false
        }),
        other => Err(anyhow::anyhow!(
            "unexpected `{other}`: the shell runs SELECT, CREATE SOURCE and SET statements \
             (`help` lists the commands)"
        )),
    };
    match result {
        Ok(quit) => quit,
        Err(e) => {
            eprintln!("{}", show_error(&e, text));
            false
        }
    }
}

/// Fails at once when no bootstrap address of `brokers` accepts a TCP connection: the query's
/// own client would retry for half a minute before saying so.
async fn check_reachable(brokers: &str) -> Result<()> {
    let list = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        use std::net::ToSocketAddrs;
        let mut last = String::from("no address given");
        for b in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let addrs = match b.to_socket_addrs() {
                Ok(a) => a,
                Err(e) => {
                    last = format!("{b}: {e}");
                    continue;
                }
            };
            for a in addrs {
                match std::net::TcpStream::connect_timeout(&a, REACH_TIMEOUT) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = format!("{a}: {e}"),
                }
            }
        }
        Err(anyhow::anyhow!("cannot reach the brokers {list} ({last})"))
    })
    .await
    .context("broker check thread")?
}

/// Compiles and runs a SELECT until Ctrl-C (or an error), printing rows as they arrive.
async fn run_select(session: &Session, text: &str, signals: &mut Signals) -> Result<bool> {
    let compiled = rivulet_sql::compile_select(&session.decls(), text)?;
    check_reachable(
        &SourceOptions::of(&compiled.plan.source)?
            .connection
            .bootstrap_servers,
    )
    .await?;
    let mut plan = compiled.plan;
    plan.name = QUERY_NAME.to_string();
    plan.sinks = Vec::new();
    if !session.source_sets_startup(&compiled.source_name) {
        kafka::set_starting_offsets(&mut plan.source, session.startup);
    }
    let dir = tempfile::Builder::new()
        .prefix("rivulet-sql-")
        .tempdir()
        .context("creating the query's temporary checkpoint directory")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let printer = Arc::new(RowPrinter {
        tx,
        header_sent: std::sync::atomic::AtomicBool::new(false),
        only: rivulet_sql::listed_columns(text),
    });
    let opts = rivulet_runtime::RunOptions {
        checkpoint_dir: Some(dir.path().join("checkpoint")),
        observer: Some(printer),
        ..rivulet_runtime::RunOptions::default()
    };
    signals.drain().await;
    let cancel = CancellationToken::new();
    let mut query = tokio::spawn(rivulet_runtime::run_query(plan, opts, cancel.clone()));
    eprintln!("(running; Ctrl-C stops the query)");
    let print = |lines: Vec<String>| {
        let mut out = std::io::stdout().lock();
        for l in lines {
            // A closed stdout (a pager that quit) must not stop the shell.
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    };
    let mut terminated = false;
    let result = loop {
        tokio::select! {
            r = &mut query => break Some(r),
            Some(lines) = rx.recv() => print(lines),
            sig = signals.next() => {
                terminated = matches!(sig, Sig::Terminate);
                break None;
            }
        }
    };
    let result = match result {
        Some(r) => Some(r),
        None => {
            cancel.cancel();
            match tokio::time::timeout(STOP_WAIT, &mut query).await {
                Ok(r) => Some(r),
                Err(_) => {
                    eprintln!("(the query is still stopping; it finishes in the background)");
                    None
                }
            }
        }
    };
    while let Ok(lines) = rx.try_recv() {
        print(lines);
    }
    match result {
        Some(Ok(Ok(s))) => eprintln!(
            "(query stopped: {} input rows, {} result rows in {} micro-batches)",
            s.input_rows, s.output_rows, s.epochs
        ),
        Some(Ok(Err(e))) => return Err(anyhow::Error::new(e).context("query")),
        Some(Err(e)) => anyhow::bail!("query task: {e}"),
        None => {}
    }
    Ok(terminated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let s = "SELECT ';' FROM t; -- a ; comment\nSET x = 'a;b'; /* ; */ SELECT";
        let (stmts, rest) = split_statements(s);
        let got: Vec<&str> = stmts.iter().map(|&(a, b)| s[a..b].trim()).collect();
        assert_eq!(
            got,
            vec!["SELECT ';' FROM t", "-- a ; comment\nSET x = 'a;b'"]
        );
        assert_eq!(s[rest..].trim(), "/* ; */ SELECT");
        assert_eq!(split_statements("SELECT 1").0.len(), 0);
    }

    #[test]
    fn positions_stay_those_of_the_input() {
        let buf = "SET a = 'b'; SELECT\n  x;";
        let (stmts, _) = split_statements(buf);
        let (s, e) = stmts[1];
        let t = positioned(buf, s, e);
        assert_eq!(t, "             SELECT\n  x");
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
    fn the_events_source_compiles_and_start_follows_the_flag() {
        let args = ShellArgs {
            brokers: "127.0.0.1:1".into(),
            topic: "it's".into(),
            from_beginning: false,
            history: None,
        };
        let mut s = Session::new(&args);
        let c = rivulet_sql::compile_select(&s.decls(), "SELECT * FROM events WHERE value > 90")
            .expect("compiles");
        assert_eq!(
            SourceOptions::of(&c.plan.source)
                .expect("valid source")
                .topics,
            vec!["it's".to_string()]
        );
        assert_eq!(c.plan.output.trigger, TriggerSpec::OnArrival);
        assert_eq!(s.startup, StartingOffsets::Latest);
        s.declare("SET scan.startup.mode = 'earliest'")
            .expect("set");
        assert_eq!(s.startup, StartingOffsets::Earliest);
        s.declare("SET trigger = '2s'").expect("set");
        let c = rivulet_sql::compile_select(&s.decls(), "SELECT * FROM events").expect("compiles");
        assert_eq!(
            c.plan.output.trigger,
            TriggerSpec::ProcessingTime(rivulet_engine::plan::DurationMs(2000))
        );
        assert!(s.declare("SET trigger = 'often'").is_err());
        assert!(s.declare("SET name = 'x'").is_err());
        assert!(s
            .declare("CREATE SINK o WITH (connector = 'console')")
            .is_err());
        // A source without brokers gets the shell's; one of the same name replaces it.
        let msg = s
            .declare(
                "CREATE SOURCE events (id BIGINT, ts TIMESTAMP) WITH (connector = 'kafka', \
                 topic = 'other', scan.startup.mode = 'earliest')",
            )
            .expect("declared");
        assert_eq!(msg, "source events replaced");
        assert_eq!(s.sources.len(), 1);
        assert!(
            s.sources[0].1.contains("brokers = '127.0.0.1:1'"),
            "{}",
            s.sources[0].1
        );
        assert!(s.source_sets_startup("events"));
        let e = s
            .declare("CREATE SOURCE bad (id BIGINT) WITH (connector = 'kafka', topik = 'x')")
            .expect_err("bad option");
        assert!(e.to_string().contains("unknown option `topik`"), "{e}");
    }

    #[test]
    fn history_needs_no_home() {
        let args = ShellArgs {
            brokers: String::new(),
            topic: String::new(),
            from_beginning: false,
            history: Some(PathBuf::from("/tmp/h")),
        };
        assert_eq!(history_path(&args), Some(PathBuf::from("/tmp/h")));
    }
}
