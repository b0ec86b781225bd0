//! What the storage sink tests read their output with:
//!
//! - [`read_parquet`]: reads a Parquet dataset back with **pyarrow** (an independent reader,
//!   from the `.venv` that `scripts/install-test-deps.sh` creates) and returns its rows as the
//!   JSON objects the other sinks produce (timestamps as RFC 3339 text).
//! - [`PgServer`]: a real PostgreSQL server of the Debian `postgresql` package, initialised in
//!   a temporary directory and listening on a free port of 127.0.0.1 (as the `postgres` user
//!   when the tests run as root: initdb refuses root). Missing binaries fail the test: the test
//!   script installs them.
//!
//! Every wait is bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_time::rfc3339_ms;

/// The repository root (above this crate's directory).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("scripts/install-test-deps.sh").is_file())
        .expect("repository root above the crate")
        .to_path_buf()
}

/// The Python with pyarrow: `$RIVULET_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("RIVULET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", "import pyarrow.parquet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import pyarrow: run scripts/install-test-deps.sh (or set RIVULET_PYTHON)",
        p.display()
    );
    p
}

const READ_PARQUET_PY: &str = r#"
import json, sys
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

root = sys.argv[1]
# Hive partitioning, and pyarrow's default of ignoring names starting with "." or "_".
dataset = ds.dataset(root, format="parquet", partitioning="hive")
table = dataset.to_table()
cols = {}
for name in table.column_names:
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    elif pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    cols[name] = col.to_pylist()
files = sorted(dataset.files)
out = {
    "files": files,
    "schema": {f.name: str(f.type) for f in table.schema},
    "timestamps": [f.name for f in table.schema if pa.types.is_timestamp(f.type)],
    "rows": [{k: cols[k][i] for k in cols} for i in range(table.num_rows)],
    "compression": sorted({
        pq.ParquetFile(f).metadata.row_group(g).column(c).compression
        for f in files
        for g in range(pq.ParquetFile(f).metadata.num_row_groups)
        for c in range(pq.ParquetFile(f).metadata.num_columns)
    }),
    "parquet_schema": str(pq.ParquetFile(files[0]).schema) if files else "",
}
json.dump(out, sys.stdout)
"#;

/// A Parquet dataset as pyarrow reads it.
#[derive(Debug)]
pub struct ParquetRead {
    /// Data files pyarrow found.
    pub files: Vec<String>,
    /// Column → Arrow type as pyarrow prints it (`timestamp[ms, tz=UTC]`).
    pub schema: BTreeMap<String, String>,
    /// Codecs of every column chunk (`ZSTD`).
    pub compression: Vec<String>,
    /// The first file's Parquet schema (physical and logical types).
    pub parquet_schema: String,
    /// The rows, timestamp columns as RFC 3339 text.
    pub rows: Vec<serde_json::Value>,
}

/// Reads the dataset at `root` with pyarrow (bounded to 120 s).
pub fn read_parquet(root: &Path) -> ParquetRead {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("read_parquet.py");
    std::fs::write(&script, READ_PARQUET_PY).unwrap();
    let out_path = dir.path().join("out.json");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(py)
        .arg(&script)
        .arg(root)
        .stdout(out_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pyarrow reader did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "pyarrow reader failed: {err}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let timestamps: Vec<String> = v["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let rows = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for t in &timestamps {
                if let Some(ms) = r[t.as_str()].as_i64() {
                    r[t.as_str()] = serde_json::Value::String(rfc3339_ms(ms));
                }
            }
            r
        })
        .collect();
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    ParquetRead {
        files: strings("files"),
        schema: v["schema"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
            .collect(),
        compression: strings("compression"),
        parquet_schema: v["parquet_schema"].as_str().unwrap().to_string(),
        rows,
    }
}

/// Every file under `root` outside the sink's hidden `_rivulet/` directory (none while `root`
/// does not exist); panics on a file a reader would take for data that is not a finished part
/// file.
pub fn visible_parquet_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                if name != "_rivulet" {
                    stack.push(p);
                }
                continue;
            }
            assert!(
                name.starts_with("part-") && name.ends_with(".parquet"),
                "unexpected visible file {}",
                p.display()
            );
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Files still in the in-progress directory of any query writing the dataset (none after a
/// clean stop).
pub fn inprogress_files(root: &Path) -> Vec<PathBuf> {
    let Ok(queries) = std::fs::read_dir(root.join("_rivulet")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for q in queries {
        if let Ok(rd) = std::fs::read_dir(q.unwrap().path().join("inprogress")) {
            out.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    out
}

/// The PostgreSQL server binaries: `$RIVULET_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RIVULET_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin/initdb): run \
             scripts/install-test-deps.sh, which installs Debian's `postgresql`, or set \
             RIVULET_PG_BIN"
        )
    })
}

pub const PG_USER: &str = "rivulet";
pub const PG_PASSWORD: &str = "s3cret-for-tests";

/// A throwaway PostgreSQL server (see the module docs); stopped when dropped.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run the server tools as this user (when the tests run as root).
    run_as: Option<String>,
    pub port: u16,
    running: bool,
}

