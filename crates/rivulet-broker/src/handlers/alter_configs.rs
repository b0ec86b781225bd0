//! AlterConfigs (the legacy, non-incremental API still used by librdkafka's `AlterConfigs`):
//! the given set replaces all of a topic's overrides, as in Kafka. Bounded per request
//! (resources, config entries) before any work, which runs on the blocking pool (`admin.rs`).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::admin::{alter_response, alter_topic_configs};
use super::{Reply, RequestContext};
use crate::error::log_error_code;

pub(crate) fn handle(ctx: RequestContext, req: AlterConfigsRequest) -> Reply {
    let validate_only = req.validate_only;
    alter_topic_configs(
        ctx,
        req.resources,
        |r: &AlterConfigsResource| (r.resource_type, &r.resource_name, r.configs.len()),
        move |logs, res| {
            let overrides: BTreeMap<String, String> = res
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            logs.set_topic_overrides(&res.resource_name, overrides, validate_only)
                .map_err(|e| (log_error_code(&e), e.to_string()))
        },
        alter_response!(AlterConfigsResponse, AlterConfigsResourceResponse),
    )
}
