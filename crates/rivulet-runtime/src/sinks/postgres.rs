//! PostgreSQL sink: upserts result rows into a table keyed by the group keys and the window
//! start, one transaction per epoch, so Metabase, Grafana or psql see the latest value of
//! every (key, window).
//!
//! **Table.** Created when missing: one column per result column (`bigint`, `integer`,
//! `double precision`, `text`, `boolean`, `timestamptz`; `NOT NULL` where the result column
//! is), primary key (group keys, `window_start`) — a `UNIQUE NULLS NOT DISTINCT` constraint
//! instead when a group key is nullable (PostgreSQL 15+). An existing table must have every
//! result column with a compatible type and a unique index on exactly the key columns, or the
//! query fails at start with the mismatch spelled out; extra columns are fine when nullable
//! or defaulted. A table `rivulet_sink_epochs` (same schema) records, per query and target
//! table, the last epoch applied.
//!
//! **Writes.** Per epoch, in one transaction: skip when `rivulet_sink_epochs` already has
//! the epoch, else `COPY` the rows into a temporary table, `INSERT … SELECT … ON CONFLICT
//! (keys) DO UPDATE` every other column, and record the epoch. Re-applying an epoch is thus a
//! no-op, and an epoch is all there or not at all.
//!
//! **Exactly once across crashes and outages.** `write_epoch(N)` spools the rows durably
//! under `<checkpoint>/sinks/postgres-<table>/` ([`super::spool`]) before the checkpoint
//! commits the epoch; after `commit(N)` a background thread applies spooled epochs in order
//! and deletes each once the server committed it. On start, spooled epochs up to the
//! checkpoint's last commit are applied, later ones deleted (the driver replays that epoch).
//! When the server goes away the thread reconnects with exponential back-off (100 ms to 5 s)
//! while the query keeps running and epochs accumulate in the spool, up to the sink's
//! pending limit ([`crate::connectors::postgres`]); beyond that `write_epoch` waits, which pauses the query (the source
//! holds the rest). A wrong password, an unreachable server or an incompatible table fail the
//! query at start; an error the server reports for the data itself (not a connection
//! problem) fails it at the next epoch.
//!
//! **With the checkpoint in Kafka** there is no spool: the checkpoint directory stays behind
//! when a task moves to another process, so nothing a restart needs may wait there. Each
//! epoch is applied in `write_epoch`, before the checkpoint commits it, retried with
//! back-off for up to a minute while the server is unreachable (the task waits; then it
//! fails). Applying before the commit is safe because a task that re-runs the epoch reads
//! the same offsets (`offsets/<epoch>` is written first) from the same restored state, so it
//! makes the same rows, and the epochs table turns the second apply into a no-op.
//!
//! **Preparing** the tables runs under a transaction-scoped advisory lock: the tasks of a
//! query (or several queries) may create one table at once, which PostgreSQL's CREATE TABLE
//! IF NOT EXISTS does not survive.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    LargeStringArray, StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use postgres::{Client, Config, NoTls};
use rivulet_engine::plan::columns;

use crate::connectors::postgres::PostgresOptions;

use super::spool::Spool;
use super::{Sink, SinkContext};
use crate::error::RuntimeError;
use crate::rows::rfc3339_ms;
use crate::Result;

/// The table recording the last epoch applied per (query, target table).
pub const EPOCHS_TABLE: &str = "rivulet_sink_epochs";
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `close` waits for the spool to drain before leaving it to the next start.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an epoch is retried against an unreachable server when there is no spool (the
/// checkpoint in Kafka) before the task fails with the error.
const DIRECT_RETRY: Duration = Duration::from_secs(60);

/// The full text of a client error: the server's message (with detail and hint) for a
/// server error, the cause chain otherwise (`tokio_postgres` prints only "db error" and
/// "error connecting to server" for those).
pub fn pg_error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            let _ = write!(s, " ({d})");
        }
        if let Some(h) = db.hint() {
            let _ = write!(s, " hint: {h}");
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let _ = write!(s, ": {c}");
        src = c.source();
    }
    s
}