fn output_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A port nothing listens on now. PostgreSQL binds its own socket (it cannot take one bound
/// here), so the port is picked this way; a race with another process is possible but rare.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    /// Initialises a cluster (user [`PG_USER`], password [`PG_PASSWORD`], scram-sha-256
    /// authentication) and starts it.
    pub fn start() -> PgServer {
        let bin = pg_bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let root = output_of(Command::new("id").arg("-u")) == "0";
        let run_as = root.then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let uid: u32 = output_of(Command::new("id").args(["-u", user]))
                .parse()
                .unwrap_or_else(|_| {
                    panic!("running as root needs the `{user}` user (Debian's postgresql package creates it)")
                });
            let gid: u32 = output_of(Command::new("id").args(["-g", user]))
                .parse()
                .unwrap();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let pw = dir.path().join("pwfile");
        std::fs::write(&pw, PG_PASSWORD).unwrap();
        if let Some(user) = &run_as {
            let uid: u32 = output_of(Command::new("id").args(["-u", user]))
                .parse()
                .unwrap();
            std::os::unix::fs::chown(&pw, Some(uid), None).unwrap();
        }
        let mut s = PgServer {
            dir,
            bin,
            run_as,
            port: free_port(),
            running: false,
        };
        let data = s.data_dir();
        let out = s
            .tool("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "-E",
                "UTF8",
                "--auth=scram-sha-256",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        s.start_again();
        s
    }

    /// [`PgServer::start`] with TLS on (`cert`/`key`: PEM) and TCP connections accepted over
    /// TLS only (`hostssl` in pg_hba.conf), so a client that does not encrypt cannot log in.
    pub fn start_with_tls(cert: &Path, key: &Path) -> PgServer {
        let mut s = PgServer::start();
        s.stop("fast");
        let data = s.data_dir();
        std::fs::copy(cert, data.join("server.crt")).unwrap();
        std::fs::copy(key, data.join("server.key")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        if let Some(user) = &s.run_as {
            let id = |flag: &str| -> u32 {
                output_of(Command::new("id").args([flag, user]))
                    .parse()
                    .unwrap()
            };
            for f in ["server.crt", "server.key"] {
                std::os::unix::fs::chown(data.join(f), Some(id("-u")), Some(id("-g"))).unwrap();
            }
        }
        let hba = data.join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|l| match l.strip_prefix("host ") {
                Some(rest) => format!("hostssl {rest}"),
                None => l.to_string(),
            })
            .collect();
        std::fs::write(&hba, text.join("\n") + "\n").unwrap();
        let conf = data.join("postgresql.conf");
        let mut c = std::fs::read_to_string(&conf).unwrap();
        c.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, c).unwrap();
        s.start_again();
        s
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Starts the (stopped) server on the same port and data.
    pub fn start_again(&mut self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 -c timezone=UTC",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stops the server: `immediate` is a crash (no checkpoint, connections cut), `fast` a
    /// clean shutdown that also cuts connections.
    pub fn stop(&mut self, mode: &str) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "60", "stop"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    /// `postgres://rivulet:…@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Runs `f` with a client connection (retried for up to 30 s while the server starts), on
    /// a thread of its own: the blocking client runs its own Tokio runtime, which cannot start
    /// on a thread of the test's runtime.
    pub fn with_client<R: Send>(&self, f: impl FnOnce(&mut postgres::Client) -> R + Send) -> R {
        let url = self.url();
        std::thread::scope(|s| {
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut c = loop {
                    match postgres::Client::connect(&url, postgres::NoTls) {
                        Ok(c) => break c,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => panic!("cannot connect to the test server: {e:?}"),
                    }
                };
                f(&mut c)
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// The rows of `table` as JSON objects like the other sinks' (timestamps as RFC 3339 text
    /// with milliseconds), read with `to_jsonb` on the server; none while the table does not
    /// exist yet.
    pub fn rows(&self, table: &str) -> Vec<serde_json::Value> {
        let q = format!("SELECT to_jsonb(t)::text FROM {table} t");
        let texts: Vec<String> = self.with_client(|c| {
            let exists: Option<String> = c
                .query_one("SELECT to_regclass($1)::text", &[&table])
                .unwrap()
                .get(0);
            match exists {
                Some(_) => c.query(&q, &[]).unwrap().iter().map(|r| r.get(0)).collect(),
                None => Vec::new(),
            }
        });
        texts
            .iter()
            .map(|t| {
                let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
                for k in ["window_start", "window_end"] {
                    if let Some(s) = v[k].as_str() {
                        v[k] = serde_json::Value::String(pg_time_to_rfc3339(s));
                    }
                }
                v
            })
            .collect()
    }
}

/// `2026-11-24T10:00:00+00:00` / `2026-11-24T10:00:00.5+00:00` (to_jsonb of a timestamptz with
/// the session time zone UTC) → `2026-11-24T10:00:00.000Z` / `…00.500Z`.
fn pg_time_to_rfc3339(s: &str) -> String {
    let (t, off) = s.split_at(s.len() - 6);
    assert_eq!(off, "+00:00", "time zone of {s}");
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    let ms = format!("{frac:0<3}");
    format!("{secs}.{}Z", &ms[..3])
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .tool("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
