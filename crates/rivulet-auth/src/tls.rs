//! TLS configurations (rustls) from PEM files, for the broker's SSL and SASL_SSL listeners and
//! for clients, and the principal name a client certificate gives.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::AuthError;

fn invalid(path: &Path, what: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::Invalid(format!("{}: {what}: {e}", path.display()))
}

/// ring, not aws-lc-rs (which rustls now prefers for its post-quantum key exchange): aws-lc-rs
/// needs cmake and a long C build on every clean build; Kafka clients do not offer those
/// groups yet.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(path, "cannot read certificates", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(path, "not a PEM certificate file", e))?;
    if certs.is_empty() {
        return Err(invalid(
            path,
            "no certificate",
            "the file has no CERTIFICATE block",
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1). The error never contains the
/// key's bytes.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, AuthError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::Io(e) => invalid(path, "cannot read the key", e),
        _ => invalid(
            path,
            "no private key",
            "the file has no PEM private key block",
        ),
    })
}

fn roots(ca: &Path) -> Result<RootCertStore, AuthError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| invalid(ca, "not a usable CA certificate", e))?;
    }
    Ok(roots)
}

/// A server configuration: this certificate chain and key; with `client_ca`, clients must
/// present a certificate signed by one of its CAs (mutual TLS).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, AuthError> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Invalid(format!("TLS: {e}")))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| invalid(ca, "client CA", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(cert, "certificate and key do not go together", e))?;
    Ok(Arc::new(config))
}

/// Where Debian and most Linux distributions keep the system's CA bundle.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client configuration: servers verified against `ca` (the system bundle when `None`);
/// with `cert_key`, a client certificate for mutual TLS.
pub fn client_config(
    ca: Option<&Path>,
    cert_key: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, AuthError> {
    let roots = roots(ca.unwrap_or(Path::new(SYSTEM_CA_BUNDLE)))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match cert_key {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| invalid(cert, "client certificate and key do not go together", e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A certificate's subject as Kafka's default principal builder names it (RFC 2253 form, most
/// specific first: `CN=alice,OU=eng,O=Example`). `None` if the DER cannot be walked.
///
/// Written by hand: it is a short walk down fixed DER fields, and an X.509 parser crate would
/// add a dozen dependencies for it.
pub fn subject_name(cert_der: &[u8]) -> Option<String> {
    let (_, cert, _) = der(cert_der, 0x30)?;
    let (_, mut tbs, _) = der(cert, 0x30)?;
    // [0] EXPLICIT version, optional.
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs, 0xa0)?.2;
    }
    let tbs = der(tbs, 0x02)?.2; // serial number
    let tbs = der(tbs, 0x30)?.2; // signature algorithm
    let tbs = der(tbs, 0x30)?.2; // issuer
    let tbs = der(tbs, 0x30)?.2; // validity
    let (_, mut name, _) = der(tbs, 0x30)?; // subject
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (_, mut set, rest) = der(name, 0x31)?;
        name = rest;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (_, atv, rest) = der(set, 0x30)?;
            set = rest;
            let (_, oid, value) = der(atv, 0x06)?;
            let (tag, value, _) = der_any(value)?;
            let key = match oid {
                [0x55, 0x04, 0x03] => "CN".to_string(),
                [0x55, 0x04, 0x0b] => "OU".to_string(),
                [0x55, 0x04, 0x0a] => "O".to_string(),
                [0x55, 0x04, 0x07] => "L".to_string(),
                [0x55, 0x04, 0x08] => "ST".to_string(),
                [0x55, 0x04, 0x06] => "C".to_string(),
                [0x55, 0x04, 0x09] => "STREET".to_string(),
                [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".to_string(),
                [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".to_string(),
                _ => oid_text(oid)?,
            };
            // UTF8String, PrintableString, IA5String, T61String; others as #hex, as RFC 2253 says.
            let text = match tag {
                0x0c | 0x13 | 0x16 | 0x14 => escape(std::str::from_utf8(value).ok()?),
                _ => {
                    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                    format!("#{hex}")
                }
            };
            parts.push(format!("{key}={text}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == s.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        if c.is_control() {
            out.push_str(&format!("\\{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn oid_text(oid: &[u8]) -> Option<String> {
    let first = *oid.first()?;
    let mut parts = vec![(first / 40) as u64, (first % 40) as u64];
    let mut v: u64 = 0;
    for b in &oid[1..] {
        v = v.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            parts.push(v);
            v = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// One DER element with the expected tag: (tag, content, rest).
fn der(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    let r = der_any(input)?;
    (r.0 == tag).then_some(r)
}

fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((tag, input.get(header..end)?, input.get(end..)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_as_kafka_shows_them() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_name(cert.der()).as_deref(),
            Some("CN=alice,O=Example\\, Inc")
        );
        assert_eq!(subject_name(b"\x30\x03\x30\x01"), None);
        assert_eq!(subject_name(b""), None);
    }

    #[test]
    fn pem_files_load_or_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k, junk) = (
            dir.path().join("c.pem"),
            dir.path().join("k.pem"),
            dir.path().join("j.pem"),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&junk, "hello").unwrap();
        server_config(&c, &k, None).unwrap();
        server_config(&c, &k, Some(&c)).unwrap();
        client_config(Some(&c), Some((&c, &k))).unwrap();
        let e = server_config(&c, &junk, None).unwrap_err().to_string();
        assert!(e.contains("j.pem") && e.contains("no private key"), "{e}");
        let e = server_config(&junk, &k, None).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        let e = server_config(&dir.path().join("missing.pem"), &k, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
        // The key's text never appears in an error.
        let e = server_config(&k, &k, None).unwrap_err().to_string();
        assert!(!e.contains("PRIVATE KEY-----\n"), "{e}");
    }
}
