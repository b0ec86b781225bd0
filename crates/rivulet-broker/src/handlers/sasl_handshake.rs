//! SaslHandshake v0–1: picks the connection's SASL mechanism (see `auth.rs`). v0 means the
//! tokens that follow are bare frames, v1 that they come in SaslAuthenticate requests.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::auth::HandshakeError;

pub(crate) fn handle(ctx: RequestContext, req: SaslHandshakeRequest) -> Reply {
    let enabled = &ctx.broker.config.sasl_mechanisms;
    let mut resp = SaslHandshakeResponse::default();
    resp.mechanisms = enabled
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    match ctx
        .session
        .handshake(&req.mechanism, enabled, ctx.version())
    {
        Ok(()) => {}
        Err(HandshakeError::IllegalState) => {
            resp.error_code = ResponseError::IllegalSaslState.code();
        }
        Err(HandshakeError::UnsupportedMechanism) => {
            ctx.broker.auth_failed(
                ctx.peer,
                &format!(
                    "unsupported SASL mechanism {}",
                    rivulet_log::Quoted(&req.mechanism)
                ),
            );
            resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
        }
    }
    Reply::now(resp)
}
