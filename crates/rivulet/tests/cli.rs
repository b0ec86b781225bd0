//! The binary's flags: `--listen localhost:0` binds every address localhost resolves to (one
//! port), and bad flags are refused with a clear message before anything starts. Logs written
//! to a file carry no colour escapes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

#[test]
fn listen_on_localhost_binds_every_resolved_address_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["broker", "--listen", "localhost:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let expected: Vec<std::net::SocketAddr> =
        std::net::ToSocketAddrs::to_socket_addrs("localhost:0")
            .unwrap()
            .collect();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addrs: Vec<std::net::SocketAddr> = Vec::new();
    while addrs.len() < expected.len() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(a) = line.strip_prefix("rivulet broker listening on ") {
                addrs.push(a.parse().unwrap());
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Hosts without IPv6 may fail to bind ::1; the broker then serves the rest (logged).
    assert!(!addrs.is_empty(), "no listening line");
    assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    assert!(
        addrs.iter().all(|a| a.port() == addrs[0].port()),
        "one port for all: {addrs:?}"
    );
    let ipv6_usable = std::net::TcpListener::bind("[::1]:0").is_ok();
    if ipv6_usable && expected.iter().any(|a| a.is_ipv6()) {
        assert!(
            addrs.iter().any(|a| a.is_ipv4()) && addrs.iter().any(|a| a.is_ipv6()),
            "{addrs:?}"
        );
    }
}

#[test]
fn bad_flags_are_refused_with_a_clear_message() {
    let out = Command::new(BIN)
        .args(["broker", "--fsync", "sometimes", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fsync") && err.contains("always"), "{err}");

    let out = Command::new(BIN)
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--default-partitions",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--default-partitions"), "{err}");
}

/// Logs go to stderr; when that is a file (not a terminal) they are plain text, without the
/// ANSI colour escapes a terminal gets.
#[test]
fn logs_to_a_file_have_no_colour_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BIN)
        .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .is_ok_and(|l| l.starts_with("rivulet broker listening on "));
    // SIGTERM: a clean shutdown, which logs too.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let bytes = std::fs::read(&log_path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(ready, "no ready line; log:\n{text}");
    assert!(killed.success());
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}; log:\n{text}"
    );
    assert!(
        text.contains("storage opened") && text.contains("broker stopped cleanly"),
        "{text}"
    );
    assert!(!bytes.contains(&0x1b), "ESC in the log file:\n{text:?}");
}