/// Whether an error is the connection's (retry after reconnecting) rather than the data's.
fn is_transient(e: &postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            // 08: connection exception; 57P0x: shutdown / cannot connect now; 53: insufficient
            // resources; 40001/40P01: serialization failure / deadlock; 25006: read-only
            // (a standby during a failover).
            c.starts_with("08")
                || c.starts_with("57P")
                || c.starts_with("53")
                || c == "40001"
                || c == "40P01"
                || c == "25006"
        }
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// How one result column is stored.
#[derive(Debug, Clone)]
struct ColumnMap {
    name: String,
    /// The type a created table gets.
    sql_type: &'static str,
    /// Types (as `format_type` prints them, without modifiers) an existing column may have.
    accepted: &'static [&'static str],
    nullable: bool,
}

fn column_map(name: &str, t: &DataType, nullable: bool) -> Option<ColumnMap> {
    let (sql_type, accepted): (&'static str, &'static [&'static str]) = match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 => {
            ("integer", &["integer", "bigint", "numeric"])
        }
        DataType::Int64 | DataType::UInt32 => ("bigint", &["bigint", "numeric"]),
        DataType::Float32 | DataType::Float64 => ("double precision", &["double precision"]),
        DataType::Utf8 | DataType::LargeUtf8 => ("text", &["text", "character varying"]),
        DataType::Boolean => ("boolean", &["boolean"]),
        DataType::Timestamp(TimeUnit::Millisecond, Some(_)) => {
            ("timestamp with time zone", &["timestamp with time zone"])
        }
        _ => return None,
    };
    Some(ColumnMap {
        name: name.to_string(),
        sql_type,
        accepted,
        nullable,
    })
}

/// The target table and the statements that write it.
#[derive(Debug, Clone)]
struct Target {
    /// `schema.name` as configured (the key in `rivulet_sink_epochs`).
    name: String,
    /// Quoted, possibly schema-qualified.
    sql_name: String,
    epochs_sql_name: String,
    query_id: String,
    columns: Vec<ColumnMap>,
    keys: Vec<String>,
}

