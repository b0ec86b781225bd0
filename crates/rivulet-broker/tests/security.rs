//! TLS and SASL with a real client (librdkafka through the rdkafka crate, built with
//! OpenSSL): SCRAM-SHA-512 over SASL_SSL, SCRAM-SHA-256 and PLAIN over SASL_PLAINTEXT, mutual
//! TLS; wrong passwords, unknown users, a client without a certificate or from another CA, a
//! plaintext client on a TLS port and a TLS client on a plaintext port, a request before
//! authentication — each refused, counted, and the broker keeps serving everyone else.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rivulet_auth::Mechanism;
use rivulet_broker::auth::SecurityProtocol as P;
use rivulet_testkit::*;

const USERS: &[(&str, Mechanism, &str)] = &[
    ("alice", Mechanism::Sha512, "alice-s3cret"),
    ("bob", Mechanism::Sha256, "bob-s3cret"),
];

fn secured(base: ClientConfig, props: &[(&str, String)]) -> ClientConfig {
    let mut c = base;
    for (k, v) in props {
        c.set(*k, v);
    }
    c
}

fn sasl(
    b: &SecureBroker,
    protocol: P,
    mechanism: &str,
    user: &str,
    pw: &str,
) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("bootstrap.servers", b.bootstrap(protocol)),
        ("security.protocol", protocol.name().to_string()),
        ("sasl.mechanism", mechanism.to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", pw.to_string()),
    ];
    if protocol == P::SaslSsl {
        p.push(("ssl.ca.location", b.pki.cert("ca").display().to_string()));
    }
    p
}

fn mtls(b: &SecureBroker, who: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", b.bootstrap(P::Ssl)),
        ("security.protocol", "SSL".to_string()),
        ("ssl.ca.location", b.pki.cert("ca").display().to_string()),
        (
            "ssl.certificate.location",
            b.pki.cert(who).display().to_string(),
        ),
        ("ssl.key.location", b.pki.key(who).display().to_string()),
    ]
}

/// Produces `n` values and reads them back with the same settings. Blocking.
fn round_trip(props: &[(&str, String)], topic: &str, n: usize) -> Result<Vec<String>, String> {
    let p: BaseProducer = secured(producer_config("unused"), props)
        .set("message.timeout.ms", "8000")
        .create()
        .map_err(|e| e.to_string())?;
    for i in 0..n {
        let v = format!("{topic}-{i}");
        p.send(BaseRecord::<str, str>::to(topic).payload(&v))
            .map_err(|(e, _)| e.to_string())?;
    }
    p.flush(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let c: BaseConsumer = secured(plain_consumer_config("unused"), props)
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while out.len() < n && std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => {}
        }
    }
    Ok(out)
}

fn expected(topic: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{topic}-{i}")).collect()
}

