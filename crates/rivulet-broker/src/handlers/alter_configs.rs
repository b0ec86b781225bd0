//! AlterConfigs (the legacy, non-incremental API still used by librdkafka's `AlterConfigs`):
//! the given set replaces all of a topic's overrides, as in Kafka.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::RESOURCE_TOPIC;
use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) fn handle(ctx: RequestContext, req: AlterConfigsRequest) -> Reply {
    let logs = &ctx.broker.logs;
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let result = if res.resource_type != RESOURCE_TOPIC {
            Err((
                ResponseError::InvalidRequest.code(),
                "only topic configs can be altered; broker configs are set by flags".to_string(),
            ))
        } else {
            let overrides: BTreeMap<String, String> = res
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            logs.set_topic_overrides(&name, overrides, req.validate_only)
                .map_err(|e| (log_error_code(&e), e.to_string()))
        };
        if let Err((code, msg)) = result {
            out.error_code = code;
            out.error_message = Some(StrBytes::from_string(msg));
        }
        resp.responses.push(out);
    }
    Reply::now(resp)
}
