//! SASL/PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`. Kafka checks the password
//! against its configured users; Rivulet checks it against the SCRAM credential store, so one
//! `rivulet users add` serves both mechanisms and no password is stored.

use crate::AuthError;

/// Longest PLAIN message accepted (Kafka's usernames and passwords are far shorter).
pub const MAX_MESSAGE: usize = 1024;

/// A parsed PLAIN message. The password is never shown by `Debug`.
pub struct PlainMessage {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PlainMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainMessage")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PlainMessage {
    pub fn parse(msg: &[u8]) -> Result<PlainMessage, AuthError> {
        let bad = |what: &str| AuthError::Malformed(format!("PLAIN {what}"));
        if msg.len() > MAX_MESSAGE {
            return Err(bad("message too long"));
        }
        let parts: Vec<&[u8]> = msg.split(|b| *b == 0).collect();
        let [authzid, username, password] = parts.as_slice() else {
            return Err(bad("message must be authzid NUL username NUL password"));
        };
        let text = |b: &[u8], what: &str| {
            std::str::from_utf8(b)
                .map(str::to_string)
                .map_err(|_| bad(&format!("{what} is not UTF-8")))
        };
        let (authzid, username, password) = (
            text(authzid, "authorization id")?,
            text(username, "username")?,
            text(password, "password")?,
        );
        if username.is_empty() || password.is_empty() {
            return Err(bad("username and password must not be empty"));
        }
        if !authzid.is_empty() && authzid != username {
            return Err(AuthError::Failed(
                "PLAIN authorization id differs from the username".into(),
            ));
        }
        Ok(PlainMessage { username, password })
    }

    /// The message a client sends.
    pub fn encode(username: &str, password: &str) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(username.as_bytes());
        m.push(0);
        m.extend_from_slice(password.as_bytes());
        m
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let m = PlainMessage::parse(&PlainMessage::encode("alice", "pw")).unwrap();
        assert_eq!((m.username.as_str(), m.password.as_str()), ("alice", "pw"));
        assert!(!format!("{m:?}").contains("pw\""));
        assert!(PlainMessage::parse(b"alice\0alice\0pw").is_ok());
        assert!(matches!(
            PlainMessage::parse(b"bob\0alice\0pw"),
            Err(AuthError::Failed(_))
        ));
        assert!(PlainMessage::parse(b"\0alice").is_err());
        assert!(PlainMessage::parse(b"\0\0pw").is_err());
        assert!(PlainMessage::parse(b"\0a\0b\0c").is_err());
        assert!(PlainMessage::parse(&[0, 0xff, 0, 0x61]).is_err());
        assert!(PlainMessage::parse(&vec![b'a'; 2000]).is_err());
    }
}
