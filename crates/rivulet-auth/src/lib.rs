//! Security parts shared by the broker (`rivulet-broker`) and the clients (`rivulet-client`):
//!
//! - [`acl`]: Kafka's ACL model (resource types, operations, bindings, filters);
//! - [`scram`]: SASL SCRAM-SHA-256/512, server and client sides, and the salted, iterated
//!   credentials the broker stores instead of passwords;
//! - [`client`]: the client side for Rivulet's own Kafka clients: TLS and SASL settings from Kafka
//!   client properties, the SASL exchange;
//! - [`plain`]: SASL/PLAIN messages, checked against those same credentials;
//! - [`store`]: the credential store file in the broker's data directory, which both the broker
//!   and the offline `rivulet users add --data-dir` write;
//! - [`tls`]: rustls configurations from PEM files, and the principal a client certificate
//!   names.
//!
//! Nothing here does I/O on sockets: the broker's connection code and the native client drive
//! these state machines with the bytes of SaslAuthenticate requests and responses.

pub mod acl;
pub mod client;
pub mod plain;
pub mod scram;
pub mod store;
pub mod tls;

pub use scram::{Mechanism, ScramCredential};
pub use store::CredentialStore;

/// Errors of this crate. Messages never contain a password, a key or a client's raw bytes.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The peer sent something that is not a valid message of the mechanism.
    #[error("malformed authentication message: {0}")]
    Malformed(String),
    /// Well-formed, but the credentials do not match.
    #[error("authentication failed: {0}")]
    Failed(String),
    /// A setting or a file's content is not acceptable.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}
