//! TxnOffsetCommit: a group's offsets committed inside a transaction (KIP-447: with the
//! consumer's generation, so a zombie of an older generation is refused). They are held by
//! the transaction coordinator and stored only when the transaction commits.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::error::codes;
use crate::txn::{code_for, PendingOffset};

pub(crate) fn handle(ctx: RequestContext, req: TxnOffsetCommitRequest) -> Reply {
    let v = ctx.version();
    use crate::acl::{Operation, ResourceType};
    let denied = if !ctx.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id) {
        Some(ResponseError::GroupAuthorizationFailed.code())
    } else if req
        .topics
        .iter()
        .any(|t| !ctx.allowed(Operation::Read, ResourceType::Topic, &t.name.0))
    {
        Some(ResponseError::TopicAuthorizationFailed.code())
    } else {
        None
    };
    if let Some(code) = denied {
        let mut resp = TxnOffsetCommitResponse::default();
        for t in &req.topics {
            let mut out = TxnOffsetCommitResponseTopic::default();
            out.name = t.name.clone();
            for p in &t.partitions {
                let mut r = TxnOffsetCommitResponsePartition::default();
                r.partition_index = p.partition_index;
                r.error_code = code;
                out.partitions.push(r);
            }
            resp.topics.push(out);
        }
        return Reply::now(resp);
    }
    Reply::later(async move {
        let broker = ctx.broker.clone();
        let group = req.group_id.to_string();
        let max_metadata = broker.groups.config().max_metadata_bytes;
        let mut offsets = Vec::new();
        // The response's shape, with each partition's own refusal (None: accepted).
        let mut shape: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
        let mut refusals: Vec<Vec<Option<i16>>> = Vec::new();
        for t in &req.topics {
            let topic = broker.logs.topic(&t.name.0);
            let mut out = TxnOffsetCommitResponseTopic::default();
            out.name = t.name.clone();
            let mut codes = Vec::new();
            for p in &t.partitions {
                let mut r = TxnOffsetCommitResponsePartition::default();
                r.partition_index = p.partition_index;
                out.partitions.push(r);
                let metadata = p.committed_metadata.as_deref().unwrap_or_default();
                if topic
                    .as_ref()
                    .is_none_or(|t| t.partition(p.partition_index).is_none())
                {
                    codes.push(Some(ResponseError::UnknownTopicOrPartition.code()));
                } else if metadata.len() > max_metadata {
                    codes.push(Some(ResponseError::OffsetMetadataTooLarge.code()));
                } else {
                    offsets.push(PendingOffset {
                        group: group.clone(),
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: metadata.to_string(),
                    });
                    codes.push(None);
                }
            }
            shape.push(out);
            refusals.push(codes);
        }
        let outcome = blocking(move || {
            if v >= 3 {
                broker
                    .groups
                    .validate_txn_commit(
                        &req.group_id,
                        &req.member_id,
                        req.group_instance_id.as_deref(),
                        req.generation_id,
                    )
                    .map_err(|e| (e, "the member or generation is not the group's".to_string()))?;
            }
            broker.txns.txn_offset_commit(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                offsets,
                rivulet_time::now_ms(),
            )
        })
        .await;
        let accepted = match outcome {
            Ok(Ok(())) => 0,
            Ok(Err((error, msg))) => {
                tracing::debug!("TxnOffsetCommit refused: {msg}");
                code_for(error, v, 3)
            }
            Err(e) => {
                tracing::error!("{e}");
                codes::unknown_server_error()
            }
        };
        for (t, codes) in shape.iter_mut().zip(refusals) {
            for (p, code) in t.partitions.iter_mut().zip(codes) {
                p.error_code = code.unwrap_or(accepted);
            }
        }
        let mut resp = TxnOffsetCommitResponse::default();
        resp.topics = shape;
        resp
    })
}