impl Target {
    fn new(table: &str, query_id: &str, schema: &SchemaRef, keys: Vec<String>) -> Result<Target> {
        let (sql_name, epochs_sql_name) = match table.split_once('.') {
            Some((s, t)) => (
                format!("{}.{}", quote_ident(s), quote_ident(t)),
                format!("{}.{EPOCHS_TABLE}", quote_ident(s)),
            ),
            None => (quote_ident(table), EPOCHS_TABLE.to_string()),
        };
        let mut cols = Vec::new();
        for f in schema.fields() {
            cols.push(
                column_map(f.name(), f.data_type(), f.is_nullable()).ok_or_else(|| {
                    RuntimeError::Sink {
                        sink: format!("postgres table {table}"),
                        reason: format!(
                            "result column `{}` has type {}, which the sink cannot store",
                            f.name(),
                            f.data_type()
                        ),
                    }
                })?,
            );
        }
        Ok(Target {
            name: table.to_string(),
            sql_name,
            epochs_sql_name,
            query_id: query_id.to_string(),
            columns: cols,
            keys,
        })
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_list(&self) -> String {
        self.keys
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn nullable_key(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.nullable && self.keys.contains(&c.name))
    }

    fn create_sql(&self) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let not_null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{not_null}", quote_ident(&c.name), c.sql_type)
            })
            .collect();
        if self.nullable_key() {
            parts.push(format!("UNIQUE NULLS NOT DISTINCT ({})", self.key_list()));
        } else {
            parts.push(format!("PRIMARY KEY ({})", self.key_list()));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.sql_name,
            parts.join(", ")
        )
    }

    fn epochs_create_sql(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (query_id text NOT NULL, sink_table text NOT NULL, \
             epoch bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
             PRIMARY KEY (query_id, sink_table))",
            self.epochs_sql_name
        )
    }

    fn stage_sql(&self) -> String {
        format!(
            "CREATE TEMP TABLE rivulet_stage ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
            self.column_list(),
            self.sql_name
        )
    }

    fn copy_sql(&self) -> String {
        format!("COPY rivulet_stage ({}) FROM STDIN", self.column_list())
    }

    fn upsert_sql(&self) -> String {
        let updates: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !self.keys.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
            .collect();
        let action = if updates.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {0} ({1}) SELECT {1} FROM rivulet_stage ON CONFLICT ({2}) DO {action}",
            self.sql_name,
            self.column_list(),
            self.key_list()
        )
    }

    /// Creates the tables when missing, or checks that the existing one fits.
    fn prepare(&self, client: &mut Client) -> Result<(), String> {
        let err = |e: postgres::Error| pg_error_text(&e);
        // Several writers may prepare the same tables at once (the tasks of a query spread
        // over processes, queries sharing a database), and PostgreSQL's CREATE TABLE IF NOT
        // EXISTS fails on the catalog's unique index when another session creates the same
        // name concurrently: one writer at a time, under a transaction-scoped advisory lock.
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('rivulet sink prepare'))",
            &[],
        )
        .map_err(err)?;
        self.prepare_in(&mut tx)?;
        tx.commit().map_err(err)
    }

    fn prepare_in(&self, client: &mut impl postgres::GenericClient) -> Result<(), String> {
        let err = |e: postgres::Error| pg_error_text(&e);
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&self.sql_name])
            .map_err(err)?
            .get(0);
        if exists.is_none() {
            if self.nullable_key() {
                let v: String = client
                    .query_one("SHOW server_version_num", &[])
                    .map_err(err)?
                    .get(0);
                if v.parse::<u32>().unwrap_or(0) < 150_000 {
                    return Err(format!(
                        "a group key is nullable, which needs UNIQUE NULLS NOT DISTINCT \
                         (PostgreSQL 15 or later; the server is {v}); make the key fields \
                         non-nullable or create the table yourself"
                    ));
                }
            }
            client.batch_execute(&self.create_sql()).map_err(err)?;
            tracing::info!("postgres sink: created table {}", self.name);
        } else {
            self.check_existing(client)?;
        }
        client
            .batch_execute(&self.epochs_create_sql())
            .map_err(err)?;
        Ok(())
    }

    fn check_existing(&self, client: &mut impl postgres::GenericClient) -> Result<(), String> {
        let err = |e: postgres::Error| pg_error_text(&e);
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, NULL), a.attnotnull, \
                 a.atthasdef FROM pg_attribute a WHERE a.attrelid = $1::text::regclass \
                 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&self.sql_name],
            )
            .map_err(err)?;
        let mut problems = Vec::new();
        for c in &self.columns {
            match rows.iter().find(|r| r.get::<_, String>(0) == c.name) {
                None => problems.push(format!("column `{}` is missing", c.name)),
                Some(r) => {
                    let t: String = r.get(1);
                    if !c.accepted.contains(&t.as_str()) {
                        problems.push(format!(
                            "column `{}` is {t}, the query writes {} ({} expected)",
                            c.name,
                            c.sql_type,
                            c.accepted.join(" or ")
                        ));
                    }
                }
            }
        }
        for r in &rows {
            let name: String = r.get(0);
            let (not_null, has_default): (bool, bool) = (r.get(2), r.get(3));
            if not_null && !has_default && !self.columns.iter().any(|c| c.name == name) {
                problems.push(format!(
                    "column `{name}` is NOT NULL without a default and the query does not \
                     write it"
                ));
            }
        }
        let indexes = client
            .query(
                "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a \
                 ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisunique \
                 AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid",
                &[&self.sql_name],
            )
            .map_err(err)?;
        let mut want = self.keys.clone();
        want.sort();
        let has_key = indexes.iter().any(|r| {
            let mut cols: Vec<String> = r.get(0);
            cols.sort();
            cols == want
        });
        if !has_key {
            problems.push(format!(
                "no primary key or unique index on exactly ({}), which the upsert needs",
                self.keys.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "table {} exists with an incompatible schema: {}",
                self.name,
                problems.join("; ")
            ))
        }
    }

    /// Applies one epoch in one transaction; `Ok(false)` when it was applied before.
    fn apply(
        &self,
        client: &mut Client,
        epoch: u64,
        batches: &[RecordBatch],
    ) -> Result<bool, postgres::Error> {
        let e = i64::try_from(epoch).unwrap_or(i64::MAX);
        let mut tx = client.transaction()?;
        let done: Option<i64> = tx
            .query_opt(
                &format!(
                    "SELECT epoch FROM {} WHERE query_id = $1 AND sink_table = $2 FOR UPDATE",
                    self.epochs_sql_name
                ),
                &[&self.query_id, &self.name],
            )?
            .map(|r| r.get(0));
        if done.is_some_and(|d| d >= e) {
            tx.commit()?;
            return Ok(false);
        }
        tx.batch_execute(&self.stage_sql())?;
        let mut w = tx.copy_in(&self.copy_sql())?;
        let mut buf = String::new();
        for b in batches {
            for chunk in (0..b.num_rows()).step_by(4096) {
                buf.clear();
                let end = (chunk + 4096).min(b.num_rows());
                encode_rows(b, chunk..end, &mut buf);
                // An I/O error here is the connection's; finish() below reports it.
                if w.write_all(buf.as_bytes()).is_err() {
                    break;
                }
            }
        }
        w.finish()?;
        tx.execute(&self.upsert_sql(), &[])?;
        tx.execute(
            &format!(
                "INSERT INTO {} (query_id, sink_table, epoch) VALUES ($1, $2, $3) \
                 ON CONFLICT (query_id, sink_table) DO UPDATE SET epoch = EXCLUDED.epoch, \
                 committed_at = now()",
                self.epochs_sql_name
            ),
            &[&self.query_id, &self.name, &e],
        )?;
        tx.commit()?;
        Ok(true)
    }
}

