//! AddPartitionsToTxn (v0–3, the client's form): partitions join the producer's ongoing
//! transaction before it writes to them; the produce handler refuses transactional batches
//! for partitions that did not.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use rivulet_log::Quoted;

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::error::codes;
use crate::txn::code_for;

pub(crate) fn handle(ctx: RequestContext, req: AddPartitionsToTxnRequest) -> Reply {
    let v = ctx.version();
    let wanted: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let topics: Vec<_> = req
        .v3_and_below_topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions.clone()))
        .collect();
    // Refused: every partition answers the transactional id's error, or the topic's (and the
    // others OPERATION_NOT_ATTEMPTED), as Kafka does.
    use crate::acl::{Operation, ResourceType};
    let denied: Option<Vec<i16>> = if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.v3_and_below_transactional_id,
    ) {
        Some(vec![
            ResponseError::TransactionalIdAuthorizationFailed.code();
            wanted.len()
        ])
    } else if wanted
        .iter()
        .any(|(t, _)| !ctx.allowed(Operation::Write, ResourceType::Topic, t))
    {
        Some(
            wanted
                .iter()
                .map(|(t, _)| {
                    if ctx.allowed(Operation::Write, ResourceType::Topic, t) {
                        ResponseError::OperationNotAttempted.code()
                    } else {
                        ResponseError::TopicAuthorizationFailed.code()
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    Reply::later(async move {
        let broker = ctx.broker.clone();
        let id = req.v3_and_below_transactional_id.to_string();
        let (pid, epoch) = (
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
        );
        let parts = wanted.clone();
        let outcome = if let Some(d) = denied {
            Ok(Ok(d))
        } else {
            blocking(move || {
                let exists = |t: &str, p: i32| {
                    broker
                        .logs
                        .topic(t)
                        .is_some_and(|t| t.partition(p).is_some())
                };
                broker
                    .txns
                    .add_partitions(&id, pid, epoch, &parts, &exists, rivulet_time::now_ms())
            })
            .await
        };
        let codes: Vec<i16> = match outcome {
            Ok(Ok(codes)) => codes,
            Ok(Err((error, msg))) => {
                tracing::debug!(transactional_id = %Quoted(&req.v3_and_below_transactional_id), "AddPartitionsToTxn refused: {msg}");
                vec![code_for(error, v, 2); wanted.len()]
            }
            Err(e) => {
                tracing::error!("{e}");
                vec![codes::unknown_server_error(); wanted.len()]
            }
        };
        let mut resp = AddPartitionsToTxnResponse::default();
        let mut codes = codes.into_iter();
        for (name, partitions) in topics {
            let mut t = AddPartitionsToTxnTopicResult::default();
            t.name = name;
            for p in partitions {
                let mut r = AddPartitionsToTxnPartitionResult::default();
                r.partition_index = p;
                r.partition_error_code = codes.next().unwrap_or(0);
                t.results_by_partition.push(r);
            }
            resp.results_by_topic_v3_and_below.push(t);
        }
        resp
    })
}
