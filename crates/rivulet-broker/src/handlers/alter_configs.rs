//! AlterConfigs (the legacy, non-incremental API still used by librdkafka's `AlterConfigs`):
//! the given set replaces all of a topic's overrides, as in Kafka. Bounded per request
//! (resources, config entries) before any work, which runs on the blocking pool (`admin.rs`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::{blocking, check_config_entries, check_topic_count};
use super::describe_configs::RESOURCE_TOPIC;
use super::{Reply, RequestContext};
use crate::error::{codes, log_error_code};

pub(crate) fn handle(ctx: RequestContext, req: AlterConfigsRequest) -> Reply {
    let keys: Vec<_> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let answer = move |results: Vec<Result<(), (i16, String)>>| {
        let mut resp = AlterConfigsResponse::default();
        for ((resource_type, resource_name), result) in keys.into_iter().zip(results) {
            let mut out = AlterConfigsResourceResponse::default();
            out.resource_type = resource_type;
            out.resource_name = resource_name;
            if let Err((code, msg)) = result {
                out.error_code = code;
                out.error_message = Some(StrBytes::from_string(msg));
            }
            resp.responses.push(out);
        }
        resp
    };
    let n = req.resources.len();
    if let Err(refusal) = check_topic_count(n, &ctx.broker.config) {
        return Reply::now(answer(vec![Err(refusal); n]));
    }
    Reply::later(async move {
        let work = move || {
            let logs = &ctx.broker.logs;
            req.resources
                .iter()
                .map(|res| {
                    if res.resource_type != RESOURCE_TOPIC {
                        return Err((
                            ResponseError::InvalidRequest.code(),
                            "only topic configs can be altered; broker configs are set by flags"
                                .to_string(),
                        ));
                    }
                    check_config_entries(res.configs.len())?;
                    let overrides: BTreeMap<String, String> = res
                        .configs
                        .iter()
                        .filter_map(|c| {
                            c.value
                                .as_ref()
                                .map(|v| (c.name.to_string(), v.to_string()))
                        })
                        .collect();
                    logs.set_topic_overrides(&res.resource_name, overrides, req.validate_only)
                        .map_err(|e| (log_error_code(&e), e.to_string()))
                })
                .collect::<Vec<_>>()
        };
        match blocking(work).await {
            Ok(results) => answer(results),
            Err(e) => {
                tracing::error!("{e}");
                answer(vec![Err((codes::unknown_server_error(), e)); n])
            }
        }
    })
}
