//! IncrementalAlterConfigs on topic configs: SET, DELETE (back to the default), APPEND and
//! SUBTRACT (list-valued keys only), validated before anything is stored.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::RESOURCE_TOPIC;
use super::{Reply, RequestContext};
use crate::error::log_error_code;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const LIST_KEYS: &[&str] = &["cleanup.policy"];

pub(crate) fn handle(ctx: RequestContext, req: IncrementalAlterConfigsRequest) -> Reply {
    let logs = &ctx.broker.logs;
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let result: Result<(), (i16, String)> = if res.resource_type != RESOURCE_TOPIC {
            Err((
                ResponseError::InvalidRequest.code(),
                "only topic configs can be altered; broker configs are set by flags".into(),
            ))
        } else if let Some(topic) = logs.topic(&name) {
            let current = topic.overrides.read().clone();
            apply(current, &res.configs, logs.topic_config(&name).ok()).and_then(|next| {
                logs.set_topic_overrides(&name, next, req.validate_only)
                    .map_err(|e| (log_error_code(&e), e.to_string()))
            })
        } else {
            Err((
                ResponseError::UnknownTopicOrPartition.code(),
                format!("unknown topic {name}"),
            ))
        };
        if let Err((code, msg)) = result {
            out.error_code = code;
            out.error_message = Some(StrBytes::from_string(msg));
        } else {
            tracing::info!(topic = %name, validate_only = req.validate_only, "altered topic configs");
        }
        resp.responses.push(out);
    }
    Reply::now(resp)
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
                let value = value.ok_or_else(|| invalid(format!("SET {key} needs a value")))?;
                overrides.insert(key, value);
            }
            DELETE => {
                overrides.remove(&key);
            }
            APPEND | SUBTRACT => {
                if !LIST_KEYS.contains(&key.as_str()) {
                    return Err(invalid(format!(
                        "{key} is not a list config; APPEND/SUBTRACT do not apply"
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
                    "unknown config operation {other} for {key}"
                )))
            }
        }
    }
    Ok(overrides)
}
