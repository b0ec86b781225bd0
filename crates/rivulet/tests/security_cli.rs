//! Rivulet's own paths over SASL_SSL, as a user runs them: `rivulet users add` offline (before
//! and while the broker runs), `rivulet broker --listeners PLAINTEXT://…,SASL_SSL://…`, then
//! `topics`, `gen`, `run` (native and librdkafka source, Kafka sink), `groups` and
//! `transactions` with a client properties file whose
//! password comes from an environment variable; a wrong password fails with a clear error.
//! Every output of every process — logs, `--print-plan`, progress records — is searched for
//! the passwords, which appear nowhere.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rivulet_testkit::*;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const PASSWORD: &str = "Pa55-alice-9f3e1c";
const BOB_PASSWORD: &str = "Pa55-bob-77d2aa";
const WRONG: &str = "Wr0ng-guess-41b8";

/// Runs `rivulet args…` with `input` as its first line of standard input.
fn with_stdin(args: &[String], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
    child.wait_with_output().unwrap()
}

/// `rivulet users add` offline, the password on stdin.
fn users_add(data: &Path, name: &str, mechanism: &str, password: &str) -> Output {
    let args: Vec<String> = [
        "users",
        "add",
        name,
        "--mechanism",
        mechanism,
        "--password-stdin",
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.display().to_string()])
    .collect();
    let out = with_stdin(&args, password);
    assert!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `rivulet args…` with the secret in the environment; returns its output.
fn cli(args: &[&str], outputs: &mut Vec<String>) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .env("RIVULET_TEST_SECRET", PASSWORD)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    out
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One plain HTTP GET, read to the end (status line, headers and body).
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut out);
    out
}

