//! IncrementalAlterConfigs on topic configs: SET, DELETE (back to the default), APPEND and
//! SUBTRACT (list-valued keys only), validated before anything is stored. Bounded per request
//! (resources, config entries) before any work, which runs on the blocking pool (`admin.rs`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::{blocking, check_config_entries, check_topic_count};
use super::describe_configs::RESOURCE_TOPIC;
use super::{Reply, RequestContext};
use crate::error::{codes, log_error_code};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const LIST_KEYS: &[&str] = &["cleanup.policy"];

pub(crate) fn handle(ctx: RequestContext, req: IncrementalAlterConfigsRequest) -> Reply {
    let keys: Vec<_> = req
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .collect();
    let answer = move |results: Vec<Result<(), (i16, String)>>| {
        let mut resp = IncrementalAlterConfigsResponse::default();
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
                    let name = res.resource_name.to_string();
                    if res.resource_type != RESOURCE_TOPIC {
                        return Err((
                            ResponseError::InvalidRequest.code(),
                            "only topic configs can be altered; broker configs are set by flags"
                                .into(),
                        ));
                    }
                    check_config_entries(res.configs.len())?;
                    let Some(topic) = logs.topic(&name) else {
                        return Err((
                            ResponseError::UnknownTopicOrPartition.code(),
                            format!("unknown topic {}", rivulet_log::Quoted(&name)),
                        ));
                    };
                    let current = topic.overrides.read().clone();
                    apply(current, &res.configs, logs.topic_config(&name).ok())
                        .and_then(|next| {
                            logs.set_topic_overrides(&name, next, req.validate_only)
                                .map_err(|e| (log_error_code(&e), e.to_string()))
                        })
                        .inspect(|()| {
                            // Existing topics only: a plain ASCII name.
                            tracing::info!(topic = %name, validate_only = req.validate_only, "altered topic configs");
                        })
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

fn apply(
    mut overrides: BTreeMap<String, String>,
    ops: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    effective: Option<rivulet_log::LogConfig>,
) -> Result<BTreeMap<String, String>, (i16, String)> {
    let invalid = |msg: String| (ResponseError::InvalidConfig.code(), msg);
    for op in ops {
        let key = op.name.to_string();
        let value = op.value.as_ref().map(|v| v.to_string());
        match op.config_operation {
            SET => {
                let value = value.ok_or_else(|| {
                    invalid(format!("SET {} needs a value", rivulet_log::Quoted(&key)))
                })?;
                overrides.insert(key, value);
            }
            DELETE => {
                overrides.remove(&key);
            }
            APPEND | SUBTRACT => {
                if !LIST_KEYS.contains(&key.as_str()) {
                    return Err(invalid(format!(
                        "{} is not a list config; APPEND/SUBTRACT do not apply",
                        rivulet_log::Quoted(&key)
                    )));
                }
                let current = overrides
                    .get(&key)
                    .cloned()
                    .or_else(|| effective.as_ref().and_then(|c| c.get(&key)))
                    .unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let given: Vec<String> = value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if op.config_operation == APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                overrides.insert(key, items.join(","));
            }
            other => {
                return Err(invalid(format!(
                    "unknown config operation {other} for {}",
                    rivulet_log::Quoted(&key)
                )))
            }
        }
    }
    Ok(overrides)
}
