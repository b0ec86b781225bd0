//! Who a connection is: listener security protocols (PLAINTEXT, SSL, SASL_PLAINTEXT,
//! SASL_SSL), the per-connection SASL state machine behind SaslHandshake / SaslAuthenticate,
//! and the slow-down of addresses that keep failing to authenticate.
//!
//! The mechanisms themselves (SCRAM, PLAIN, the credential store, TLS files) are in
//! `rivulet-auth`, shared with the clients. On a SASL listener a connection may send only
//! ApiVersions, SaslHandshake and SaslAuthenticate until it has authenticated, one request at a
//! time and in frames of at most [`SASL_MAX_RECEIVE`] bytes (Kafka's
//! `sasl.server.max.receive.size`); anything else closes it, as in Kafka.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rivulet_auth::scram::{ClientFirst, ScramServer};
use rivulet_auth::{Mechanism, ScramCredential};

/// Largest frame accepted before authentication.
pub const SASL_MAX_RECEIVE: usize = 512 * 1024;
/// Principal of connections that did not authenticate (Kafka's `User:ANONYMOUS`).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A listener's security protocol, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const NAMES: [(&'static str, SecurityProtocol); 4] = [
        ("PLAINTEXT", SecurityProtocol::Plaintext),
        ("SSL", SecurityProtocol::Ssl),
        ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
        ("SASL_SSL", SecurityProtocol::SaslSsl),
    ];

    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| *p)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("PLAINTEXT", |(n, _)| n)
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(Mechanism::Sha256),
        SaslMechanism::Scram(Mechanism::Sha512),
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }

    /// Exact match, as Kafka's mechanism names are case-sensitive.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Where a connection is in authentication.
enum Step {
    /// Nothing to do: a listener without SASL.
    Open,
    /// Waiting for SaslHandshake.
    Handshake,
    /// Mechanism chosen; waiting for the first token. `raw`: SaslHandshake v0, so tokens come
    /// as bare length-prefixed frames, not SaslAuthenticate requests.
    First {
        mechanism: SaslMechanism,
        raw: bool,
    },
    /// SCRAM server-first sent; waiting for the client-final message.
    ScramFinal {
        server: Box<ScramServer>,
        raw: bool,
    },
    Authenticated,
    /// Authentication failed: the connection closes once the answer is sent.
    Failed,
}

/// One connection's identity and SASL state.
pub struct Session {
    step: Mutex<Step>,
    principal: Mutex<String>,
    /// The principal came from a verified TLS client certificate.
    by_certificate: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &*self.principal.lock())
            .finish_non_exhaustive()
    }
}

/// What one SASL token gets back.
pub enum TokenOutcome {
    /// Send these bytes; more tokens follow (SCRAM server-first).
    Continue(Vec<u8>),
    /// Authenticated as `principal`; send these bytes (SCRAM server-final, or nothing).
    Done(Vec<u8>),
    /// Failed; `reason` is for the log (no secrets, no client bytes).
    Failed { reason: String },
}

impl Session {
    /// A session on a listener with `protocol`; `principal` is the TLS client certificate's
    /// (`User:CN=…`) or [`ANONYMOUS`].
    pub fn new(protocol: SecurityProtocol, principal: String) -> Session {
        Session {
            by_certificate: principal != ANONYMOUS,
            step: Mutex::new(if protocol.uses_sasl() {
                Step::Handshake
            } else {
                Step::Open
            }),
            principal: Mutex::new(principal),
        }
    }

    pub fn principal(&self) -> String {
        self.principal.lock().clone()
    }

    /// Whether ordinary requests may be served.
    pub fn authenticated(&self) -> bool {
        matches!(*self.step.lock(), Step::Open | Step::Authenticated)
    }

    /// Whether ACLs apply: the principal was authenticated (SASL or a client certificate).
    pub fn checked(&self) -> bool {
        self.by_certificate || matches!(*self.step.lock(), Step::Authenticated)
    }

    pub fn failed(&self) -> bool {
        matches!(*self.step.lock(), Step::Failed)
    }

