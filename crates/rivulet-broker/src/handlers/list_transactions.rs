//! ListTransactions (KIP-664): transactional ids, filtered by state, producer id and (v1) by
//! how long their transaction has been running.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::txn::TxnState;

const STATES: [TxnState; 6] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
];

pub(crate) fn handle(ctx: RequestContext, req: ListTransactionsRequest) -> Reply {
    let now = rivulet_time::now_ms();
    let mut resp = ListTransactionsResponse::default();
    resp.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    for (id, meta) in ctx.broker.txns.snapshot() {
        let state_ok = req.state_filters.is_empty()
            || req
                .state_filters
                .iter()
                .any(|f| f.as_str() == meta.state.name());
        let producer_ok = req.producer_id_filters.is_empty()
            || req
                .producer_id_filters
                .contains(&ProducerId(meta.producer_id));
        // v1: only transactions running longer than the filter (-1: no filter).
        let duration_ok = req.duration_filter < 0
            || (meta.state == TxnState::Ongoing
                && now.saturating_sub(meta.started_ms) > req.duration_filter);
        let allowed = ctx.allowed(
            crate::acl::Operation::Describe,
            crate::acl::ResourceType::TransactionalId,
            &id,
        );
        if state_ok && producer_ok && duration_ok && allowed {
            let mut s = TransactionState::default();
            s.transactional_id = TransactionalId(StrBytes::from_string(id));
            s.producer_id = ProducerId(meta.producer_id);
            s.transaction_state = StrBytes::from_static_str(meta.state.name());
            resp.transaction_states.push(s);
        }
    }
    Reply::now(resp)
}
