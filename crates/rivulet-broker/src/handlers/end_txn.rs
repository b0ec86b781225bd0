//! EndTxn: commit or abort the producer's transaction. The coordinator stores Prepare, the
//! markers go to every partition of the transaction, a commit's group offsets are stored, and
//! the answer waits for all of it (`txn::finish`), so once a producer's commit returns, a
//! read_committed consumer sees the whole transaction.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use rivulet_log::Quoted;

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::error::codes;
use crate::txn::{code_for, finish};

pub(crate) fn handle(ctx: RequestContext, req: EndTxnRequest) -> Reply {
    let v = ctx.version();
    if !ctx.allowed(
        crate::acl::Operation::Write,
        crate::acl::ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        let mut resp = EndTxnResponse::default();
        resp.error_code =
            kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code();
        return Reply::now(resp);
    }
    Reply::later(async move {
        let broker = ctx.broker.clone();
        let id = req.transactional_id.to_string();
        let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
        let outcome = blocking(move || {
            broker
                .txns
                .end(&id, pid, epoch, commit, rivulet_time::now_ms())
        })
        .await;
        let mut resp = EndTxnResponse::default();
        resp.error_code = match outcome {
            Ok(Ok(None)) => 0,
            Ok(Ok(Some(ending))) => match finish(&ctx.broker, ending).await {
                Ok(()) => 0,
                Err((error, msg)) => {
                    tracing::warn!(transactional_id = %Quoted(&req.transactional_id), "ending a transaction failed: {msg}");
                    error.code()
                }
            },
            Ok(Err((error, msg))) => {
                tracing::debug!(transactional_id = %Quoted(&req.transactional_id), "EndTxn refused: {msg}");
                code_for(error, v, 2)
            }
            Err(e) => {
                tracing::error!("{e}");
                codes::unknown_server_error()
            }
        };
        resp
    })
}