    /// Whether the next frame is a bare SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            *self.step.lock(),
            Step::First { raw: true, .. } | Step::ScramFinal { raw: true, .. }
        )
    }

    /// Whether a SaslAuthenticate request is expected now.
    pub fn expects_authenticate(&self) -> bool {
        matches!(
            *self.step.lock(),
            Step::First { raw: false, .. } | Step::ScramFinal { raw: false, .. }
        )
    }

    /// SaslHandshake: `Ok` if `mechanism` is enabled and a handshake is expected now.
    pub fn handshake(
        &self,
        mechanism: &str,
        enabled: &[SaslMechanism],
        version: i16,
    ) -> Result<(), HandshakeError> {
        let mut step = self.step.lock();
        if !matches!(*step, Step::Handshake) {
            return Err(HandshakeError::IllegalState);
        }
        match SaslMechanism::from_name(mechanism).filter(|m| enabled.contains(m)) {
            Some(m) => {
                *step = Step::First {
                    mechanism: m,
                    raw: version == 0,
                };
                Ok(())
            }
            None => {
                *step = Step::Failed;
                Err(HandshakeError::UnsupportedMechanism)
            }
        }
    }

    /// One SASL token. `lookup` finds a user's SCRAM credential (the broker's store);
    /// `verify_plain` checks a PLAIN password against it. May be slow (PLAIN runs PBKDF2):
    /// call it off the async workers.
    pub fn token(
        &self,
        bytes: &[u8],
        lookup: impl Fn(&str, Mechanism) -> Option<ScramCredential>,
        verify_plain: impl Fn(&str, &str) -> bool,
    ) -> TokenOutcome {
        let mut step = self.step.lock();
        let current = std::mem::replace(&mut *step, Step::Failed);
        let fail = |reason: String| TokenOutcome::Failed { reason };
        match current {
            Step::First {
                mechanism: SaslMechanism::Plain,
                ..
            } => match rivulet_auth::plain::PlainMessage::parse(bytes) {
                Ok(m) if verify_plain(&m.username, &m.password) => {
                    *step = Step::Authenticated;
                    *self.principal.lock() = format!("User:{}", m.username);
                    TokenOutcome::Done(Vec::new())
                }
                Ok(m) => fail(format!(
                    "invalid credentials for user {}",
                    rivulet_log::Quoted(&m.username)
                )),
                Err(e) => fail(e.to_string()),
            },
            Step::First {
                mechanism: SaslMechanism::Scram(m),
                raw,
            } => match ClientFirst::parse(bytes) {
                Ok(first) => {
                    let server = ScramServer::start(m, &first, lookup(&first.username, m));
                    let out = server.server_first().to_vec();
                    *self.principal.lock() = format!("User:{}", first.username);
                    *step = Step::ScramFinal {
                        server: Box::new(server),
                        raw,
                    };
                    TokenOutcome::Continue(out)
                }
                Err(e) => fail(e.to_string()),
            },
            Step::ScramFinal { server, .. } => match server.finish(bytes) {
                Ok(out) => {
                    *step = Step::Authenticated;
                    TokenOutcome::Done(out)
                }
                Err(e) => fail(format!(
                    "{e} (user {})",
                    rivulet_log::Quoted(&self.principal.lock())
                )),
            },
            other => {
                let reason = match other {
                    Step::Handshake => "SaslAuthenticate before SaslHandshake",
                    _ => "SaslAuthenticate after authentication ended",
                };
                fail(reason.to_string())
            }
        }
    }

    /// The mechanism being used, for error messages.
    pub fn mechanism_name(&self) -> &'static str {
        match &*self.step.lock() {
            Step::First { mechanism, .. } => mechanism.name(),
            Step::ScramFinal { .. } => "SCRAM",
            _ => "",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    IllegalState,
    UnsupportedMechanism,
}

