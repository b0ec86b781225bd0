//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka implements them: no channel
//! binding (`n,,`), usernames with `=2C`/`=3D` escapes, 4,096 to 16,384 iterations, no
//! SASLprep (Kafka's own ScramFormatter does none either, so the same password gives the same
//! keys with every Kafka client).
//!
//! Written here rather than taken from a crate: the SCRAM crates on crates.io are client-side
//! only or unmaintained, and the exchange is a few HMACs over text that we must bound and
//! validate ourselves anyway (a hostile client sends it).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::AuthError;

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations` / KIP-554's maximum).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Longest SCRAM message accepted; real ones are under 300 bytes.
pub const MAX_MESSAGE: usize = 4096;

/// A SCRAM mechanism, by the hash it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case-insensitive), if it is SCRAM.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's ScramMechanism type byte in DescribeUserScramCredentials (1 and 2).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        match self {
            Mechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Mechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this HMAC, one block.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut first = salt.to_vec();
        first.extend_from_slice(&[0, 0, 0, 1]);
        let mut prev = self.hmac(password, &first);
        let mut out = prev.clone();
        for _ in 1..iterations {
            prev = self.hmac(password, &prev);
            for (o, p) in out.iter_mut().zip(&prev) {
                *o ^= p;
            }
        }
        out
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the server keeps of a password: salt, iterations, StoredKey and ServerKey — never the
/// password or the salted password (RFC 5802 §5.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are password-equivalent for a dictionary attack: never shown.
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// A credential for `password` with a fresh random salt.
    pub fn new(
        mechanism: Mechanism,
        password: &str,
        iterations: u32,
    ) -> Result<ScramCredential, AuthError> {
        check_iterations(iterations)?;
        let mut salt = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        Ok(Self::with_salt(mechanism, password, salt, iterations))
    }

    /// A credential for `password` with this salt (tests and RFC vectors).
    pub fn with_salt(
        mechanism: Mechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.hi(password.as_bytes(), &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        ScramCredential {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// A credential from a salted password (`Hi(password, salt, iterations)`), as Kafka's
    /// AlterUserScramCredentials carries it: the server never sees the password.
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted, b"Client Key");
        ScramCredential {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// `Hi(password, salt, iterations)`: what a client sends in AlterUserScramCredentials.
    pub fn salted_password(
        mechanism: Mechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Vec<u8> {
        mechanism.hi(password.as_bytes(), salt, iterations)
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN checked against
    /// the SCRAM store), in constant time over the keys.
    pub fn verify_password(&self, mechanism: Mechanism, password: &str) -> bool {
        let other = Self::with_salt(mechanism, password, self.salt.clone(), self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// Refuses iteration counts outside Kafka's bounds.
pub fn check_iterations(iterations: u32) -> Result<(), AuthError> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(AuthError::Invalid(format!(
            "SCRAM iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {iterations}"
        )));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// `name=value` attributes of one SCRAM message, in order; `None` if malformed.
fn attributes(msg: &str) -> Option<Vec<(char, &str)>> {
    msg.split(',')
        .map(|part| {
            let mut chars = part.chars();
            let key = chars.next()?;
            let rest = chars.as_str().strip_prefix('=')?;
            key.is_ascii_alphabetic().then_some((key, rest))
        })
        .collect()
}

/// A SCRAM username: `=2C` and `=3D` decoded; any other `=` is malformed (RFC 5802 §5.1).
fn decode_username(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn encode_username(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// 32 random letters and digits (~190 bits), alphanumeric like Kafka's own nonces.
fn nonce() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| CHARS[(rng.next_u32() % CHARS.len() as u32) as usize] as char)
        .collect()
}

fn malformed(what: &str) -> AuthError {
    AuthError::Malformed(format!("SCRAM {what}"))
}

/// The client-first message, parsed: `n,,n=USER,r=NONCE[,extensions]`.
#[derive(Debug)]
pub struct ClientFirst {
    pub username: String,
    bare: String,
    nonce: String,
}

impl ClientFirst {
    pub fn parse(msg: &[u8]) -> Result<ClientFirst, AuthError> {
        if msg.len() > MAX_MESSAGE {
            return Err(malformed("client-first message too long"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| malformed("message is not UTF-8"))?;
        // gs2 header: channel binding flag "n" (no binding) or "y"; "p=" (binding) is not
        // supported, as in Kafka. An authzid must equal the username (checked below).
        let (flag, rest) = msg
            .split_once(',')
            .ok_or_else(|| malformed("client-first message has no GS2 header"))?;
        if flag != "n" && flag != "y" {
            return Err(malformed("channel binding is not supported"));
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("client-first message has no GS2 header"))?;
        let attrs =
            attributes(bare).ok_or_else(|| malformed("client-first message is malformed"))?;
        let (username, nonce) = match attrs.as_slice() {
            [('n', u), ('r', r), ..] => (*u, *r),
            _ => return Err(malformed("client-first message needs n= and r=")),
        };
        let username = decode_username(username).ok_or_else(|| malformed("username escape"))?;
        if username.is_empty()
            || nonce.is_empty()
            || !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',')
        {
            return Err(malformed(
                "client-first message has an empty username or a bad nonce",
            ));
        }
        if !authzid.is_empty() {
            let authzid = authzid
                .strip_prefix("a=")
                .and_then(decode_username)
                .ok_or_else(|| malformed("authorization id"))?;
            if authzid != username {
                return Err(AuthError::Failed(
                    "SCRAM authorization id differs from the username".into(),
                ));
            }
        }
        Ok(ClientFirst {
            username,
            bare: bare.to_string(),
            nonce: nonce.to_string(),
        })
    }
}

/// The server's side of one exchange, after the client-first message: it answers with the
/// server-first message, then checks the client's proof.
pub struct ScramServer {
    mechanism: Mechanism,
    /// `None` for an unknown user: the exchange goes on with a made-up salt so that the answer
    /// does not tell which usernames exist, and fails at the proof.
    credential: Option<ScramCredential>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    pub fn start(
        mechanism: Mechanism,
        first: &ClientFirst,
        credential: Option<ScramCredential>,
    ) -> ScramServer {
        let nonce = format!("{}{}", first.nonce, nonce());
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => {
                // Stable per username, so probing twice gives the same answer.
                let salt = mechanism.hmac(b"rivulet-unknown-user", first.username.as_bytes());
                (salt, MIN_ITERATIONS)
            }
        };
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        ScramServer {
            mechanism,
            credential,
            client_first_bare: first.bare.clone(),
            server_first,
            nonce,
        }
    }

    pub fn server_first(&self) -> &[u8] {
        self.server_first.as_bytes()
    }

    /// Checks the client-final message; on success returns the server-final message
    /// (`v=signature`).
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, AuthError> {
        if client_final.len() > MAX_MESSAGE {
            return Err(malformed("client-final message too long"));
        }
        let msg =
            std::str::from_utf8(client_final).map_err(|_| malformed("message is not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("client-final message has no proof"))?;
        let attrs = attributes(without_proof)
            .ok_or_else(|| malformed("client-final message is malformed"))?;
        let (binding, nonce) = match attrs.as_slice() {
            [('c', c), ('r', r), ..] => (*c, *r),
            _ => return Err(malformed("client-final message needs c= and r=")),
        };
        // "n,," or "y,," base64-encoded: no channel binding data.
        if binding != "biws" && binding != "eSws" {
            return Err(malformed("channel binding is not supported"));
        }
        // Kafka checks `endsWith`, not equality: librdkafka before 2.1 sends its own nonce
        // again in front of the server's (seen with Debian's kcat).
        if !nonce.ends_with(&self.nonce) {
            return Err(AuthError::Failed("SCRAM nonce mismatch".into()));
        }
        let proof = B64
            .decode(proof.as_bytes())
            .map_err(|_| malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let Some(cred) = &self.credential else {
            return Err(AuthError::Failed("invalid credentials".into()));
        };
        let signature = self
            .mechanism
            .hmac(&cred.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(AuthError::Failed("invalid credentials".into()));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&self.mechanism.hash(&client_key), &cred.stored_key) {
            return Err(AuthError::Failed("invalid credentials".into()));
        }
        let server_signature = self
            .mechanism
            .hmac(&cred.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The client's side of one exchange (the native Kafka client and the tests).
pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    pub fn new(mechanism: Mechanism, username: &str, password: &str) -> ScramClient {
        Self::with_nonce(mechanism, username, password, nonce())
    }

    fn with_nonce(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: String,
    ) -> ScramClient {
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", encode_username(username)),
            nonce,
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server-first message `server_first`.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, AuthError> {
        let msg =
            std::str::from_utf8(server_first).map_err(|_| malformed("message is not UTF-8"))?;
        let attrs =
            attributes(msg).ok_or_else(|| malformed("server-first message is malformed"))?;
        let (nonce, salt, iterations) = match attrs.as_slice() {
            [('r', r), ('s', s), ('i', i), ..] => (*r, *s, *i),
            _ => return Err(malformed("server-first message needs r=, s= and i=")),
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(AuthError::Failed(
                "SCRAM server nonce does not extend ours".into(),
            ));
        }
        let salt = B64
            .decode(salt.as_bytes())
            .map_err(|_| malformed("salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| malformed("iteration count"))?;
        check_iterations(iterations)?;
        let m = self.mechanism;
        let salted = m.hi(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{msg},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server knew the credential too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let msg =
            std::str::from_utf8(server_final).map_err(|_| malformed("message is not UTF-8"))?;
        if let Some(e) = msg.strip_prefix("e=") {
            return Err(AuthError::Failed(format!(
                "server refused: {}",
                e.escape_debug()
            )));
        }
        let v = msg
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v.as_bytes()).ok())
            .ok_or_else(|| malformed("server-final message"))?;
        match &self.server_signature {
            Some(s) if constant_time_eq(s, &v) => Ok(()),
            _ => Err(AuthError::Failed(
                "the server's signature does not match".into(),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 7677 §3's example exchange (user "user", password "pencil").
    #[test]
    fn rfc7677_sha256_vector() {
        let mut client = ScramClient::with_nonce(
            Mechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = client.client_final(server_first).unwrap();
        assert_eq!(
            std::str::from_utf8(&fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(client.verify_server_final(b"v=AAAA").is_err());
    }

    fn exchange(m: Mechanism, stored: &str, given: &str, user: &str) -> Result<(), AuthError> {
        let cred = ScramCredential::new(m, stored, 4096).unwrap();
        let mut client = ScramClient::new(m, user, given);
        let first = ClientFirst::parse(&client.client_first())?;
        assert_eq!(first.username, user);
        let known = (user == "alice").then_some(cred);
        let server = ScramServer::start(m, &first, known);
        let fin = client.client_final(server.server_first())?;
        let server_final = server.finish(&fin)?;
        client.verify_server_final(&server_final)
    }

    #[test]
    fn both_mechanisms_accept_the_right_password_only() {
        for m in Mechanism::ALL {
            exchange(m, "s3cret", "s3cret", "alice").unwrap();
            assert!(matches!(
                exchange(m, "s3cret", "wrong", "alice"),
                Err(AuthError::Failed(_))
            ));
            assert!(matches!(
                exchange(m, "s3cret", "s3cret", "mallory"),
                Err(AuthError::Failed(_))
            ));
        }
    }

    /// librdkafka 2.0 repeats its nonce in front of the server's in the client-final message;
    /// Kafka accepts that (it checks that the nonce ends with the server's), and so do we.
    #[test]
    fn a_client_final_nonce_with_the_client_nonce_repeated_is_accepted() {
        let m = Mechanism::Sha256;
        let cred = ScramCredential::new(m, "pw", 4096).unwrap();
        let first = ClientFirst::parse(b"n,,n=bob,r=abc").unwrap();
        let server = ScramServer::start(m, &first, Some(cred));
        let sf = std::str::from_utf8(server.server_first())
            .unwrap()
            .to_string();
        let full = sf
            .strip_prefix("r=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string();
        // Compute the proof the way that client does, over its own client-final message.
        let salted = m.hi(
            b"pw",
            &B64.decode(sf.split(",s=").nth(1).unwrap().split(',').next().unwrap())
                .unwrap(),
            4096,
        );
        let client_key = m.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r=abc{full}");
        let auth = format!("n=bob,r=abc,{sf},{without_proof}");
        let sig = m.hmac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let fin = format!("{without_proof},p={}", B64.encode(proof));
        server.finish(fin.as_bytes()).unwrap();
        // A nonce that does not end with the server's is refused.
        let bad = format!("c=biws,r={}x,p={}", full, B64.encode([0u8; 32]));
        assert!(matches!(
            server.finish(bad.as_bytes()),
            Err(AuthError::Failed(_))
        ));
    }

    #[test]
    fn usernames_with_commas_and_equals_round_trip() {
        let first = ClientFirst::parse(b"n,,n=a=2Cb=3Dc,r=xyz").unwrap();
        assert_eq!(first.username, "a,b=c");
        assert!(ClientFirst::parse(b"n,,n=a=XYb,r=xyz").is_err());
        assert!(ClientFirst::parse(b"p=tls-unique,,n=a,r=x").is_err());
        assert!(ClientFirst::parse(b"n,a=bob,n=alice,r=x").is_err());
        assert!(ClientFirst::parse(b"n,a=alice,n=alice,r=x").is_ok());
    }

    #[test]
    fn plain_passwords_are_checked_against_scram_credentials() {
        for m in Mechanism::ALL {
            let c = ScramCredential::new(m, "pw", 4096).unwrap();
            assert!(c.verify_password(m, "pw"));
            assert!(!c.verify_password(m, "pw "));
        }
        assert!(ScramCredential::new(Mechanism::Sha256, "pw", 100).is_err());
    }

    #[test]
    fn a_salted_password_makes_the_same_credential_as_the_password() {
        let salt = vec![7u8; 16];
        let direct = ScramCredential::with_salt(Mechanism::Sha512, "pw", salt.clone(), 4096);
        let salted = ScramCredential::salted_password(Mechanism::Sha512, "pw", &salt, 4096);
        let via = ScramCredential::from_salted_password(Mechanism::Sha512, &salted, salt, 4096);
        assert!(via == direct);
    }

    #[test]
    fn credentials_never_show_their_keys() {
        let c = ScramCredential::new(Mechanism::Sha512, "pw", 4096).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(&B64.encode(&c.stored_key)), "{shown}");
    }

    proptest::proptest! {
        /// Hostile bytes never panic either side.
        #[test]
        fn garbage_is_refused_not_panicked_on(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = ClientFirst::parse(&bytes);
            if let Ok(first) = ClientFirst::parse(b"n,,n=u,r=abc") {
                let server = ScramServer::start(Mechanism::Sha256, &first, None);
                proptest::prop_assert!(server.finish(&bytes).is_err());
            }
            let mut client = ScramClient::new(Mechanism::Sha256, "u", "p");
            let _ = client.client_final(&bytes);
            let _ = client.verify_server_final(&bytes);
        }
    }
}