/// Appends a COPY text-format value (escaped; `\N` is NULL).
fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // Rust prints the shortest text that parses back to the same double: exact.
        let _ = write!(out, "{v}");
    }
}

/// Rows `range` of `b` in COPY text format (columns of the types [`column_map`] accepts).
fn encode_rows(b: &RecordBatch, range: std::ops::Range<usize>, out: &mut String) {
    for r in range {
        for (i, col) in b.columns().iter().enumerate() {
            if i > 0 {
                out.push('\t');
            }
            if col.is_null(r) {
                out.push_str("\\N");
                continue;
            }
            let any = col.as_any();
            if let Some(a) = any.downcast_ref::<Int64Array>() {
                let _ = write!(out, "{}", a.value(r));
            } else if let Some(a) = any.downcast_ref::<Float64Array>() {
                push_f64(out, a.value(r));
            } else if let Some(a) = any.downcast_ref::<TimestampMillisecondArray>() {
                out.push_str(&rfc3339_ms(a.value(r)));
            } else if let Some(a) = any.downcast_ref::<StringArray>() {
                push_text(out, a.value(r));
            } else if let Some(a) = any.downcast_ref::<Int32Array>() {
                let _ = write!(out, "{}", a.value(r));
            } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                out.push(if a.value(r) { 't' } else { 'f' });
            } else if let Some(a) = any.downcast_ref::<LargeStringArray>() {
                push_text(out, a.value(r));
            } else if let Some(a) = any.downcast_ref::<Float32Array>() {
                push_f64(out, f64::from(a.value(r)));
            } else if let Some(a) = any.downcast_ref::<UInt32Array>() {
                let _ = write!(out, "{}", a.value(r));
            } else if let Some(a) = any.downcast_ref::<Int16Array>() {
                let _ = write!(out, "{}", a.value(r));
            } else if let Some(a) = any.downcast_ref::<Int8Array>() {
                let _ = write!(out, "{}", a.value(r));
            } else {
                // Unreachable: the schema was checked at open.
                out.push_str("\\N");
            }
        }
        out.push('\n');
    }
}

/// State shared with the writer thread.
#[derive(Debug, Default)]
struct State {
    /// Spooled epochs not yet applied.
    spooled: BTreeSet<u64>,
    committed: Option<u64>,
    /// Drain what is committed, then stop.
    closing: bool,
    /// Stop now (the spool keeps the rest for the next start).
    abort: bool,
    /// An error retrying cannot fix; the query fails with it.
    fatal: Option<String>,
}

impl State {
    fn next_ready(&self) -> Option<u64> {
        self.spooled
            .first()
            .copied()
            .filter(|e| self.committed.is_some_and(|c| *e <= c))
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic of the other side is reported through `fatal`/join; the data stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_timeout<'a>(&self, g: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
        match self.changed.wait_timeout(g, d) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }
}

/// A connection to the server and the table it writes: applies one epoch's rows.
struct Conn {
    config: Config,
    tls: Option<super::pg_tls::MakeRustls>,
    client: Option<Client>,
    target: Target,
    desc: String,
}

