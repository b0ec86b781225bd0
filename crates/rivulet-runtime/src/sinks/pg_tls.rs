//! TLS for the PostgreSQL sink, as libpq users write it in the connection string: `sslmode`
//! (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert=FILE`,
//! in the URL's query or the `key=value` form. The `postgres` crate knows only disable, prefer
//! and require and no root certificate, so the two are taken out of the string here and become
//! a rustls connector (`tokio-postgres`'s `MakeTlsConnect`, written here because the crates
//! that provide one pull other rustls crypto back-ends or versions).
//!
//! As in libpq: `prefer`/`allow`/`require` encrypt without checking the certificate — unless
//! `sslrootcert` is given, when `require` checks it as `verify-ca` does; `verify-ca` checks the
//! chain against `sslrootcert` (else the system's CA bundle), `verify-full` the host name too.
//! Without `sslmode` nothing changes: plaintext, as before.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl PgSslMode {
    fn parse(s: &str) -> Result<PgSslMode, String> {
        Ok(match s {
            "disable" => PgSslMode::Disable,
            "allow" => PgSslMode::Allow,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{}` is not disable, allow, prefer, require, verify-ca or verify-full",
                    other.escape_debug()
                ))
            }
        })
    }
}

/// The TLS settings of a connection string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgTlsSettings {
    pub mode: Option<PgSslMode>,
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL or `key=value` form):
/// the string without them, and their values.
pub fn split_tls(conn: &str) -> Result<(String, PgTlsSettings), String> {
    let mut settings = PgTlsSettings::default();
    let mut take = |k: &str, v: &str| -> Result<bool, String> {
        match k {
            "sslmode" => settings.mode = Some(PgSslMode::parse(v)?),
            "sslrootcert" => settings.root_cert = Some(PathBuf::from(v)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if conn.contains("://") {
        match conn.split_once('?') {
            None => conn.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    if !take(k, &percent_decode(v))? {
                        kept.push(kv);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for kv in conn.split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if !take(k.trim(), v.trim_matches('\''))? {
                kept.push(kv);
            }
        }
        kept.join(" ")
    };
    if settings.root_cert.is_some() && settings.mode.is_none() {
        // libpq's default is prefer; with a root certificate given, check it.
        settings.mode = Some(PgSslMode::VerifyCa);
    }
    Ok((rest, settings))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(h)) => match std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How to connect: the `postgres` crate's mode and, unless plaintext, the connector.
pub struct PgTls {
    pub ssl_mode: SslMode,
    pub connector: Option<MakeRustls>,
}

impl PgTlsSettings {
    /// The connector these settings ask for; `None` mode keeps today's plaintext.
    pub fn build(&self) -> Result<PgTls, String> {
        let Some(mode) = self.mode else {
            return Ok(PgTls {
                ssl_mode: SslMode::Disable,
                connector: None,
            });
        };
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = || -> Result<Arc<rustls::RootCertStore>, String> {
            let path = self
                .root_cert
                .clone()
                .unwrap_or_else(|| PathBuf::from(rivulet_auth::tls::SYSTEM_CA_BUNDLE));
            let mut store = rustls::RootCertStore::empty();
            for c in
                rivulet_auth::tls::load_certs(&path).map_err(|e| format!("sslrootcert: {e}"))?
            {
                store
                    .add(c)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            Ok(Arc::new(store))
        };
        let (ssl_mode, check) = match mode {
            PgSslMode::Disable => {
                return Ok(PgTls {
                    ssl_mode: SslMode::Disable,
                    connector: None,
                })
            }
            PgSslMode::Allow | PgSslMode::Prefer => (SslMode::Prefer, Check::Nothing),
            PgSslMode::Require if self.root_cert.is_none() => (SslMode::Require, Check::Nothing),
            PgSslMode::Require | PgSslMode::VerifyCa => (SslMode::Require, Check::Chain),
            PgSslMode::VerifyFull => (SslMode::Require, Check::Full),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let config = match check {
            Check::Full => builder
                .with_root_certificates(roots()?)
                .with_no_client_auth(),
            Check::Chain | Check::Nothing => {
                let inner = match check {
                    Check::Chain => Some(
                        WebPkiServerVerifier::builder_with_provider(roots()?, provider.clone())
                            .build()
                            .map_err(|e| format!("TLS: {e}"))?,
                    ),
                    _ => None,
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(LibpqVerifier { inner, provider }))
                    .with_no_client_auth()
            }
        };
        Ok(PgTls {
            ssl_mode,
            connector: Some(MakeRustls(Arc::new(config))),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encryption only (libpq's require without a root certificate, prefer, allow).
    Nothing,
    /// The chain, not the host name (verify-ca).
    Chain,
    /// Chain and host name (verify-full): rustls' own verifier.
    Full,
}

/// libpq's weaker modes: the chain only, or nothing; handshake signatures always checked.
#[derive(Debug)]
struct LibpqVerifier {
    /// The chain check of verify-ca; `None`: no check (encryption only).
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls connector for the `postgres` crate.
#[derive(Clone)]
pub struct MakeRustls(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(s))
        })
    }
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM-SHA-256 without channel binding (-PLUS), as libpq does unless asked.
        ChannelBinding::none()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_come_out_of_both_forms() {
        let (rest, s) = split_tls(
            "postgres://u:p@h:5432/db?table=t&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?table=t");
        assert_eq!(s.mode, Some(PgSslMode::VerifyFull));
        assert_eq!(s.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        let (rest, s) = split_tls("host=h user=u sslmode=require dbname=d").unwrap();
        assert_eq!(rest, "host=h user=u dbname=d");
        assert_eq!(s.mode, Some(PgSslMode::Require));
        let (rest, s) = split_tls("postgres://u@h/db").unwrap();
        assert_eq!(
            (rest.as_str(), s),
            ("postgres://u@h/db", PgTlsSettings::default())
        );
        let (_, s) = split_tls("postgres://u@h/db?sslrootcert=/ca.pem").unwrap();
        assert_eq!(s.mode, Some(PgSslMode::VerifyCa));
        let e = split_tls("postgres://u@h/db?sslmode=verify").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
        assert!(PgTlsSettings::default()
            .build()
            .unwrap()
            .connector
            .is_none());
        let e = PgTlsSettings {
            mode: Some(PgSslMode::VerifyFull),
            root_cert: Some("/nonexistent/ca.pem".into()),
        }
        .build()
        .err()
        .unwrap();
        assert!(e.contains("ca.pem"), "{e}");
    }
}