/// Failed authentications per client address: each failure's answer is delayed longer (from
/// 100 ms, doubling, at most 3.2 s), so guessing passwords from one address is slow; the count
/// is forgotten a minute after the last failure. At most 10,000 addresses are kept.
#[derive(Debug, Default)]
pub struct FailureThrottle {
    by_ip: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

const MAX_TRACKED: usize = 10_000;
const FORGET_AFTER: Duration = Duration::from_secs(60);

impl FailureThrottle {
    /// Records a failure from `ip`; returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let mut m = self.by_ip.lock();
        if m.len() >= MAX_TRACKED {
            m.retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
        }
        let e = m.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= FORGET_AFTER {
            e.0 = 0;
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
        Duration::from_millis(100u64 << (e.0 - 1).min(5))
    }

    pub fn succeeded(&self, ip: IpAddr) {
        self.by_ip.lock().remove(&ip);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rivulet_auth::scram::ScramClient;

    fn lookup_alice(cred: ScramCredential) -> impl Fn(&str, Mechanism) -> Option<ScramCredential> {
        move |u, _| (u == "alice").then(|| cred.clone())
    }

    #[test]
    fn scram_session_from_handshake_to_authenticated() {
        let m = Mechanism::Sha512;
        let cred = ScramCredential::new(m, "pw", 4096).unwrap();
        let s = Session::new(SecurityProtocol::SaslSsl, ANONYMOUS.into());
        assert!(!s.authenticated());
        s.handshake("SCRAM-SHA-512", &SaslMechanism::ALL, 1)
            .unwrap();
        assert!(s.expects_authenticate() && !s.expects_raw_token());
        let mut c = ScramClient::new(m, "alice", "pw");
        let TokenOutcome::Continue(first) =
            s.token(&c.client_first(), lookup_alice(cred.clone()), |_, _| false)
        else {
            panic!("no server-first")
        };
        let fin = c.client_final(&first).unwrap();
        let TokenOutcome::Done(last) = s.token(&fin, lookup_alice(cred), |_, _| false) else {
            panic!("not authenticated")
        };
        c.verify_server_final(&last).unwrap();
        assert!(s.authenticated());
        assert_eq!(s.principal(), "User:alice");
        // Nothing more is accepted.
        assert!(matches!(
            s.token(b"x", |_, _| None, |_, _| true),
            TokenOutcome::Failed { .. }
        ));
    }

    #[test]
    fn wrong_order_and_unknown_mechanisms_fail() {
        let s = Session::new(SecurityProtocol::SaslPlaintext, ANONYMOUS.into());
        assert!(matches!(
            s.token(b"\0a\0b", |_, _| None, |_, _| true),
            TokenOutcome::Failed { .. }
        ));
        assert!(s.failed());
        let s = Session::new(SecurityProtocol::SaslPlaintext, ANONYMOUS.into());
        assert_eq!(
            s.handshake("GSSAPI", &SaslMechanism::ALL, 1),
            Err(HandshakeError::UnsupportedMechanism)
        );
        let s = Session::new(SecurityProtocol::SaslPlaintext, ANONYMOUS.into());
        assert_eq!(
            s.handshake("PLAIN", &[SaslMechanism::Scram(Mechanism::Sha256)], 1),
            Err(HandshakeError::UnsupportedMechanism)
        );
        let s = Session::new(SecurityProtocol::Plaintext, ANONYMOUS.into());
        assert!(s.authenticated());
        assert_eq!(
            s.handshake("PLAIN", &SaslMechanism::ALL, 1),
            Err(HandshakeError::IllegalState)
        );
        // PLAIN with v0 framing.
        let s = Session::new(SecurityProtocol::SaslPlaintext, ANONYMOUS.into());
        s.handshake("PLAIN", &SaslMechanism::ALL, 0).unwrap();
        assert!(s.expects_raw_token());
        let out = s.token(b"\0bob\0pw", |_, _| None, |u, p| u == "bob" && p == "pw");
        assert!(matches!(out, TokenOutcome::Done(_)));
        assert_eq!(s.principal(), "User:bob");
    }

    #[test]
    fn failures_slow_an_address_down_and_success_resets_it() {
        let t = FailureThrottle::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let delays: Vec<_> = (0..8).map(|_| t.failed(ip).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 3200, 3200]);
        t.succeeded(ip);
        assert_eq!(t.failed(ip).as_millis(), 100);
    }
}
