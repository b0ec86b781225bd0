//! One client connection: read frames, dispatch, write responses in request order.
//!
//! Requests are pipelined: each handler does its ordered work (e.g. appending to the log) as
//! soon as its frame is decoded and returns a future for the rest (fsync, long-poll), so a
//! producer with several requests in flight shares fsyncs. Responses leave strictly in request
//! order, as the protocol requires. Malformed frames close this connection only.
//!
//! No client can hold the broker's memory or a connection slot for free:
//! - a connection with nothing in flight that sends nothing for `--connections-max-idle-ms` is
//!   closed;
//! - once the first bytes of a request arrive, the whole frame must arrive within
//!   `--request-timeout-ms` (a frame dribbled at a byte a second is closed);
//! - each frame larger than the read buffer ([`SMALL_FRAME`]) takes its size from the
//!   broker-wide `--queued-max-request-bytes` budget as soon as its length prefix is read —
//!   before the buffer grows for it — and gives it back when it is answered; while the budget is
//!   spent, this connection stops reading (and its request clock stops) until another request
//!   finishes. Smaller frames fit the buffer every connection has anyway, so they never wait:
//!   clients with ordinary requests are served while big ones queue;
//! - Fetch responses are written from their log slices through a 64 KiB buffer
//!   (`response.rs`), so a response's size costs no memory.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::messages::ApiKey;
use rivulet_log::Quoted;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use crate::auth::{SecurityProtocol, Session, SASL_MAX_RECEIVE};
use crate::codec::{self, CodecError, Decoded};
use crate::handlers::{self, Reply, RequestContext};
use crate::logging::Kind;
use crate::response::{Outgoing, Piece};
use crate::state::Broker;

/// Most requests one connection may have in flight before we stop reading from it.
const MAX_IN_FLIGHT: usize = 64;
/// Frames up to this size (the read buffer's initial capacity) need no budget.
const SMALL_FRAME: usize = 64 * 1024;
/// Log slices are copied to the socket through a buffer of this size.
const WRITE_CHUNK: usize = 64 * 1024;

type Pending = futures::future::BoxFuture<'static, Option<Result<Outgoing, CodecError>>>;
type PermitWait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// What reading the buffered bytes asks for next.
enum Next {
    /// More bytes.
    Read,
    /// This many bytes of the request budget first.
    Budget(u32),
}

struct Conn {
    broker: Arc<Broker>,
    peer: SocketAddr,
    /// What this connection's listener advertises.
    advertised: Arc<(String, u16)>,
    protocol: SecurityProtocol,
    session: Arc<Session>,
    buf: BytesMut,
    in_flight: FuturesOrdered<Pending>,
    /// Budget taken for the frame at the head of `buf`, once its length is known.
    head_permit: Option<OwnedSemaphorePermit>,
    /// When the first bytes of the incomplete frame at the head of `buf` were seen (`None`
    /// while the buffer is empty or the frame waits for budget).
    frame_started: Option<Instant>,
}

