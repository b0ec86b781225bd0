//! AddOffsetsToTxn: the group whose offsets the producer will commit with TxnOffsetCommit
//! joins its ongoing transaction.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::error::codes;
use crate::txn::code_for;

pub(crate) fn handle(ctx: RequestContext, req: AddOffsetsToTxnRequest) -> Reply {
    let v = ctx.version();
    use crate::acl::{Operation, ResourceType};
    let denied = if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        Some(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code())
    } else {
        None
    };
    if let Some(code) = denied {
        let mut resp = AddOffsetsToTxnResponse::default();
        resp.error_code = code;
        return Reply::now(resp);
    }
    Reply::later(async move {
        let broker = ctx.broker.clone();
        let outcome = blocking(move || {
            broker.txns.add_offsets(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &req.group_id,
                rivulet_time::now_ms(),
            )
        })
        .await;
        let mut resp = AddOffsetsToTxnResponse::default();
        resp.error_code = match outcome {
            Ok(Ok(())) => 0,
            Ok(Err((error, msg))) => {
                tracing::debug!("AddOffsetsToTxn refused: {msg}");
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
