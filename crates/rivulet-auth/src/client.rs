//! The client side for Rivulet's own Kafka clients (the native source, `rivulet transactions`):
//! what the Kafka client properties ask for ([`ClientSecurity::from_properties`], the names
//! librdkafka and the Java client use) and the SASL exchange ([`SaslClient`]). The clients do
//! the framing; this holds no socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;

use crate::plain::PlainMessage;
use crate::scram::{Mechanism, ScramClient};
use crate::AuthError;

/// A SASL mechanism and its credentials. `Debug` never shows the password.
#[derive(Clone)]
pub struct SaslCredentials {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS and SASL settings of one client, from its properties.
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    /// For SSL and SASL_SSL: the rustls configuration.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// For SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslCredentials>,
}

fn prop<'a>(props: &'a BTreeMap<String, String>, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| props.get(*n))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

/// `username="…"` and `password="…"` of a Java client's `sasl.jaas.config`
/// (`…ScramLoginModule required username="alice" password="…";`).
fn jaas_option(jaas: &str, key: &str) -> Option<String> {
    let start = jaas.find(&format!("{key}=\""))? + key.len() + 2;
    let end = jaas[start..].find('"')? + start;
    Some(jaas[start..end].to_string())
}

impl ClientSecurity {
    /// Reads `security.protocol`, `sasl.mechanism` (or librdkafka's `sasl.mechanisms`),
    /// `sasl.username`/`sasl.password` (or the Java client's `sasl.jaas.config`),
    /// `ssl.ca.location` (else the system's CA bundle), `ssl.certificate.location` +
    /// `ssl.key.location` (mutual TLS). Errors name the property, never a value.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<ClientSecurity, AuthError> {
        let protocol = prop(props, &["security.protocol"])
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(AuthError::Invalid(format!(
                    "security.protocol {} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                    other.escape_debug()
                )))
            }
        };
        let mut out = ClientSecurity::default();
        if tls {
            if prop(props, &["ssl.endpoint.identification.algorithm"])
                .is_some_and(|a| !a.eq_ignore_ascii_case("https"))
            {
                return Err(AuthError::Invalid(
                    "ssl.endpoint.identification.algorithm other than https is not supported by \
                     Rivulet's own client (use client = librdkafka)"
                        .into(),
                ));
            }
            let ca = prop(props, &["ssl.ca.location"]).map(Path::new);
            let cert_key = match (
                prop(props, &["ssl.certificate.location"]),
                prop(props, &["ssl.key.location"]),
            ) {
                (Some(c), Some(k)) => Some((Path::new(c), Path::new(k))),
                (None, None) => None,
                _ => {
                    return Err(AuthError::Invalid(
                        "ssl.certificate.location and ssl.key.location go together".into(),
                    ))
                }
            };
            out.tls = Some(crate::tls::client_config(ca, cert_key)?);
        }
        if sasl {
            let mechanism = prop(props, &["sasl.mechanism", "sasl.mechanisms"])
                .unwrap_or("GSSAPI")
                .to_string();
            if mechanism != "PLAIN" && Mechanism::from_name(&mechanism).is_none() {
                return Err(AuthError::Invalid(format!(
                    "sasl.mechanism {} is not supported by Rivulet's own client (PLAIN, \
                     SCRAM-SHA-256, SCRAM-SHA-512; use client = librdkafka for others)",
                    mechanism.escape_debug()
                )));
            }
            let jaas = prop(props, &["sasl.jaas.config"]);
            let username = prop(props, &["sasl.username"])
                .map(str::to_string)
                .or_else(|| jaas.and_then(|j| jaas_option(j, "username")))
                .ok_or_else(|| AuthError::Invalid("SASL needs sasl.username".into()))?;
            let password = prop(props, &["sasl.password"])
                .map(str::to_string)
                .or_else(|| jaas.and_then(|j| jaas_option(j, "password")))
                .ok_or_else(|| AuthError::Invalid("SASL needs sasl.password".into()))?;
            out.sasl = Some(SaslCredentials {
                mechanism,
                username,
                password,
            });
        }
        Ok(out)
    }

    /// The name the server's certificate must carry for `host`.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, AuthError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_string()).map_err(|_| {
            AuthError::Invalid(format!("`{}` is not a host name", host.escape_debug()))
        })
    }
}

/// One SASL exchange from the client's side: [`SaslClient::first`], then
/// [`SaslClient::next`] with each server answer until it returns `None`.
pub struct SaslClient {
    mechanism: String,
    username: String,
    plain: Option<Vec<u8>>,
    scram: Option<ScramClient>,
    /// SCRAM steps done: 0 before server-first, 1 before server-final.
    step: u8,
}

