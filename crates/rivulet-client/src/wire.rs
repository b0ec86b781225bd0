//! The Kafka protocol spoken directly: `kafka-protocol`'s codecs over a TCP stream. For what
//! librdkafka's admin API does not offer (DescribeTransactions, ListTransactions,
//! FindCoordinator for transactional ids) and for the benches' raw client, which must not pay
//! for a full client.
//!
//! Framing is a 4-byte length, the request header, the body; a response's length is checked
//! against a limit before anything is allocated for it, and every wait is bounded. TLS
//! (rustls) and SASL PLAIN/SCRAM come from the connection's client properties
//! ([`rivulet_auth::client::ClientSecurity`]).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rivulet_auth::client::{ClientSecurity, SaslClient};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::ClientError;

/// Largest response frame an admin call accepts.
const MAX_ADMIN_RESPONSE_BYTES: usize = 64 << 20;

/// Appends `4-byte length + request header` for a request whose body is `body_len` bytes.
pub fn put_header(
    buf: &mut BytesMut,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    body_len: usize,
) -> Result<(), ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let hv = key.request_header_version(version);
    let header_len = header
        .compute_size(hv)
        .map_err(|e| ClientError::Protocol(format!("encoding a request header: {e}")))?;
    let len = i32::try_from(header_len + body_len)
        .map_err(|_| ClientError::Protocol(format!("request of {body_len} bytes is too large")))?;
    buf.put_i32(len);
    header
        .encode(buf, hv)
        .map_err(|e| ClientError::Protocol(format!("encoding a request header: {e}")))
}

/// Reads one length-prefixed frame into `buf` (reusing its allocation) without zeroing it;
/// frames over `max` bytes are refused before they are read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, ClientError> {
    let mut len = [0u8; 4];
    tokio::time::timeout_at(deadline, r.read_exact(&mut len))
        .await
        .map_err(|_| ClientError::Timeout("waiting for a response".into()))?
        .map_err(|source| ClientError::Io {
            context: "reading a response length".into(),
            source,
        })?;
    let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(0);
    if len < 4 || len > max {
        return Err(ClientError::Protocol(format!(
            "response frame of {len} bytes (expected 4..={max})"
        )));
    }
    buf.clear();
    buf.reserve(len);
    // Each round reads at least one byte, so this runs at most `len` times.
    while buf.len() < len {
        let want = (len - buf.len()) as u64;
        let n = tokio::time::timeout_at(deadline, (&mut *r).take(want).read_buf(buf))
            .await
            .map_err(|_| ClientError::Timeout("reading a response".into()))?
            .map_err(|source| ClientError::Io {
                context: "reading a response".into(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "the broker closed the connection mid-response".into(),
            ));
        }
    }
    Ok(buf.split().freeze())
}

/// Decodes the response header of `key`/`version` and checks its correlation id.
pub fn take_header(
    frame: &mut Bytes,
    key: ApiKey,
    version: i16,
    expected: i32,
) -> Result<(), ClientError> {
    let header =
        ResponseHeader::decode(frame, key.response_header_version(version)).map_err(|e| {
            ClientError::Decode {
                what: "a response header".into(),
                reason: e.to_string(),
            }
        })?;
    if header.correlation_id != expected {
        return Err(ClientError::Protocol(format!(
            "response correlation id {} where {expected} was expected",
            header.correlation_id
        )));
    }
    Ok(())
}

/// A connection to the first reachable bootstrap server of `brokers`, with TLS and SASL as its
/// client properties say.
pub async fn connect_any(
    brokers: &crate::KafkaConnection,
    timeout: Duration,
) -> Result<WireClient, ClientError> {
    let security = ClientSecurity::from_properties(&brokers.properties)
        .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    let mut last = None;
    let servers = brokers.bootstrap_servers.as_str();
    for addr in servers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match WireClient::connect_with(addr, timeout, &security).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::InvalidArgument("no bootstrap servers".into())))
}

