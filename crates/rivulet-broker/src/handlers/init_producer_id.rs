//! InitProducerId for idempotent producers: a fresh producer id, never reused across restarts.
//! Transactional ids are refused: this broker does not implement transactions.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use rivulet_log::Quoted;

use super::{Reply, RequestContext};
use crate::error::log_error_code;
use crate::logging::Kind;

pub(crate) fn handle(ctx: RequestContext, req: InitProducerIdRequest) -> Reply {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if req.transactional_id.is_some() {
        // The client id is the client's text: quoted (a `\n` in it forged log lines).
        match ctx.broker.warnings.allow(Kind::Unsupported) {
            Some(suppressed) => tracing::warn!(
                peer = %ctx.peer,
                client = %Quoted(&ctx.client_id()),
                suppressed,
                "transactional producer refused: transactions are not supported"
            ),
            None => {
                ctx.broker
                    .stats
                    .log_lines_suppressed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Reply::now(resp);
    }
    // An idempotent producer re-initialising with its id (KIP-360) simply gets a new id, which
    // is always safe: sequence state starts fresh for a new id.
    match ctx.broker.logs.allocate_producer_id() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!("cannot allocate producer id: {e}");
            resp.error_code = log_error_code(&e);
        }
    }
    Reply::now(resp)
}