impl Conn {
    /// Applies an epoch's rows (connecting first when needed); `Err((transient, message))`.
    fn apply_rows(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<(), (bool, String)> {
        if self.client.is_none() {
            let c = connect(&self.config, self.tls.as_ref())
                .map_err(|e| (true, format!("cannot connect: {}", pg_error_text(&e))))?;
            self.client = Some(c);
        }
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| (true, "no connection".to_string()))?;
        match self.target.apply(client, epoch, batches) {
            Ok(applied) => {
                if !applied {
                    tracing::debug!("{}: epoch {epoch} was applied before", self.desc);
                }
                Ok(())
            }
            Err(e) => {
                if is_transient(&e) {
                    self.client = None;
                }
                Err((
                    is_transient(&e),
                    format!("epoch {epoch}: {}", pg_error_text(&e)),
                ))
            }
        }
    }

    /// [`Self::apply_rows`] in the query's thread, retrying a connection problem with back-off
    /// for up to [`DIRECT_RETRY`]: without a spool there is nowhere to hold the epoch.
    fn apply_now(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let started = Instant::now();
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.apply_rows(epoch, batches) {
                Ok(()) => return Ok(()),
                Err((true, msg)) if started.elapsed() < DIRECT_RETRY => {
                    tracing::warn!("{}: {msg}; retrying in {backoff:?}", self.desc);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err((_, msg)) => {
                    return Err(RuntimeError::Sink {
                        sink: self.desc.clone(),
                        reason: msg,
                    })
                }
            }
        }
    }
}

/// The background thread: applies committed spooled epochs in order, reconnecting with
/// back-off.
struct Writer {
    conn: Conn,
    spool: Arc<Spool>,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let mut down_since: Option<Instant> = None;
        loop {
            let epoch = {
                let mut st = self.shared.lock();
                loop {
                    if st.abort {
                        return;
                    }
                    if let Some(e) = st.next_ready() {
                        break e;
                    }
                    if st.closing {
                        return;
                    }
                    st = self.shared.wait_timeout(st, Duration::from_secs(1));
                }
            };
            match self.apply(epoch) {
                Ok(()) => {
                    if let Some(t) = down_since.take() {
                        tracing::info!(
                            "{}: server back after {:.1}s, delivering held epochs",
                            self.conn.desc,
                            t.elapsed().as_secs_f64()
                        );
                    }
                    backoff = MIN_BACKOFF;
                    let mut st = self.shared.lock();
                    st.spooled.remove(&epoch);
                    self.shared.changed.notify_all();
                }
                Err((true, msg)) => {
                    if down_since.is_none() {
                        down_since = Some(Instant::now());
                        tracing::warn!(
                            "{}: {msg}; holding results and reconnecting with back-off",
                            self.conn.desc
                        );
                    } else {
                        tracing::debug!("{}: still failing: {msg}", self.conn.desc);
                    }
                    let st = self.shared.lock();
                    if st.abort {
                        return;
                    }
                    drop(self.shared.wait_timeout(st, backoff));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err((false, msg)) => {
                    tracing::error!("{}: {msg}", self.conn.desc);
                    let mut st = self.shared.lock();
                    st.fatal = Some(msg);
                    self.shared.changed.notify_all();
                    return;
                }
            }
        }
    }

    /// Applies a spooled epoch and deletes its spool file; `Err((transient, message))`.
    fn apply(&mut self, epoch: u64) -> Result<(), (bool, String)> {
        let batches = self
            .spool
            .read(epoch)
            .map_err(|e| (false, format!("reading the spool: {e}")))?;
        self.conn.apply_rows(epoch, &batches)?;
        self.spool
            .remove(epoch)
            .map_err(|e| (false, format!("removing the spool file: {e}")))
    }
}

pub struct PostgresSink {
    desc: String,
    schema: SchemaRef,
    delivery: Delivery,
}

/// How epochs reach the server.
enum Delivery {
    /// Spooled under the checkpoint directory, applied after the commit by a thread.
    Spooled {
        spool: Arc<Spool>,
        shared: Arc<Shared>,
        max_pending: usize,
        writer: Option<JoinHandle<()>>,
    },
    /// With the checkpoint in Kafka the checkpoint directory does not follow a task to another
    /// process, so nothing a restart needs may wait there: each epoch is applied in
    /// `write_epoch`, before the checkpoint commits it. A task that re-runs the epoch after a
    /// crash reads the same records from the same state, so it produces the same rows, and
    /// the epochs table makes the second apply a no-op.
    Direct(Box<Conn>),
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("desc", &self.desc)
            .finish_non_exhaustive()
    }
}

