//! `rivulet sql`: the interactive shell. A SELECT runs as a continuous query against a topic
//! and its rows print as micro-batches commit; Ctrl-C stops it and returns to the prompt.
//!
//! Each query is compiled by `rivulet_sql::compile_select` over the session's sources and
//! settings ([`session`]: a pre-declared `events` source over `--topic`, plus any
//! `CREATE SOURCE` / `SET` typed), and run by `rivulet_runtime::run_query` with a fresh
//! temporary checkpoint directory, no sinks and an observer that hands each committed epoch's
//! rows to the prompt loop ([`render`]).
//!
//! Input ([`input`]): statements end at `;` and may span lines; backslash commands (`\q`,
//! `\d`, `\?`) and `help`/`exit`/`quit` are whole lines. When stdin is not a terminal,
//! rustyline reads plain lines and the prompt goes to stderr, so stdout holds only results
//! (that is how the tests drive the shell).

mod input;
mod render;
mod session;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rivulet_runtime::connectors::kafka::{self, SourceOptions};
use tokio_util::sync::CancellationToken;

use crate::signals::{Sig, Signals};
use input::{first_word, meta_command, Input, LineReader, Meta, Pending};
use render::{print_lines, show_error, RowPrinter};
use session::Session;

/// `rivulet sql` flags.
#[derive(Args, Debug, Clone)]
pub struct ShellArgs {
    /// Bootstrap servers of the Kafka-compatible cluster the queries read.
    #[arg(long, env = "RIVULET_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Client properties of the queries' sources (TLS, SASL); kept out of the SQL text, so no
    /// listing shows them.
    #[command(flatten)]
    pub client: crate::cmd::connection::ClientConfigArgs,
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

/// Runs the shell until `\q`, Ctrl-D or SIGTERM.
pub async fn run(args: ShellArgs) -> Result<()> {
    let tty = std::io::stdin().is_terminal();
    let mut signals = Signals::install()?;
    let mut reader = LineReader::open(&args, tty)?;
    let mut session = Session::new(&args);
    session.client_properties = args.client.connection(&args.brokers)?.properties;
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
    let mut pending = Pending::default();
    loop {
        let prompt = if pending.is_empty() { PROMPT } else { CONTINUE };
        let line = match reader.read(prompt, &mut signals).await? {
            Input::Line(l) => l,
            Input::Interrupted => {
                if pending.is_empty() {
                    eprintln!("(\\q or Ctrl-D quits)");
                } else {
                    pending.clear();
                    eprintln!("(statement discarded)");
                }
                continue;
            }
            Input::Eof => break,
            // The line reader is blocked on stdin and cannot be stopped: returning would make
            // the runtime wait for it. No query runs here, so nothing is left to clean up.
            Input::Terminated => std::process::exit(143),
        };
        if pending.is_empty() {
            if let Some(m) = meta_command(&line) {
                reader.add_history(line.trim());
                match m {
                    Meta::Quit => break,
                    Meta::Help => println!("{HELP}"),
                    Meta::Sources => println!("{}", session.show_sources()),
                }
                pending.clear();
                continue;
            }
        }
        let Some(complete) = pending.push_line(&line) else {
            continue;
        };
        reader.add_history(&complete.history);
        for text in &complete.statements {
            if execute(&mut session, text, &mut signals).await {
                return Ok(());
            }
        }
    }
    Ok(())
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
    kafka::set_properties(&mut plan.source, &session.client_properties);
    let dir = tempfile::Builder::new()
        .prefix("rivulet-sql-")
        .tempdir()
        .context("creating the query's temporary checkpoint directory")?;
    let (printer, mut rx) = RowPrinter::new(text);
    let opts = rivulet_runtime::RunOptions {
        checkpoint_dir: Some(dir.path().join("checkpoint")),
        observer: Some(Arc::new(printer)),
        ..rivulet_runtime::RunOptions::default()
    };
    signals.drain_interrupts().await;
    let cancel = CancellationToken::new();
    let mut query = tokio::spawn(rivulet_runtime::run_query(plan, opts, cancel.clone()));
    eprintln!("(running; Ctrl-C stops the query)");
    let mut terminated = false;
    let result = loop {
        tokio::select! {
            r = &mut query => break Some(r),
            Some(lines) = rx.recv() => print_lines(lines),
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
        print_lines(lines);
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
