//! DescribeTransactions (KIP-664): each transactional id's state, producer, timeout, start
//! time and partitions; unknown ids get TRANSACTIONAL_ID_NOT_FOUND.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: DescribeTransactionsRequest) -> Reply {
    let all = ctx.broker.txns.snapshot();
    let mut resp = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let mut s = TransactionState::default();
        let allowed = ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::TransactionalId,
            &id,
        );
        match all.get(id.as_str()).filter(|_| allowed) {
            None => {
                s.error_code = if allowed {
                    ResponseError::TransactionalIdNotFound.code()
                } else {
                    ResponseError::TransactionalIdAuthorizationFailed.code()
                };
                s.producer_id = ProducerId(-1);
                s.producer_epoch = -1;
                s.transaction_start_time_ms = -1;
                s.transaction_state = StrBytes::from_static_str("");
            }
            Some(meta) => {
                s.transaction_state = StrBytes::from_static_str(meta.state.name());
                s.transaction_timeout_ms = meta.timeout_ms;
                s.transaction_start_time_ms = meta.started_ms;
                s.producer_id = ProducerId(meta.producer_id);
                s.producer_epoch = meta.epoch;
                let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (t, p) in &meta.partitions {
                    topics.entry(t.as_str()).or_default().push(*p);
                }
                s.topics = topics
                    .into_iter()
                    .map(|(t, partitions)| {
                        let mut d = TopicData::default();
                        d.topic = TopicName(StrBytes::from_string(t.to_string()));
                        d.partitions = partitions;
                        d
                    })
                    .collect();
            }
        }
        s.transactional_id = id;
        resp.transaction_states.push(s);
    }
    Reply::now(resp)
}