#[test]
fn rivulet_over_sasl_ssl_end_to_end_without_printing_secrets() {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut outputs = Vec::new();
    let added = users_add(&data, "alice", "SCRAM-SHA-512", PASSWORD);
    outputs.push(String::from_utf8_lossy(&added.stdout).into_owned());

    // The broker: plaintext for the test's own reads, SASL_SSL for Rivulet's commands.
    let log_path = tmp.path().join("broker.log");
    let log = append_log(&log_path, "===== broker =====");
    let mut broker = Command::new(BIN)
        .args([
            "broker",
            "--listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            // ACLs are the other test's subject: these users may do everything.
            "--super-users",
            "User:alice,User:bob",
            // Its counters on /metrics.
            "--dashboard",
            "--dashboard-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--tls-cert")
        .arg(pki.cert("server"))
        .arg("--tls-key")
        .arg(pki.key("server"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let lines = lines_of(broker.stdout.take().unwrap());
    let mut addrs = Vec::new();
    let mut broker_dash = None;
    while addrs.len() < 2 || broker_dash.is_none() {
        let line = lines.recv_timeout(WAIT).expect("broker listening lines");
        if let Some(a) = line.trim().strip_prefix(BROKER_LISTENING) {
            addrs.push(a.to_string());
        }
        if let Some(a) = line.trim().strip_prefix("rivulet dashboard at http://") {
            broker_dash = Some(a.to_string());
        }
    }
    let (plain, secure) = (addrs[0].clone(), addrs[1].clone());
    let broker_dash = broker_dash.unwrap_or_default();

    let props = tmp.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\n\
             sasl.password=${{RIVULET_TEST_SECRET}}\nssl.ca.location={}\n",
            pki.cert("ca").display()
        ),
    )
    .unwrap();
    let props = props.to_str().unwrap().to_string();
    let sec = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--brokers".into(),
            secure.clone(),
            "--client-config-file".into(),
            props.clone(),
        ]);
        v
    };
    let run = |args: Vec<String>, outputs: &mut Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&a, outputs)
    };

    ok(
        &run(
            sec(&["topics", "create", "ev", "--partitions", "2"]),
            &mut outputs,
        ),
        "topics create",
    );
    ok(
        &run(
            sec(&[
                "gen", "--topic", "ev", "--count", "300", "--rate", "0", "--keys", "5", "--quiet",
            ]),
            &mut outputs,
        ),
        "gen",
    );
    let listed = ok(&run(sec(&["topics", "list"]), &mut outputs), "topics list");
    assert!(listed.contains("ev"), "{listed}");
    // Three records that are not JSON: each query writes them to the dead-letter topic
    // `ev.dlq` over SASL_SSL.
    produce_records(&plain, "ev", (0..3).map(|_| (Some(0), None, "not json")));

    // The query with each source client: source and Kafka sink over SASL_SSL.
    let query = |client: &str, sink: &str, extra: &[&str]| {
        let ckpt = tmp.path().join(format!("ckpt-{client}"));
        let sink = format!("kafka:{sink}");
        sec(&[
            &[
                "run",
                "--name",
                &format!("q-{client}"),
                "--source-client",
                client,
                "--topic",
                "ev",
                "--event-time",
                "timestamp",
                "--window",
                "tumbling:10s",
                "--group-by",
                "id",
                "--mode",
                "update",
                "--trigger",
                "200ms",
                "--schema",
                "id:bigint,value:double,timestamp:timestamp",
                "--agg",
                "count",
                "--sink",
                &sink,
                "--starting-offsets",
                "earliest",
                "--checkpoint-dir",
                ckpt.to_str().unwrap(),
            ][..],
            extra,
        ]
        .concat())
    };
    let plan = ok(
        &run(query("native", "out", &["--print-plan"]), &mut outputs),
        "run --print-plan",
    );
    assert!(plan.contains("SASL_SSL") && plan.contains("***"), "{plan}");
    let mut progress_files = Vec::new();
    for client in ["native", "librdkafka"] {
        let sink = format!("out-{client}");
        let progress = tmp.path().join(format!("progress-{client}.jsonl"));
        let log = tmp.path().join(format!("run-{client}.log"));
        let args = query(
            client,
            &sink,
            &["--progress-json", progress.to_str().unwrap()],
        );
        let mut q = Command::new(BIN)
            .args(&args)
            .env("RIVULET_TEST_SECRET", PASSWORD)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(append_log(&log, "===== run =====")))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut counted = 0;
        // Every generated event counted once, read through SASL_SSL and written back.
        while counted < 300 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            if partition_count(&plain, &sink).is_some() {
                let mut latest = std::collections::BTreeMap::new();
                for r in topic_rows(&plain, &sink) {
                    latest.insert(
                        (r["id"].to_string(), r["window_start"].to_string()),
                        r["count"].as_i64().unwrap_or(0),
                    );
                }
                counted = latest.values().sum();
            }
        }
        let status = stop_child(&mut q, "INT", WAIT);
        assert_eq!(
            counted,
            300,
            "{client}: results over SASL_SSL; log:\n{}",
            log_tail(&log)
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "{client} run exit: {status:?}"
        );
        outputs.push(std::fs::read_to_string(&log).unwrap());
        progress_files.push(progress);
        let dead: i64 = end_offsets(&plain, "ev.dlq").iter().sum();
        assert_eq!(
            dead,
            3 * progress_files.len() as i64,
            "{client}: dead letters over SASL_SSL"
        );
    }
    // `rivulet up --brokers` over SASL_SSL with its dashboard and its checkpoint in the
    // cluster (`--checkpoint-store kafka`: the group member, the changelog and the
    // transactional writers all log in): results arrive, and no log line, page, API answer or
    // metric shows the password.
    {
        let up_log = tmp.path().join("up.log");
        let mut up = Command::new(BIN)
            .args([
                "up",
                "--brokers",
                &secure,
                "--client-config-file",
                &props,
                "--no-generator",
                "--topic",
                "ev",
                "--checkpoint-store",
                "kafka",
            ])
            .args(["--dashboard-listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("up-data"))
            .env("RIVULET_TEST_SECRET", PASSWORD)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(append_log(&up_log, "===== up =====")))
            .spawn()
            .unwrap();
        let up_lines = lines_of(up.stdout.take().unwrap());
        let mut dash = None;
        let deadline = Instant::now() + WAIT;
        while dash.is_none() && Instant::now() < deadline {
            if let Ok(l) = up_lines.recv_timeout(Duration::from_millis(200)) {
                dash = l
                    .trim()
                    .strip_prefix("rivulet dashboard at http://")
                    .map(str::to_string);
            }
        }
        let dash = dash.expect("dashboard line");
        let get = |path: &str| http_get(&dash, path);
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut results = String::new();
        while !results.contains("window_start") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            results = get("/api/queries/stats/results");
        }
        assert!(
            results.contains("window_start"),
            "no results from up --brokers over SASL_SSL: {results}"
        );
        let health = get("/api/health");
        assert!(
            health.contains("\"instance\"") && health.contains("rivulet-stats"),
            "up with its checkpoint in Kafka runs as a group member: {health}"
        );
        outputs.push(health);
        for path in [
            "/api/queries",
            "/api/queries/stats",
            "/api/topics",
            "/api/groups",
            "/metrics",
        ] {
            outputs.push(get(path));
        }
        let status = stop_child(&mut up, "INT", WAIT);
        assert!(status.is_some_and(|s| s.success()), "up exit: {status:?}");
        outputs.extend(up_lines.try_iter());
        outputs.push(std::fs::read_to_string(&up_log).unwrap());
    }
    // The SQL shell over SASL_SSL: a SELECT prints the topic's rows, Ctrl-C stops it, \q.
    {
        let mut sh = Command::new(BIN)
            .args([
                "sql",
                "--brokers",
                &secure,
                "--client-config-file",
                &props,
                "--topic",
                "ev",
                "--from-beginning",
            ])
            .env("RIVULET_TEST_SECRET", PASSWORD)
            .env("RIVULET_SQL_HISTORY", tmp.path().join("history"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out_lines = lines_of(sh.stdout.take().unwrap());
        let err_lines = lines_of(sh.stderr.take().unwrap());
        let mut stdin = sh.stdin.take().unwrap();
        writeln!(stdin, "SELECT id, value FROM events WHERE id >= 0;").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while seen.len() < 20 && Instant::now() < deadline {
            if let Ok(l) = out_lines.recv_timeout(Duration::from_millis(200)) {
                seen.push(l);
            }
        }
        let errs: Vec<String> = err_lines.try_iter().collect();
        assert!(
            seen.len() >= 20,
            "the shell printed {} lines over SASL_SSL: {seen:?} {errs:?}",
            seen.len()
        );
        send_signal(sh.id(), "INT");
        std::thread::sleep(Duration::from_millis(500));
        writeln!(stdin, "\\q").unwrap();
        drop(stdin);
        let status = wait_exit(&mut sh, WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "sql shell exit: {status:?}"
        );
        seen.extend(out_lines.try_iter());
        seen.extend(errs);
        seen.extend(err_lines.try_iter());
        outputs.push(seen.join("\n"));
    }
    let txns = ok(
        &run(sec(&["transactions", "list"]), &mut outputs),
        "transactions list",
    );
    assert!(!txns.contains("error"), "{txns}");
    let groups = ok(&run(sec(&["groups", "list"]), &mut outputs), "groups list");
    assert!(groups.contains("rivulet-"), "{groups}");

    // A wrong password: a clear failure, no secret in it.
    let mut wrong = sec(&["topics", "list"]);
    wrong.extend(["-X".into(), format!("sasl.password={WRONG}")]);
    let out = run(wrong, &mut outputs);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error"), "{err}");
    // The broker's own dashboard counts logins and the refusal on /metrics.
    let metrics = http_get(&broker_dash, "/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert!(
        value("rivulet_broker_authentication_failures_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("rivulet_broker_authentications_total") >= 5.0,
        "{metrics}"
    );
    outputs.push(metrics.clone());

    // A user added offline while the broker runs can log in at once.
    let added = users_add(&data, "bob", "SCRAM-SHA-256", BOB_PASSWORD);
    outputs.push(String::from_utf8_lossy(&added.stdout).into_owned());
    let bob = [
        "topics",
        "list",
        "--brokers",
        &secure,
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanism=SCRAM-SHA-256",
        "-X",
        "sasl.username=bob",
        "-X",
        &format!("sasl.password={BOB_PASSWORD}"),
        "-X",
        &format!("ssl.ca.location={}", pki.cert("ca").display()),
    ];
    ok(&cli(&bob, &mut outputs), "topics list as bob");
    let listed = ok(
        &cli(
            &["users", "list", "--data-dir", data.to_str().unwrap()],
            &mut outputs,
        ),
        "users list",
    );
    assert!(
        listed.contains("alice") && listed.contains("SCRAM-SHA-512") && listed.contains("bob"),
        "{listed}"
    );

    let stopped = stop_child(&mut broker, "TERM", WAIT);
    assert!(stopped.is_some_and(|s| s.success()));
    let broker_log = log_tail(&log_path);
    assert!(broker_log.contains("authentication failed"), "{broker_log}");

    // Secrets: nowhere in any output, log, plan or progress record, nor in the user store.
    outputs.push(std::fs::read_to_string(&log_path).unwrap());
    for p in &progress_files {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(!text.is_empty(), "no progress records in {}", p.display());
        outputs.push(text);
    }
    outputs.push(std::fs::read_to_string(data.join("users.json")).unwrap());
    for (i, text) in outputs.iter().enumerate() {
        for secret in [PASSWORD, BOB_PASSWORD, WRONG] {
            assert!(
                !text.contains(secret),
                "output #{i} shows a password:\n{text}"
            );
        }
    }
}

/// ACLs as a user manages them: on the SASL_SSL listener a principal with no ACL neither sees
/// nor writes a topic; `rivulet acls add` by a super user lets it; `acls remove` takes it back;
/// only the super user may list ACLs; the plaintext listener is not checked.
#[test]
fn acls_deny_then_allow_then_deny_again() {
    let pki = TestPki::new();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut outputs = Vec::new();
    users_add(&data, "admin", "SCRAM-SHA-512", PASSWORD);
    users_add(&data, "alice", "SCRAM-SHA-512", BOB_PASSWORD);
    let log_path = tmp.path().join("broker.log");
    let mut broker = Command::new(BIN)
        .args([
            "broker",
            "--listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            "--super-users",
            "User:admin",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--tls-cert")
        .arg(pki.cert("server"))
        .arg("--tls-key")
        .arg(pki.key("server"))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(append_log(&log_path, "===== broker =====")))
        .spawn()
        .unwrap();
    let lines = lines_of(broker.stdout.take().unwrap());
    let mut addrs = Vec::new();
    while addrs.len() < 2 {
        let line = lines.recv_timeout(WAIT).expect("broker listening lines");
        if let Some(a) = line.trim().strip_prefix(BROKER_LISTENING) {
            addrs.push(a.to_string());
        }
    }
    let (plain, secure) = (addrs[0].clone(), addrs[1].clone());
    let ca = format!("ssl.ca.location={}", pki.cert("ca").display());
    let sasl = |user: &str, pw: &str, brokers: &str| -> Vec<String> {
        vec![
            "--brokers".into(),
            brokers.to_string(),
            "-X".into(),
            "security.protocol=SASL_SSL".into(),
            "-X".into(),
            "sasl.mechanism=SCRAM-SHA-512".into(),
            "-X".into(),
            format!("sasl.username={user}"),
            "-X".into(),
            format!("sasl.password={pw}"),
            "-X".into(),
            ca.clone(),
        ]
    };
    let as_user = |user: &str, pw: &str, args: &[&str], outputs: &mut Vec<String>| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(sasl(user, pw, &secure));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        cli(&a, outputs)
    };
    let admin = |args: &[&str], o: &mut Vec<String>| as_user("admin", PASSWORD, args, o);
    let alice = |args: &[&str], o: &mut Vec<String>| as_user("alice", BOB_PASSWORD, args, o);
    let gen = [
        "gen", "--topic", "acl-t", "--count", "5", "--rate", "0", "--quiet",
    ];

    ok(
        &admin(&["topics", "create", "acl-t"], &mut outputs),
        "admin creates the topic",
    );
    // No ACL: alice neither sees nor writes the topic.
    let listed = ok(&alice(&["topics", "list"], &mut outputs), "alice lists");
    assert!(!listed.contains("acl-t"), "{listed}");
    let out = alice(&gen, &mut outputs);
    assert!(!out.status.success(), "alice wrote without an ACL");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uthoriz"), "{err}");
    let out = alice(&["acls", "list"], &mut outputs);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ClusterAuthorizationFailed"));

    let added = ok(
        &admin(
            &[
                "acls",
                "add",
                "--allow-principal",
                "User:alice",
                "--operation",
                "Write",
                "--operation",
                "Describe",
                "--topic",
                "acl-t",
            ],
            &mut outputs,
        ),
        "acls add",
    );
    assert_eq!(added.matches("added:").count(), 2, "{added}");
    let listed = ok(
        &admin(&["acls", "list", "--topic", "acl-t"], &mut outputs),
        "acls list",
    );
    assert!(
        listed.contains("User:alice Allow Write on Topic acl-t"),
        "{listed}"
    );
    ok(&alice(&gen, &mut outputs), "alice writes with the ACL");
    let listed = ok(&alice(&["topics", "list"], &mut outputs), "alice lists");
    assert!(listed.contains("acl-t"), "{listed}");
    // A prefixed DENY wins over the ALLOW.
    ok(
        &admin(
            &[
                "acls",
                "add",
                "--deny-principal",
                "User:alice",
                "--operation",
                "Write",
                "--topic",
                "acl-",
                "--resource-pattern-type",
                "prefixed",
            ],
            &mut outputs,
        ),
        "acls add deny",
    );
    assert!(
        !alice(&gen, &mut outputs).status.success(),
        "the DENY did not win"
    );
    let removed = ok(
        &admin(
            &[
                "acls",
                "remove",
                "--topic",
                "acl-t",
                "--allow-principal",
                "User:alice",
            ],
            &mut outputs,
        ),
        "acls remove",
    );
    assert!(removed.contains("removed 2"), "{removed}");
    // The plaintext listener is not checked: 5 records from alice's accepted run are there.
    assert_eq!(end_offsets(&plain, "acl-t").iter().sum::<i64>(), 5);

    // Users online (KIP-554): the super user adds carol, who can then log in; alice (no ACL)
    // and an unauthenticated plaintext client cannot add users; removed, carol cannot log in.
    const CAROL: &str = "Pa55-carol-0b9d3e";
    let add_carol = |who: Vec<String>| {
        let mut a: Vec<String> = [
            "users",
            "add",
            "carol",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password-stdin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(who);
        with_stdin(&a, CAROL)
    };
    let out = add_carol(sasl("alice", BOB_PASSWORD, &secure));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ClusterAuthorizationFailed"));
    let out = add_carol(vec!["--brokers".into(), plain.clone()]);
    assert!(
        !out.status.success(),
        "an unauthenticated client added a user"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ClusterAuthorizationFailed"));
    let out = add_carol(sasl("admin", PASSWORD, &secure));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ok(
        &admin(&["users", "list"], &mut outputs),
        "users list online",
    );
    assert!(
        listed.contains("carol  SCRAM-SHA-512 (iterations 4096)"),
        "{listed}"
    );
    let carol_lists = |o: &mut Vec<String>| {
        let mut a: Vec<String> = vec!["topics".into(), "list".into()];
        a.extend(sasl("carol", CAROL, &secure));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        cli(&a, o)
    };
    ok(&carol_lists(&mut outputs), "carol logs in");
    ok(
        &admin(&["users", "remove", "carol"], &mut outputs),
        "users remove online",
    );
    assert!(
        !carol_lists(&mut outputs).status.success(),
        "carol still logs in"
    );
    let users_file = std::fs::read_to_string(data.join("users.json")).unwrap();
    assert!(!users_file.contains("carol") && !users_file.contains(CAROL));

    let stopped = stop_child(&mut broker, "TERM", WAIT);
    assert!(stopped.is_some_and(|s| s.success()));
    // ACLs are durable: the file has the DENY left.
    let acls = std::fs::read_to_string(data.join("acls.json")).unwrap();
    assert!(
        acls.contains("Deny") && !acls.contains("\"Allow\""),
        "{acls}"
    );
    for text in &outputs {
        assert!(
            !text.contains(PASSWORD) && !text.contains(BOB_PASSWORD),
            "a password was printed:\n{text}"
        );
    }
}
