//! InitProducerId: a fresh producer id for an idempotent producer (never reused across
//! restarts); for a transactional producer, its transactional id's producer id with the epoch
//! bumped, fencing any older producer with the same id and aborting the transaction it left
//! open (`txn`). KIP-360 clients may pass their current producer id and epoch to bump it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use rivulet_log::Quoted;

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::error::log_error_code;
use crate::logging::Kind;
use crate::txn::{code_for, finish, InitStep};

/// Attempts when an open transaction has to be aborted first (each abort completes before the
/// next attempt, so a second one only happens if another producer raced this one).
const ATTEMPTS: usize = 3;

pub(crate) fn handle(ctx: RequestContext, req: InitProducerIdRequest) -> Reply {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    let Some(transactional_id) = req.transactional_id.as_ref().map(|t| t.to_string()) else {
        // An idempotent producer re-initialising with its id (KIP-360) simply gets a new id,
        // which is always safe: sequence state starts fresh for a new id.
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
        return Reply::now(resp);
    };
    if !ctx.allowed(
        crate::acl::Operation::Write,
        crate::acl::ResourceType::TransactionalId,
        &transactional_id,
    ) {
        resp.error_code =
            kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code();
        return Reply::now(resp);
    }
    let v = ctx.version();
    Reply::later(async move {
        let expected = (req.producer_id.0, req.producer_epoch);
        for _ in 0..ATTEMPTS {
            let broker = ctx.broker.clone();
            let id = transactional_id.clone();
            let timeout = req.transaction_timeout_ms;
            let step = blocking(move || {
                let allocate = || {
                    broker.logs.allocate_producer_id().map_err(|e| {
                        (
                            ResponseError::CoordinatorNotAvailable,
                            format!("cannot allocate a producer id: {e}"),
                        )
                    })
                };
                broker
                    .txns
                    .init_producer(&id, timeout, expected, &allocate, rivulet_time::now_ms())
            })
            .await;
            match step {
                Ok(Ok(InitStep::Ready(producer_id, epoch))) => {
                    resp.producer_id = ProducerId(producer_id);
                    resp.producer_epoch = epoch;
                    return resp;
                }
                Ok(Ok(InitStep::Abort(ending))) => {
                    tracing::info!(
                        transactional_id = %Quoted(&transactional_id),
                        producer_id = ending.producer_id,
                        "a new producer fences the old one: aborting its open transaction"
                    );
                    if let Err((error, msg)) = finish(&ctx.broker, ending).await {
                        tracing::warn!("aborting a fenced transaction failed: {msg}");
                        resp.error_code = error.code();
                        return resp;
                    }
                }
                Ok(Err((error, msg))) => {
                    // Client text (client id, transactional id) only through `Quoted`.
                    match ctx.broker.warnings.allow(Kind::RefusedProducer) {
                        Some(suppressed) => tracing::warn!(
                            peer = %ctx.peer,
                            client = %Quoted(&ctx.client_id()),
                            transactional_id = %Quoted(&transactional_id),
                            suppressed,
                            "transactional producer refused: {msg}"
                        ),
                        None => {
                            ctx.broker
                                .stats
                                .log_lines_suppressed
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    resp.error_code = code_for(error, v, 4);
                    return resp;
                }
                Err(e) => {
                    tracing::error!("{e}");
                    resp.error_code = ResponseError::UnknownServerError.code();
                    return resp;
                }
            }
        }
        resp.error_code = ResponseError::ConcurrentTransactions.code();
        resp
    })
}