/// Connects in plaintext, or through `tls` (see `pg_tls.rs`).
fn connect(
    config: &Config,
    tls: Option<&super::pg_tls::MakeRustls>,
) -> std::result::Result<Client, postgres::Error> {
    match tls {
        None => config.connect(NoTls),
        Some(t) => config.connect(t.clone()),
    }
}

/// `user@host:port/db` of a connection config (no password).
fn describe(config: &Config, table: &str) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgresSink[{}@{host}:{port}/{} table {table}]",
        config.get_user().unwrap_or("?"),
        config
            .get_dbname()
            .unwrap_or(config.get_user().unwrap_or("?")),
    )
}

impl PostgresSink {
    /// Connects, prepares the table and starts the writer (see the module docs). Every
    /// problem found here is an error now rather than at the first write.
    pub fn open(spec: &PostgresOptions, ctx: &SinkContext<'_>) -> Result<PostgresSink> {
        let table = spec.table_name(&ctx.plan.name);
        let (url, tls) = super::pg_tls::split_tls(&spec.url).map_err(|e| RuntimeError::Sink {
            sink: "postgres".into(),
            reason: format!("url: {e}"),
        })?;
        let tls = tls.build().map_err(|e| RuntimeError::Sink {
            sink: "postgres".into(),
            reason: e,
        })?;
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| RuntimeError::Sink {
                sink: "postgres".into(),
                reason: format!("url: {}", pg_error_text(&e)),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("rivulet");
        config.ssl_mode(tls.ssl_mode);
        let desc = describe(&config, &table);
        let fail = |reason: String| RuntimeError::Sink {
            sink: desc.clone(),
            reason,
        };
        let mut keys = ctx.plan.group_by.clone();
        if ctx.schema.index_of(columns::WINDOW_START).is_ok() {
            keys.push(columns::WINDOW_START.to_string());
        }
        if keys.is_empty() {
            return Err(fail(
                "the query has no group keys and no window to upsert by".into(),
            ));
        }
        let target = Target::new(&table, ctx.query_id, ctx.schema, keys)?;
        let mut client = connect(&config, tls.connector.as_ref())
            .map_err(|e| fail(format!("cannot connect: {}", pg_error_text(&e))))?;
        target.prepare(&mut client).map_err(fail)?;
        let conn = Conn {
            config,
            tls: tls.connector,
            client: Some(client),
            target,
            desc: desc.clone(),
        };
        if !ctx.checkpoint_is_local {
            return Ok(PostgresSink {
                desc,
                schema: ctx.schema.clone(),
                delivery: Delivery::Direct(Box::new(conn)),
            });
        }
        let dir: PathBuf = ctx
            .checkpoint_dir
            .join("sinks")
            .join(format!("postgres-{table}"));
        let spool = Arc::new(Spool::open(dir)?);
        let shared = Arc::new(Shared::default());
        {
            let mut st = shared.lock();
            st.spooled = spool.recover(ctx.last_committed)?.into_iter().collect();
            st.committed = ctx.last_committed;
            if !st.spooled.is_empty() {
                tracing::info!(
                    "{desc}: delivering {} committed epochs a previous run left in its spool",
                    st.spooled.len()
                );
            }
        }
        let writer = Writer {
            conn,
            spool: spool.clone(),
            shared: shared.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("postgres-sink".into())
            .spawn(move || writer.run())
            .map_err(|e| fail(format!("starting the writer thread: {e}")))?;
        Ok(PostgresSink {
            desc,
            schema: ctx.schema.clone(),
            delivery: Delivery::Spooled {
                spool,
                shared,
                max_pending: spec.max_pending_epochs.max(1) as usize,
                writer: Some(handle),
            },
        })
    }

    fn fatal(&self, st: &State) -> Result<()> {
        match &st.fatal {
            Some(m) => Err(RuntimeError::Sink {
                sink: self.desc.clone(),
                reason: m.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Waits until every committed epoch is in the database (or `timeout`); true when so.
    pub fn flush(&self, timeout: Duration) -> Result<bool> {
        let Delivery::Spooled { shared, .. } = &self.delivery else {
            return Ok(true);
        };
        let deadline = Instant::now() + timeout;
        let mut st = shared.lock();
        loop {
            self.fatal(&st)?;
            if st.next_ready().is_none() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            st = shared.wait_timeout(st, left.min(Duration::from_millis(200)));
        }
    }
}

impl Sink for PostgresSink {
    fn description(&self) -> String {
        self.desc.clone()
    }

    fn write_epoch(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let (spool, shared, max_pending) = match &mut self.delivery {
            Delivery::Direct(conn) => {
                return if rows == 0 {
                    Ok(())
                } else {
                    conn.apply_now(epoch, batches)
                };
            }
            Delivery::Spooled {
                spool,
                shared,
                max_pending,
                ..
            } => (spool.clone(), shared.clone(), *max_pending),
        };
        {
            // Bounded hold: beyond max_pending epochs the query waits for the server.
            let mut st = shared.lock();
            let mut warned = Instant::now();
            loop {
                self.fatal(&st)?;
                let pending = st.spooled.iter().filter(|e| **e != epoch).count();
                if pending < max_pending || rows == 0 {
                    break;
                }
                if warned.elapsed() >= Duration::from_secs(10) {
                    tracing::warn!(
                        "{}: {pending} epochs wait for the server; the query waits too",
                        self.desc
                    );
                    warned = Instant::now();
                }
                st = shared.wait_timeout(st, Duration::from_millis(500));
            }
        }
        if rows == 0 {
            spool.remove(epoch)?;
            shared.lock().spooled.remove(&epoch);
            return Ok(());
        }
        spool.write(epoch, &self.schema, batches)?;
        shared.lock().spooled.insert(epoch);
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        let Delivery::Spooled { shared, .. } = &self.delivery else {
            return Ok(());
        };
        let mut st = shared.lock();
        self.fatal(&st)?;
        st.committed = Some(epoch);
        shared.changed.notify_all();
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let drained = self.flush(CLOSE_TIMEOUT);
        let Delivery::Spooled {
            spool,
            shared,
            writer,
            ..
        } = &mut self.delivery
        else {
            return Ok(());
        };
        {
            let mut st = shared.lock();
            st.closing = true;
            if !matches!(drained, Ok(true)) {
                st.abort = true;
            }
            shared.changed.notify_all();
        }
        match drained {
            Ok(true) => {
                if let Some(h) = writer.take() {
                    let _ = h.join();
                }
                Ok(())
            }
            Ok(false) => {
                // The thread may be inside a connect attempt; it exits on its own.
                writer.take();
                tracing::warn!(
                    "{}: server still unavailable after {CLOSE_TIMEOUT:?}; the held epochs \
                     stay in {} and are delivered at the next start",
                    self.desc,
                    spool.dir().display()
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        if let Delivery::Spooled { shared, .. } = &self.delivery {
            shared.lock().abort = true;
            shared.changed.notify_all();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn copy_text_encoding() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None])),
                Arc::new(Int64Array::from(vec![Some(-5), None])),
                Arc::new(Float64Array::from(vec![Some(0.1), Some(f64::NEG_INFINITY)])),
                Arc::new(
                    TimestampMillisecondArray::from(vec![0, 1_795_514_400_123])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let mut s = String::new();
        encode_rows(&b, 0..2, &mut s);
        assert_eq!(
            s,
            "a\\tb\\\\c\\nd\t-5\t0.1\t1970-01-01T00:00:00.000Z\n\
             \\N\t\\N\t-Infinity\t2026-11-24T10:00:00.123Z\n"
        );
    }

    #[test]
    fn statements() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("count", DataType::Int64, false),
        ]));
        let t = Target::new(
            "an.stats",
            "q",
            &schema,
            vec!["id".into(), "window_start".into()],
        )
        .unwrap();
        assert_eq!(
            t.create_sql(),
            "CREATE TABLE IF NOT EXISTS \"an\".\"stats\" (\"id\" bigint NOT NULL, \
             \"window_start\" timestamp with time zone NOT NULL, \"count\" bigint NOT NULL, \
             PRIMARY KEY (\"id\", \"window_start\"))"
        );
        assert_eq!(
            t.upsert_sql(),
            "INSERT INTO \"an\".\"stats\" (\"id\", \"window_start\", \"count\") SELECT \"id\", \
             \"window_start\", \"count\" FROM rivulet_stage ON CONFLICT (\"id\", \
             \"window_start\") DO UPDATE SET \"count\" = EXCLUDED.\"count\""
        );
        assert_eq!(t.epochs_sql_name, "\"an\".rivulet_sink_epochs");
    }
}
