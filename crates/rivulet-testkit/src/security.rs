//! Secured brokers for tests: certificates made at test time (a CA, a server certificate for
//! 127.0.0.1 and localhost, client certificates), SCRAM users, and a broker with one listener of
//! each security protocol. Nothing here is committed key material.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rivulet_auth::{CredentialStore, Mechanism, ScramCredential};
use rivulet_broker::auth::SecurityProtocol;
use rivulet_broker::BrokerHandle;
use tokio::net::TcpListener;

use crate::broker::{base_config, init_test_tracing};
use crate::wait::WAIT;

/// PEM files of a throw-away PKI in a temporary directory.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    /// A CA, a server certificate (SANs 127.0.0.1 and localhost) and a client certificate
    /// `CN=alice` it signed, plus a client certificate `CN=mallory` signed by another CA.
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca_pem, issuer) = make_ca("Rivulet test CA");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).expect("write");
        leaf(
            dir.path(),
            "server",
            &["127.0.0.1", "localhost"],
            "localhost",
            &issuer,
        );
        leaf(dir.path(), "alice", &[], "alice", &issuer);
        let (_, other) = make_ca("Someone else's CA");
        leaf(dir.path(), "mallory", &[], "mallory", &other);
        TestPki { dir }
    }

    /// `<name>.pem` / `<name>.key` (`ca`, `server`, `alice`, `mallory`).
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pem"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.key"))
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(dir: &Path, file: &str, sans: &[&str], cn: &str, issuer: &Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).expect("certificate");
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write");
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write");
}

/// Stores a SCRAM user in a broker data directory, as `rivulet users add` does.
pub fn add_user(data_dir: &Path, name: &str, mechanism: Mechanism, password: &str) {
    let mut store = CredentialStore::open(data_dir).expect("credential store");
    let c = ScramCredential::new(mechanism, password, 4096).expect("credential");
    store.upsert(name, mechanism, c).expect("store user");
}

/// A broker in this process with one listener per security protocol on 127.0.0.1, the
/// [`TestPki`]'s server certificate and, for SSL, mutual TLS with its CA; no ACLs, and
/// `allow_everyone_if_no_acl_found`.
pub struct SecureBroker {
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
    pub handle: Option<BrokerHandle>,
    /// Ports of the PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners.
    pub ports: [u16; 4],
}

impl SecureBroker {
    /// Starts it; `users` (name, mechanism, password) are stored first.
    pub async fn start(users: &[(&str, Mechanism, &str)]) -> SecureBroker {
        init_test_tracing();
        let pki = TestPki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, m, pw) in users {
            add_user(dir.path(), name, *m, pw);
        }
        let mut listeners = Vec::new();
        for _ in 0..4 {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        let ports: [u16; 4] = [ports[0], ports[1], ports[2], ports[3]];
        let mut cfg = base_config(dir.path(), ports[0]);
        cfg.listener_addresses = ports
            .iter()
            .map(|p| ("127.0.0.1".to_string(), *p))
            .collect();
        cfg.listener_protocols = vec![
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ];
        // No ACLs here (authentication is these brokers' subject): everyone may use them.
        cfg.allow_everyone_if_no_acl_found = true;
        let (cert, key) = (pki.cert("server"), pki.key("server"));
        cfg.tls = Some(rivulet_auth::tls::server_config(&cert, &key, None).expect("tls"));
        cfg.tls_mutual = Some(
            rivulet_auth::tls::server_config(&cert, &key, Some(&pki.cert("ca"))).expect("mtls"),
        );
        let handle = tokio::time::timeout(WAIT, rivulet_broker::start(cfg, listeners))
            .await
            .expect("broker start timed out")
            .expect("broker start failed");
        SecureBroker {
            pki,
            dir,
            handle: Some(handle),
            ports,
        }
    }

    /// `127.0.0.1:<port>` of the listener with `protocol`.
    pub fn bootstrap(&self, protocol: SecurityProtocol) -> String {
        let i = match protocol {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        };
        format!("127.0.0.1:{}", self.ports[i])
    }

    pub fn stats(&self) -> std::sync::Arc<rivulet_broker::state::BrokerStats> {
        self.handle.as_ref().expect("running").stats()
    }

    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(WAIT, h.shutdown())
                .await
                .expect("shutdown timed out")
                .expect("shutdown failed");
        }
    }
}
