//! IncrementalAlterConfigs on topic configs: SET, DELETE (back to the default), APPEND and
//! SUBTRACT (list-valued keys only), validated before anything is stored. Bounded per request
//! (resources, config entries) before any work, which runs on the blocking pool (`admin.rs`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::admin::{alter_response, alter_topic_configs};
use super::{Reply, RequestContext};
use crate::error::log_error_code;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const LIST_KEYS: &[&str] = &["cleanup.policy"];

pub(crate) fn handle(ctx: RequestContext, req: IncrementalAlterConfigsRequest) -> Reply {
    let validate_only = req.validate_only;
    alter_topic_configs(
        ctx,
        req.resources,
        |r: &AlterConfigsResource| (r.resource_type, &r.resource_name, r.configs.len()),
        move |logs, res| {
            let name = res.resource_name.to_string();
            let Some(topic) = logs.topic(&name) else {
                return Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("unknown topic {}", rivulet_log::Quoted(&name)),
                ));
            };
            let current = topic.overrides.read().clone();
            apply(current, &res.configs, logs.topic_config(&name).ok())
                .and_then(|next| {
                    logs.set_topic_overrides(&name, next, validate_only)
                        .map_err(|e| (log_error_code(&e), e.to_string()))
                })
                .inspect(|()| {
                    // Existing topics only: a plain ASCII name.
                    tracing::info!(topic = %name, validate_only, "altered topic configs");
                })
        },
        alter_response!(
            IncrementalAlterConfigsResponse,
            AlterConfigsResourceResponse
        ),
    )
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