/// A plaintext or TLS stream.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to one broker, one request at a time.
pub struct WireClient {
    stream: Box<dyn Io>,
    addr: String,
    next_id: i32,
    buf: BytesMut,
    timeout: Duration,
}

impl WireClient {
    /// Connects to `addr` (`host:port`) in plaintext; each later call may take up to
    /// `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<WireClient, ClientError> {
        Self::connect_with(addr, timeout, &ClientSecurity::default()).await
    }

    /// Connects to `addr` with TLS and SASL as `security` says (handshake and authentication
    /// bounded by `timeout` each step).
    pub async fn connect_with(
        addr: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<WireClient, ClientError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(format!("connecting to {addr}")))?
            .map_err(|source| ClientError::Io {
                context: format!("connecting to {addr}"),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &security.tls {
            None => Box::new(tcp),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = ClientSecurity::server_name(host)
                    .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone());
                let s = tokio::time::timeout(timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| ClientError::Timeout(format!("TLS handshake with {addr}")))?
                    .map_err(|source| ClientError::Io {
                        context: format!("TLS handshake with {addr}"),
                        source,
                    })?;
                Box::new(s)
            }
        };
        let mut client = WireClient {
            stream,
            addr: addr.to_string(),
            next_id: 1,
            buf: BytesMut::new(),
            timeout,
        };
        if let Some(creds) = &security.sasl {
            client.authenticate(creds).await?;
        }
        Ok(client)
    }

    /// SaslHandshake v1, then SaslAuthenticate v1 until the mechanism is done.
    async fn authenticate(
        &mut self,
        creds: &rivulet_auth::client::SaslCredentials,
    ) -> Result<(), ClientError> {
        let mut sasl = SaslClient::new(creds);
        let mut hs = SaslHandshakeRequest::default();
        hs.mechanism = StrBytes::from_string(sasl.mechanism().to_string());
        let r: SaslHandshakeResponse = self.call(ApiKey::SaslHandshake, 1, &hs).await?;
        let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        sasl.on_handshake(&self.addr, r.error_code, &offered)
            .map_err(ClientError::InvalidArgument)?;
        let mut token = Some(sasl.first());
        for _ in 0..SaslClient::MAX_ROUNDS {
            let Some(t) = token.take() else {
                return Ok(());
            };
            let mut req = SaslAuthenticateRequest::default();
            req.auth_bytes = Bytes::from(t);
            let r: SaslAuthenticateResponse = self.call(ApiKey::SaslAuthenticate, 1, &req).await?;
            token = sasl
                .on_authenticate(
                    &self.addr,
                    r.error_code,
                    r.error_message.as_deref(),
                    &r.auth_bytes,
                )
                .map_err(ClientError::InvalidArgument)?;
        }
        Err(ClientError::Protocol(format!(
            "SASL with {} did not end after three rounds",
            self.addr
        )))
    }

    /// The broker this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` as `key`/`version` and decodes the answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let body_len = req
            .compute_size(version)
            .map_err(|e| ClientError::Protocol(format!("encoding a {key:?} request: {e}")))?;
        let mut out = BytesMut::with_capacity(body_len + 64);
        put_header(&mut out, key, version, id, "rivulet-admin", body_len)?;
        req.encode(&mut out, version)
            .map_err(|e| ClientError::Protocol(format!("encoding a {key:?} request: {e}")))?;
        let deadline = Instant::now() + self.timeout;
        tokio::time::timeout_at(deadline, self.stream.write_all(&out))
            .await
            .map_err(|_| ClientError::Timeout(format!("sending a {key:?} request")))?
            .map_err(|source| ClientError::Io {
                context: format!("sending a {key:?} request to {}", self.addr),
                source,
            })?;
        let mut frame = read_frame(
            &mut self.stream,
            &mut self.buf,
            MAX_ADMIN_RESPONSE_BYTES,
            deadline,
        )
        .await?;
        take_header(&mut frame, key, version, id)?;
        Resp::decode(&mut frame, version).map_err(|e| ClientError::Decode {
            what: format!("a {key:?} response from {}", self.addr),
            reason: e.to_string(),
        })
    }
}