/// A producer with these settings fails to deliver; returns the error text. Blocking.
fn refused(props: &[(&str, String)], topic: &str) -> String {
    let p: FutureProducer = secured(producer_config("unused"), props)
        .set("message.timeout.ms", "3000")
        .create()
        .unwrap();
    let delivery = p
        .send_result(FutureRecord::<str, str>::to(topic).payload("x"))
        .unwrap();
    match futures::executor::block_on(delivery) {
        Ok(Ok(_)) => panic!("delivery to {topic} succeeded but should have been refused"),
        Ok(Err((e, _))) => e.to_string(),
        Err(_) => "canceled".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_plain_and_mutual_tls_round_trips() {
    let mut b = SecureBroker::start(USERS).await;
    create_topic(&b.bootstrap(P::Plaintext), "t", 1, &[]).await;
    let props = [
        (
            "t512",
            sasl(&b, P::SaslSsl, "SCRAM-SHA-512", "alice", "alice-s3cret"),
        ),
        (
            "t256",
            sasl(&b, P::SaslPlaintext, "SCRAM-SHA-256", "bob", "bob-s3cret"),
        ),
        // PLAIN is checked against the SCRAM credential.
        (
            "tplain",
            sasl(&b, P::SaslSsl, "PLAIN", "alice", "alice-s3cret"),
        ),
        ("tmtls", mtls(&b, "alice")),
    ];
    let stats = b.stats();
    blocking(move || {
        for (topic, p) in &props {
            assert_eq!(
                round_trip(p, topic, 20).unwrap(),
                expected(topic, 20),
                "{topic}"
            );
        }
    })
    .await;
    assert!(stats.authentications.load(Relaxed) >= 6);
    assert_eq!(stats.authentication_failures.load(Relaxed), 0);
    assert_eq!(stats.tls_handshake_failures.load(Relaxed), 0);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_counted_and_others_still_served() {
    let mut b = SecureBroker::start(USERS).await;
    let stats = b.stats();
    let wrong_pw = sasl(&b, P::SaslSsl, "SCRAM-SHA-512", "alice", "not-her-password");
    let unknown = sasl(&b, P::SaslPlaintext, "SCRAM-SHA-256", "nobody", "x");
    let wrong_mech = sasl(&b, P::SaslPlaintext, "SCRAM-SHA-512", "bob", "bob-s3cret");
    let plain_wrong = sasl(&b, P::SaslPlaintext, "PLAIN", "bob", "guess");
    let good = sasl(&b, P::SaslSsl, "SCRAM-SHA-512", "alice", "alice-s3cret");
    blocking(move || {
        for p in [&wrong_pw, &unknown, &wrong_mech, &plain_wrong] {
            let e = refused(p, "denied");
            assert!(
                e.contains("timed out") || e.contains("uthentication"),
                "{e}"
            );
        }
        assert_eq!(round_trip(&good, "after", 5).unwrap(), expected("after", 5));
    })
    .await;
    // bob has no SCRAM-SHA-512 credential: refused like an unknown user.
    assert!(stats.authentication_failures.load(Relaxed) >= 4);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mismatches_are_refused_and_counted() {
    let mut b = SecureBroker::start(USERS).await;
    let stats = b.stats();
    // No client certificate on the mutual-TLS listener, and one from another CA.
    let mut no_cert = mtls(&b, "alice");
    no_cert.retain(|(k, _)| !k.starts_with("ssl.certificate") && !k.starts_with("ssl.key"));
    let other_ca = mtls(&b, "mallory");
    // A TLS client on the plaintext listener.
    let mut tls_on_plain = mtls(&b, "alice");
    tls_on_plain[0].1 = b.bootstrap(P::Plaintext);
    blocking(move || {
        for p in [&no_cert, &other_ca, &tls_on_plain] {
            refused(p, "denied");
        }
    })
    .await;
    assert!(stats.tls_handshake_failures.load(Relaxed) >= 2);
    assert!(stats.malformed_requests.load(Relaxed) >= 1);

    // A plaintext Kafka request on the TLS port: the handshake fails, the socket closes.
    let before = stats.tls_handshake_failures.load(Relaxed);
    let mut s = std::net::TcpStream::connect(b.bootstrap(P::SaslSsl)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&api_versions_request()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    // rustls may answer with a TLS alert record (0x15), never with a Kafka response.
    assert!(n == 0 || buf[0] == 0x15, "got {:?}", &buf[..n]);
    assert!(wait_until(|| stats.tls_handshake_failures.load(Relaxed) > before).await);

    let good = mtls(&b, "alice");
    blocking(move || assert_eq!(round_trip(&good, "ok", 3).unwrap(), expected("ok", 3))).await;
    b.shutdown().await;
}

/// ApiVersions v0, correlation id 1.
fn api_versions_request() -> Vec<u8> {
    let body = [0u8, 18, 0, 0, 0, 0, 0, 1, 0, 0];
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_authentication_close_the_connection() {
    let mut b = SecureBroker::start(USERS).await;
    let stats = b.stats();
    let addr = b.bootstrap(P::SaslPlaintext);
    blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        // ApiVersions is allowed before authenticating…
        s.write_all(&api_versions_request()).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        // …Metadata v0 (no topics) is not: the connection closes without an answer.
        let body = [0u8, 3, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0];
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        s.write_all(&f).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "answered before authentication: {rest:?}");

        // A huge frame before authentication is refused by its length alone.
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(&(10u32 << 20).to_be_bytes()).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty());
    })
    .await;
    assert_eq!(stats.unauthenticated_requests.load(Relaxed), 1);
    assert!(stats.oversize_frames.load(Relaxed) >= 1);
    b.shutdown().await;
}