/// Serves one connection: a TCP stream, or a TLS stream over one, on a listener with
/// `protocol`.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    advertised: Arc<(String, u16)>,
    protocol: SecurityProtocol,
    session: Arc<Session>,
) {
    let shutdown = broker.shutdown.clone();
    let idle = broker.config.connections_max_idle;
    let request_timeout = broker.config.request_timeout;
    let (mut rd, wr) = tokio::io::split(stream);
    // Small responses coalesce in the buffer; large ones bypass it without a copy.
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut chunk: Vec<u8> = Vec::new();
    let mut conn = Conn {
        broker: broker.clone(),
        peer,
        advertised,
        protocol,
        session,
        buf: BytesMut::with_capacity(SMALL_FRAME),
        in_flight: FuturesOrdered::new(),
        head_permit: None,
        frame_started: None,
    };
    let mut reading = true;
    let mut waiting: Option<PermitWait> = None;
    let mut last_activity = Instant::now();
    loop {
        // The request clock runs only while this connection reads: not while the broker holds
        // reads back (too many requests in flight, or waiting for budget), nor once reading
        // ended (only answers to what arrived are left to send).
        if !reading || conn.in_flight.len() >= conn.max_in_flight() || waiting.is_some() {
            conn.frame_started = None;
        } else if conn.frame_started.is_none() && !conn.buf.is_empty() {
            // `drain` dispatches every complete frame, so what is left is a partial one.
            conn.frame_started = Some(Instant::now());
        }
        let deadline = match conn.frame_started {
            Some(t) => Some((t + request_timeout, false)),
            None if conn.in_flight.is_empty() && waiting.is_none() => {
                Some((last_activity + idle, true))
            }
            None => None,
        };
        let wake_at = deadline.map_or_else(|| Instant::now() + Duration::from_secs(3600), |d| d.0);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(resp) = conn.in_flight.next(), if !conn.in_flight.is_empty() => {
                let mut next = Some(resp);
                // Write this response and every following one that is already done, then flush once.
                while let Some(resp) = next.take() {
                    match resp {
                        Some(Ok(out)) => {
                            broker.stats.bytes_out.fetch_add(out.len(), Ordering::Relaxed);
                            if let Err(e) = write_out(&mut wr, out, &mut chunk).await {
                                if let Some(e) = e {
                                    tracing::error!(%peer, "closing connection: {e}");
                                }
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::error!(%peer, "closing connection: {e}");
                            return;
                        }
                        None => {}
                    }
                    next = conn.in_flight.next().now_or_never().flatten();
                }
                if wr.flush().await.is_err() {
                    break;
                }
                last_activity = Instant::now();
                if conn.session.failed() {
                    // Authentication failed: its answer is out, the connection ends (as in Kafka).
                    break;
                }
                if !reading && conn.in_flight.is_empty() {
                    break;
                }
                if reading && waiting.is_none() && conn.in_flight.is_empty() && !conn.buf.is_empty() {
                    // Frames that waited for an authentication step to be answered.
                    match conn.drain() {
                        Ok(Next::Read) => {}
                        Ok(Next::Budget(n)) => waiting = Some(conn.wait_for(n)),
                        Err(()) => break,
                    }
                }
            }
            permit = async {
                match waiting.as_mut() {
                    Some(w) => w.await,
                    None => std::future::pending().await,
                }
            }, if waiting.is_some() => {
                waiting = None;
                let Ok(permit) = permit else { break };
                conn.head_permit = Some(permit);
                conn.frame_started = Some(Instant::now());
                match conn.drain() {
                    Ok(Next::Read) => {}
                    Ok(Next::Budget(n)) => waiting = Some(conn.wait_for(n)),
                    Err(()) => {
                        reading = false;
                        if conn.in_flight.is_empty() {
                            break;
                        }
                    }
                }
            }
            n = rd.read_buf(&mut conn.buf), if reading && waiting.is_none() && conn.in_flight.len() < conn.max_in_flight() => {
                match n {
                    Ok(0) | Err(_) => {
                        reading = false;
                        if conn.in_flight.is_empty() {
                            break;
                        }
                        continue;
                    }
                    Ok(n) => {
                        broker.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        last_activity = Instant::now();
                    }
                }
                match conn.drain() {
                    Ok(Next::Read) => {}
                    Ok(Next::Budget(n)) => waiting = Some(conn.wait_for(n)),
                    Err(()) => reading = false,
                }
                if !reading && conn.in_flight.is_empty() {
                    break;
                }
            }
            _ = tokio::time::sleep_until(wake_at), if deadline.is_some() => {
                if deadline.is_some_and(|d| d.1) {
                    broker.stats.connections_idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
                } else {
                    broker.stats.request_timeouts.fetch_add(1, Ordering::Relaxed);
                    let expected = codec::peek_length(&conn.buf).map(|l| l + 4);
                    if let Some(suppressed) = broker.warnings.allow(Kind::SlowRequest) {
                        tracing::warn!(
                            %peer,
                            received = conn.buf.len(),
                            expected,
                            timeout_ms = request_timeout.as_millis() as u64,
                            suppressed,
                            "closing connection: request not complete in time"
                        );
                    } else {
                        broker.stats.log_lines_suppressed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

impl Conn {
    /// Requests in flight before reading stops: one at a time until authenticated.
    fn max_in_flight(&self) -> usize {
        if self.session.authenticated() {
            MAX_IN_FLIGHT
        } else {
            1
        }
    }

    /// Dispatches every complete frame in the buffer, taking each one's budget first.
    /// `Err(())`: the connection must close (counted and logged here).
    fn drain(&mut self) -> Result<Next, ()> {
        loop {
            let authenticated = self.session.authenticated();
            if !authenticated && !self.in_flight.is_empty() {
                // An authentication step is being answered; the next frame depends on it.
                return Ok(Next::Read);
            }
            let max_frame = if authenticated {
                self.broker.config.max_frame_bytes
            } else {
                SASL_MAX_RECEIVE.min(self.broker.config.max_frame_bytes)
            };
            let complete = match codec::frame_length(&self.buf, max_frame) {
                Ok(c) => c,
                Err(e) => {
                    let stats = &self.broker.stats;
                    if self.buf.starts_with(&[0x16, 0x03]) && !self.protocol.uses_tls() {
                        // A TLS ClientHello's first bytes read as a huge length.
                        stats.malformed_requests.fetch_add(1, Ordering::Relaxed);
                        self.warn(
                            Kind::MalformedRequest,
                            "closing connection: a TLS handshake on a listener without TLS \
                             (the client's security.protocol does not match the listener)",
                        );
                        return Err(());
                    }
                    if matches!(e, CodecError::FrameTooLarge { .. }) {
                        stats.oversize_frames.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.malformed_requests.fetch_add(1, Ordering::Relaxed);
                    }
                    self.warn_bad_request(&e);
                    return Err(());
                }
            };
            let Some(len) = codec::peek_length(&self.buf) else {
                // Not even the length prefix yet.
                if self.buf.is_empty() {
                    self.frame_started = None;
                } else {
                    self.frame_started.get_or_insert_with(Instant::now);
                }
                return Ok(Next::Read);
            };
            if self.head_permit.is_none() && 4 + len > SMALL_FRAME {
                // The body's size: at most max_frame_bytes (checked above), which the budget
                // is at least (BrokerConfig::validate), and a u32.
                let cost = u32::try_from(len).unwrap_or(u32::MAX);
                match self
                    .broker
                    .queued_bytes
                    .clone()
                    .try_acquire_many_owned(cost)
                {
                    Ok(p) => self.head_permit = Some(p),
                    Err(TryAcquireError::NoPermits) => {
                        // Reads pause, and so does this request's clock.
                        self.frame_started = None;
                        return Ok(Next::Budget(cost));
                    }
                    Err(TryAcquireError::Closed) => return Err(()),
                }
            }
            let Some(len) = complete else {
                self.frame_started.get_or_insert_with(Instant::now);
                // Room for the rest of a frame whose budget is taken, so it arrives in few reads.
                self.buf.reserve((4 + len).saturating_sub(self.buf.len()));
                return Ok(Next::Read);
            };
            let frame = self.buf.split_to(4 + len).freeze().slice(4..);
            let permit = self.head_permit.take();
            self.frame_started = None;
            if !authenticated {
                if self.session.expects_raw_token() {
                    // After SaslHandshake v0 the token comes bare and is answered bare.
                    let (broker, session, peer) =
                        (self.broker.clone(), self.session.clone(), self.peer);
                    self.in_flight.push_back(Box::pin(async move {
                        let out = handlers::sasl_exchange(&broker, &session, peer, frame).await;
                        drop(permit);
                        let bytes = out.unwrap_or_default();
                        let mut b = BytesMut::with_capacity(4 + bytes.len());
                        b.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                        b.extend_from_slice(&bytes);
                        Some(Ok(Outgoing::Frame(b)))
                    }));
                    continue;
                }
                let api = frame
                    .get(..2)
                    .and_then(|k| ApiKey::try_from(i16::from_be_bytes([k[0], k[1]])).ok());
                if !matches!(
                    api,
                    Some(ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
                ) {
                    self.broker
                        .stats
                        .unauthenticated_requests
                        .fetch_add(1, Ordering::Relaxed);
                    let what =
                        api.map_or_else(|| "an unknown request".to_string(), |a| format!("{a:?}"));
                    self.warn(
                        Kind::FailedAuthentication,
                        &format!("closing connection: {what} before SASL authentication"),
                    );
                    return Err(());
                }
            }
            match dispatch(
                &self.broker,
                frame,
                self.peer,
                &self.advertised,
                &self.session,
            ) {
                Ok(p) => self.in_flight.push_back(Box::pin(async move {
                    let out = p.await;
                    // The request's budget is back once it is answered.
                    drop(permit);
                    out
                })),
                Err(e) => {
                    self.broker
                        .stats
                        .malformed_requests
                        .fetch_add(1, Ordering::Relaxed);
                    self.warn_bad_request(&e);
                    return Err(());
                }
            }
        }
    }

    fn wait_for(&self, cost: u32) -> PermitWait {
        Box::pin(self.broker.queued_bytes.clone().acquire_many_owned(cost))
    }

    /// A rate-limited warning about this connection (no client-supplied text in `msg`).
    fn warn(&self, kind: Kind, msg: &str) {
        let broker = &self.broker;
        match broker.warnings.allow(kind) {
            Some(suppressed) => tracing::warn!(peer = %self.peer, suppressed, "{msg}"),
            None => {
                broker
                    .stats
                    .log_lines_suppressed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn warn_bad_request(&self, e: &CodecError) {
        let broker = &self.broker;
        match broker.warnings.allow(Kind::MalformedRequest) {
            Some(suppressed) => tracing::warn!(
                peer = %self.peer,
                suppressed,
                error = %Quoted(&e.to_string()),
                "closing connection after bad request"
            ),
            None => {
                broker
                    .stats
                    .log_lines_suppressed
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Writes one response. `Err(None)`: the peer went away; `Err(Some(e))`: a log slice could not
/// be read (the frame is cut, so the connection must close).
async fn write_out<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: Outgoing,
    chunk: &mut Vec<u8>,
) -> Result<(), Option<String>> {
    match out {
        Outgoing::Frame(bytes) => wr.write_all(&bytes).await.map_err(|_| None),
        Outgoing::Pieces(pieces) => {
            for piece in pieces {
                match piece {
                    Piece::Bytes(b) => wr.write_all(&b).await.map_err(|_| None)?,
                    Piece::Log(slice) => {
                        let mut done = 0u64;
                        while done < slice.len() {
                            let n = (slice.len() - done).min(WRITE_CHUNK as u64) as usize;
                            chunk.resize(n, 0);
                            // Page-cache reads, as the log's own reads are: not worth a thread hop.
                            slice
                                .read_at(done, &mut chunk[..n])
                                .map_err(|e| Some(format!("cannot read records to send: {e}")))?;
                            wr.write_all(&chunk[..n]).await.map_err(|_| None)?;
                            done += n as u64;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Decodes one frame and starts handling it.
fn dispatch(
    broker: &Arc<Broker>,
    frame: bytes::Bytes,
    peer: SocketAddr,
    advertised: &Arc<(String, u16)>,
    session: &Arc<Session>,
) -> Result<Pending, CodecError> {
    match codec::decode_request(frame)? {
        Decoded::UnsupportedVersion {
            api,
            version,
            correlation_id,
            frame,
        } => {
            if api == ApiKey::ApiVersions {
                tracing::debug!(%peer, version, "ApiVersions at unsupported version; sending v0 list");
                let resp = codec::api_versions_fallback(correlation_id).map(Outgoing::Frame);
                Ok(Box::pin(async move { Some(resp) }))
            } else if api == ApiKey::Produce && (0..3).contains(&version) {
                let resp = handlers::produce::unsupported_legacy(version, correlation_id, frame)
                    .map(Outgoing::Frame);
                Ok(Box::pin(async move { Some(resp) }))
            } else {
                Err(CodecError::Malformed {
                    api,
                    version,
                    reason: "unsupported version (see ApiVersions)".into(),
                })
            }
        }
        Decoded::Request { api, header, body } => {
            let version = header.request_api_version;
            let correlation_id = header.correlation_id;
            let ctx = RequestContext {
                broker: broker.clone(),
                header,
                peer,
                advertised: advertised.clone(),
                session: session.clone(),
            };
            let encode = move |resp| {
                codec::encode_response(api, version, correlation_id, &resp).map(Outgoing::Frame)
            };
            Ok(match handlers::handle(ctx, *body) {
                Reply::Now(resp) => {
                    let r = encode(*resp);
                    Box::pin(async move { Some(r) })
                }
                Reply::Later(fut) => Box::pin(async move { Some(encode(fut.await)) }),
                Reply::Encoded(fut) => Box::pin(async move { Some(fut.await) }),
                Reply::NoResponse => Box::pin(async move { None }),
            })
        }
    }
}