impl std::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslClient")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl SaslClient {
    pub fn new(c: &SaslCredentials) -> SaslClient {
        match Mechanism::from_name(&c.mechanism) {
            Some(m) => SaslClient {
                mechanism: c.mechanism.clone(),
                username: c.username.clone(),
                plain: None,
                scram: Some(ScramClient::new(m, &c.username, &c.password)),
                step: 0,
            },
            None => SaslClient {
                mechanism: c.mechanism.clone(),
                username: c.username.clone(),
                plain: Some(PlainMessage::encode(&c.username, &c.password)),
                scram: None,
                step: 0,
            },
        }
    }

    /// The first token.
    pub fn first(&mut self) -> Vec<u8> {
        match (&mut self.plain, &self.scram) {
            (Some(p), _) => std::mem::take(p),
            (None, Some(s)) => s.client_first(),
            (None, None) => Vec::new(),
        }
    }

    /// The mechanism to ask for in SaslHandshake.
    pub fn mechanism(&self) -> &str {
        &self.mechanism
    }

    /// Checks a SaslHandshake answer from `addr`: `error_code` and the mechanisms it offers.
    pub fn on_handshake(
        &self,
        addr: &str,
        error_code: i16,
        offered: &[&str],
    ) -> Result<(), String> {
        if error_code == 0 {
            return Ok(());
        }
        Err(format!(
            "broker {addr} does not offer SASL mechanism {} (it offers {})",
            self.mechanism,
            offered.join(", ")
        ))
    }

    /// One SaslAuthenticate answer from `addr`: the next token, `None` when authenticated.
    pub fn on_authenticate(
        &mut self,
        addr: &str,
        error_code: i16,
        error_message: Option<&str>,
        auth_bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, String> {
        if error_code != 0 {
            return Err(format!(
                "SASL authentication with {addr} as {} failed: {}",
                self.username.escape_debug(),
                error_message.unwrap_or("no reason given").escape_debug()
            ));
        }
        self.next(auth_bytes)
            .map_err(|e| format!("with {addr}: {e}"))
    }

    /// PLAIN takes one round, SCRAM two: more means a confused server.
    pub const MAX_ROUNDS: usize = 3;

    /// The next token for the server's answer, or `None` when authenticated.
    pub fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, AuthError> {
        let Some(scram) = &mut self.scram else {
            return Ok(None);
        };
        self.step += 1;
        match self.step {
            1 => scram.client_final(server).map(Some),
            _ => scram.verify_server_final(server).map(|()| None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn properties_as_librdkafka_and_the_java_client_name_them() {
        assert!(ClientSecurity::from_properties(&props(&[]))
            .unwrap()
            .sasl
            .is_none());
        let s = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanisms", "SCRAM-SHA-256"),
            ("sasl.username", "alice"),
            ("sasl.password", "pw-123"),
        ]))
        .unwrap();
        let c = s.sasl.unwrap();
        assert_eq!(
            (c.mechanism.as_str(), c.username.as_str()),
            ("SCRAM-SHA-256", "alice")
        );
        assert!(!format!("{c:?}").contains("pw-123"));
        let s = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"bob\" password=\"x y\";",
            ),
        ]))
        .unwrap();
        assert_eq!(s.sasl.unwrap().username, "bob");
        for (bad, why) in [
            (vec![("security.protocol", "TLS")], "security.protocol"),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "GSSAPI"),
                    ("sasl.username", "a"),
                    ("sasl.password", "b"),
                ],
                "GSSAPI",
            ),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "PLAIN"),
                    ("sasl.username", "a"),
                ],
                "sasl.password",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.ca.location", "/nonexistent/ca.pem"),
                ],
                "ca.pem",
            ),
            (
                vec![("security.protocol", "SSL"), ("ssl.key.location", "/k")],
                "go together",
            ),
        ] {
            let e = ClientSecurity::from_properties(&props(&bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn sasl_client_talks_to_the_server_side() {
        use crate::scram::{ClientFirst, ScramCredential, ScramServer};
        let creds = SaslCredentials {
            mechanism: "SCRAM-SHA-512".into(),
            username: "alice".into(),
            password: "pw".into(),
        };
        let mut c = SaslClient::new(&creds);
        let first = ClientFirst::parse(&c.first()).unwrap();
        let cred = ScramCredential::new(Mechanism::Sha512, "pw", 4096).unwrap();
        let server = ScramServer::start(Mechanism::Sha512, &first, Some(cred));
        let fin = c.next(server.server_first()).unwrap().unwrap();
        let last = server.finish(&fin).unwrap();
        assert!(c.next(&last).unwrap().is_none());
        let mut p = SaslClient::new(&SaslCredentials {
            mechanism: "PLAIN".into(),
            ..creds
        });
        assert_eq!(p.first(), b"\0alice\0pw");
        assert!(p.next(b"").unwrap().is_none());
    }
}
