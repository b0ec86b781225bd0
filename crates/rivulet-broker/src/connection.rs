//! One client connection: read frames, dispatch, write responses in request order.
//!
//! Requests are pipelined: each handler does its ordered work (e.g. appending to the log) as
//! soon as its frame is decoded and returns a future for the rest (fsync, long-poll), so a
//! producer with several requests in flight shares fsyncs. Responses leave strictly in request
//! order, as the protocol requires. Malformed frames close this connection only.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

use crate::codec::{self, CodecError, Decoded};
use crate::handlers::{self, Reply, RequestContext};
use crate::state::Broker;

/// Most requests one connection may have in flight before we stop reading from it.
const MAX_IN_FLIGHT: usize = 64;

type Pending = futures::future::BoxFuture<'static, Option<Result<BytesMut, CodecError>>>;

pub(crate) async fn serve(broker: Arc<Broker>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let shutdown = broker.shutdown.clone();
    let max_frame = broker.config.max_frame_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let (mut rd, wr) = stream.split();
    // Small responses coalesce in the buffer; large ones (fetches) bypass it without a copy.
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(resp) = in_flight.next(), if !in_flight.is_empty() => {
                let mut next = Some(resp);
                // Write this response and every following one that is already done, then flush once.
                while let Some(resp) = next.take() {
                    match resp {
                        Some(Ok(bytes)) => {
                            broker.stats.bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            if wr.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::error!(%peer, "closing connection: {e}");
                            return;
                        }
                        None => {}
                    }
                    next = in_flight.next().now_or_never().flatten();
                }
                if wr.flush().await.is_err() {
                    break;
                }
                if !reading && in_flight.is_empty() {
                    break;
                }
            }
            n = rd.read_buf(&mut buf), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                match n {
                    Ok(0) | Err(_) => {
                        reading = false;
                        if in_flight.is_empty() {
                            break;
                        }
                        continue;
                    }
                    Ok(_) => {}
                }
                loop {
                    match codec::frame_length(&buf, max_frame) {
                        Ok(Some(len)) => {
                            let frame = buf.split_to(4 + len).freeze().slice(4..);
                            match dispatch(&broker, frame, peer) {
                                Ok(p) => in_flight.push_back(p),
                                Err(e) => {
                                    broker.stats.malformed_requests.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(%peer, "closing connection after bad request: {e}");
                                    reading = false;
                                    break;
                                }
                            }
                        }
                        Ok(None) => {
                            // Reserve for the rest of an acceptable frame so it arrives in few reads.
                            if let Some(len) = codec::peek_length(&buf) {
                                buf.reserve((4 + len).saturating_sub(buf.len()));
                            }
                            break;
                        }
                        Err(e) => {
                            if matches!(e, CodecError::FrameTooLarge { .. }) {
                                broker.stats.oversize_frames.fetch_add(1, Ordering::Relaxed);
                            } else {
                                broker.stats.malformed_requests.fetch_add(1, Ordering::Relaxed);
                            }
                            tracing::warn!(%peer, "closing connection: {e}");
                            reading = false;
                            break;
                        }
                    }
                }
                if !reading && in_flight.is_empty() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// Decodes one frame and starts handling it.
fn dispatch(
    broker: &Arc<Broker>,
    frame: bytes::Bytes,
    peer: SocketAddr,
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
                let resp = codec::api_versions_fallback(correlation_id);
                Ok(Box::pin(async move { Some(resp) }))
            } else if api == ApiKey::Produce && (0..3).contains(&version) {
                let resp = handlers::produce::unsupported_legacy(version, correlation_id, frame);
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
            };
            let encode = move |resp| codec::encode_response(api, version, correlation_id, &resp);
            Ok(match handlers::handle(ctx, *body) {
                Reply::Now(resp) => {
                    let r = encode(*resp);
                    Box::pin(async move { Some(r) })
                }
                Reply::Later(fut) => Box::pin(async move { Some(encode(fut.await)) }),
                Reply::NoResponse => Box::pin(async move { None }),
            })
        }
    }
}
