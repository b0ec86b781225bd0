//! `rivulet sql`, the interactive shell, driven through pipes (stdin is not a terminal, so
//! rustyline reads plain lines and the prompt goes to stderr) against a real `rivulet broker`:
//! a SELECT with a WHERE over a function prints exactly the matching rows, Ctrl-C (SIGINT)
//! stops the query and the prompt comes back, a second (windowed) query works, a bad query
//! prints its error with line:column and the shell goes on, `\q` exits with status 0.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rivulet_testkit::{create_topic, produce_records, BrokerProcess, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

const PROMPT: &str = "rivulet> ";

/// Everything a child wrote to one stream so far (read by a thread, so pipes never fill).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn of(mut r: impl Read + Send + 'static) -> Captured {
        let c = Captured::default();
        let out = c.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.0
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        c
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct Shell {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Captured,
    err: Captured,
}

impl Shell {
    fn spawn(brokers: &str, history: &std::path::Path) -> Shell {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(["sql", "--brokers", brokers, "--from-beginning", "--history"])
            .arg(history)
            .env_remove("RIVULET_BROKERS")
            .env_remove("RIVULET_TOPIC")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = Captured::of(child.stdout.take().unwrap());
        let err = Captured::of(child.stderr.take().unwrap());
        Shell {
            child,
            stdin,
            out,
            err,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (bounded) until `ok` holds for (stdout, stderr).
    fn wait_for(&mut self, what: &str, ok: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let (o, e) = (self.out.text(), self.err.text());
            if ok(&o, &e) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "shell exited ({status}) waiting for {what}\n--- stdout\n{o}\n--- stderr\n{e}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- stdout\n{o}\n--- stderr\n{e}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn prompts(&self) -> usize {
        self.err.text().matches(PROMPT).count()
    }

    /// Waits for prompt number `n` (1-based) on stderr.
    fn wait_prompt(&mut self, n: usize) {
        self.wait_for(&format!("prompt #{n}"), |_, e| {
            e.matches(PROMPT).count() >= n
        });
    }

    fn interrupt(&self) {
        let st = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (id, value, seconds after 2026-11-24T10:00:00Z).
const EVENTS: &[(i64, &str, u32)] = &[
    (1, "95.5", 1),
    (2, "97.0", 2),
    (3, "10.0", 3),
    (5, "5.25", 4),
    (1, "60.0", 5),
    (3, "99.75", 12),
    (1, "70.0", 13),
    (5, "2.0", 14),
];

fn produce(brokers: &str, topic: &str) {
    let records: Vec<(String, String)> = EVENTS
        .iter()
        .map(|(id, value, secs)| {
            let payload = format!(
                r#"{{"id":{id},"value":{value},"timestamp":"2026-11-24T10:00:{secs:02}Z"}}"#
            );
            (id.to_string(), payload)
        })
        .collect();
    produce_records(
        brokers,
        topic,
        records
            .iter()
            .map(|(k, v)| (None, Some(k.as_str()), v.as_str())),
    );
}

/// Lines of `text` that look like result rows (`a | b | c`), in order.
fn rows(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(" | ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_runs_queries_until_ctrl_c_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(
        BIN,
        &dir.path().join("data"),
        &dir.path().join("broker.log"),
        "always",
    );
    let brokers = broker.bootstrap();
    create_topic(&brokers, "events", 1, &[]).await;
    produce(&brokers, "events");

    let history = dir.path().join("history");
    let mut sh = Shell::spawn(&brokers, &history);
    sh.wait_prompt(1);

    // 1. WHERE with a function, over the pre-declared `events` source, typed on two lines.
    sh.send("SELECT * FROM events");
    sh.send("WHERE abs(value - 50) > 40 AND id % 2 = 1;");
    let want = [
        "id | value | timestamp",
        "1 | 95.5 | 2026-11-24 10:00:01",
        "5 | 5.25 | 2026-11-24 10:00:04",
        "3 | 99.75 | 2026-11-24 10:00:12",
        "5 | 2.0 | 2026-11-24 10:00:14",
    ];
    sh.wait_for("the filtered rows", |o, _| rows(o).len() >= want.len());
    assert_eq!(rows(&sh.out.text()), want);
    let before = sh.prompts();
    sh.interrupt();
    sh.wait_prompt(before + 1);
    assert!(sh
        .err
        .text()
        .contains("(query stopped: 8 input rows, 4 result rows"));

    // 2. The shell is alive: a windowed aggregation with EMIT CHANGES. Every (id, window)
    // ends with its final row (earlier updates may come first if the records were read in
    // more than one micro-batch).
    let printed = sh.out.text().len();
    sh.send(
        "SELECT id, window_start, window_end, count(*) AS n, max(value) AS top \
         FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND) WHERE value > 50 \
         GROUP BY id, window_start, window_end EMIT CHANGES;",
    );
    let finals = [
        "1 | 2026-11-24 10:00:00 | 2026-11-24 10:00:10 | 2 | 95.5",
        "2 | 2026-11-24 10:00:00 | 2026-11-24 10:00:10 | 1 | 97.0",
        "1 | 2026-11-24 10:00:10 | 2026-11-24 10:00:20 | 1 | 70.0",
        "3 | 2026-11-24 10:00:10 | 2026-11-24 10:00:20 | 1 | 99.75",
    ];
    sh.wait_for("the window rows", |o, _| {
        let new = rows(&o[printed..]);
        finals.iter().all(|f| new.contains(f))
    });
    let out = sh.out.text();
    let new = rows(&out[printed..]);
    assert_eq!(new[0], "id | window_start | window_end | n | top");
    for r in &new[1..] {
        let key: Vec<&str> = r.split(" | ").take(3).collect();
        assert!(
            finals.iter().any(|f| f.starts_with(&key.join(" | "))),
            "a row for a window not in the input: {r}"
        );
    }
    let before = sh.prompts();
    sh.interrupt();
    sh.wait_prompt(before + 1);

    // 3. Listed columns are shown in the SELECT's order (the rest of the row is not).
    let printed = sh.out.text().len();
    sh.send("SELECT value, id FROM events WHERE id = 3;");
    let want = ["value | id", "10.0 | 3", "99.75 | 3"];
    sh.wait_for("the listed columns", |o, _| {
        rows(&o[printed..]).len() >= want.len()
    });
    assert_eq!(rows(&sh.out.text()[printed..]), want);
    let before = sh.prompts();
    sh.interrupt();
    sh.wait_prompt(before + 1);

    // 4. A mistake prints its error with the position in what was typed; the shell goes on.
    let before = sh.prompts();
    sh.send("SELECT * FROM events WHERE vale > 1;");
    sh.wait_prompt(before + 1);
    let err = sh.err.text();
    assert!(
        err.contains("error: 1:28: Schema error: No field named vale"),
        "{err}"
    );
    // Ctrl-C at the prompt does not end the shell.
    let before = sh.prompts();
    sh.interrupt();
    sh.wait_for("the Ctrl-C hint", |_, e| e.contains("\\q or Ctrl-D quits"));
    // A source declared in the session, listed by \d.
    sh.send(
        "CREATE SOURCE big (id BIGINT, value DOUBLE, timestamp TIMESTAMP) \
         WITH (connector = 'kafka', topic = 'events');",
    );
    sh.send("\\d");
    sh.wait_for("the source list", |o, _| o.contains("CREATE SOURCE big"));
    sh.wait_prompt(before + 2);

    // 5. \q exits cleanly.
    sh.send("\\q");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = sh.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the shell did not exit after \\q"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let h = std::fs::read_to_string(&history).unwrap();
    assert!(
        h.contains("SELECT * FROM events WHERE abs(value - 50) > 40 AND id % 2 = 1;"),
        "{h}"
    );
    broker.kill9();
}

#[test]
fn an_unreachable_broker_is_an_error_not_the_end() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let mut sh = Shell::spawn("127.0.0.1:1", &dir.path().join("history"));
    sh.wait_prompt(1);
    sh.send("SELECT * FROM events;");
    sh.wait_prompt(2);
    assert!(
        sh.err
            .text()
            .contains("error: cannot reach the brokers 127.0.0.1:1"),
        "{}",
        sh.err.text()
    );
    sh.send("help");
    sh.wait_for("the help text", |o, _| o.contains("SHOW SOURCES"));
    // End of input (Ctrl-D) exits cleanly.
    drop(sh.stdin.take());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = sh.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the shell did not exit at end of input"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}
