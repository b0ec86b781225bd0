//! SaslAuthenticate v0–2: one token of the connection's SASL exchange (see `auth.rs`), run on
//! the blocking pool (PLAIN derives the salted password). A failure is answered with
//! SASL_AUTHENTICATION_FAILED after the address's back-off, and the connection then closes.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use std::net::SocketAddr;
use std::sync::Arc;

use super::{Reply, RequestContext};
use crate::auth::{Session, TokenOutcome};
use crate::state::Broker;

pub(crate) fn handle(ctx: RequestContext, req: SaslAuthenticateRequest) -> Reply {
    let mut resp = SaslAuthenticateResponse::default();
    if ctx.session.authenticated() {
        // A listener without SASL, or a second authentication (re-authentication, KIP-368, is
        // not offered: the session lifetime is 0, unlimited).
        resp.error_code = ResponseError::IllegalSaslState.code();
        return Reply::now(resp);
    }
    Reply::later(async move {
        match exchange(&ctx.broker, &ctx.session, ctx.peer, req.auth_bytes).await {
            Ok(bytes) => resp.auth_bytes = Bytes::from(bytes),
            Err(mechanism) => {
                resp.error_code = ResponseError::SaslAuthenticationFailed.code();
                // Kafka's wording; it names no user and no secret.
                resp.error_message = Some(StrBytes::from_string(format!(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
                )));
            }
        }
        resp
    })
}

/// Runs one token through the session; on failure waits out the address's back-off and returns
/// the mechanism's name for the error message. Shared with the bare-token form of SaslHandshake
/// v0 (`connection.rs`).
pub(crate) async fn exchange(
    broker: &Arc<Broker>,
    session: &Arc<Session>,
    peer: SocketAddr,
    token: Bytes,
) -> Result<Vec<u8>, &'static str> {
    let mechanism = session.mechanism_name();
    let (b, s) = (broker.clone(), session.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        s.token(
            &token,
            |user, m| b.scram_credential(user, m),
            |user, password| b.verify_plain(user, password),
        )
    })
    .await
    .unwrap_or_else(|e| TokenOutcome::Failed {
        reason: format!("authentication task failed: {e}"),
    });
    match outcome {
        TokenOutcome::Continue(bytes) => Ok(bytes),
        TokenOutcome::Done(bytes) => {
            broker.auth_succeeded(peer, &session.principal());
            Ok(bytes)
        }
        TokenOutcome::Failed { reason } => {
            let delay = broker.auth_failed(peer, &reason);
            tokio::time::sleep(delay).await;
            Err(if mechanism.is_empty() {
                "(none)"
            } else {
                mechanism
            })
        }
    }
}
