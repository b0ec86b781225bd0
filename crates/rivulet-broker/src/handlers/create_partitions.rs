//! CreatePartitions: grow a topic's partition count.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) fn handle(ctx: RequestContext, req: CreatePartitionsRequest) -> Reply {
    let mut resp = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        let result = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                ResponseError::InvalidReplicaAssignment.code(),
                "manual replica assignment is not supported on a single node".to_string(),
            ))
        } else {
            ctx.broker
                .logs
                .create_partitions(&t.name.0, t.count, req.validate_only)
                .map_err(|e| (log_error_code(&e), e.to_string()))
        };
        if let Err((code, msg)) = result {
            r.error_code = code;
            r.error_message = Some(StrBytes::from_string(msg));
        }
        resp.results.push(r);
    }
    Reply::now(resp)
}
