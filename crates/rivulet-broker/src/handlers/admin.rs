//! What every admin handler shares: request-level limits, checked before any work, and the
//! blocking pool the work runs on.
//!
//! Creating or deleting partitions makes and removes directories and files and holds the
//! storage's admin lock; done on a runtime thread, one large request (or two, one waiting on
//! the other's lock) stalled every connection and even shutdown. So admin handlers check their
//! limits on the runtime thread (cheap), then run the storage calls with
//! `tokio::task::spawn_blocking`; shutdown interrupts them (`LogManager::begin_shutdown`).

use kafka_protocol::protocol::StrBytes;
use rivulet_log::LogManager;

use super::describe_configs::RESOURCE_TOPIC;
use super::{Reply, RequestContext, ResponseKind};
use crate::config::BrokerConfig;
use crate::error::codes;

/// Config entries one resource (a topic) may carry in a request: Rivulet knows eight topic
/// configs, so more than this is no real request.
pub(crate) const MAX_CONFIG_ENTRIES: usize = 100;

/// Runs admin work on the blocking pool; `Err` if the task panicked or was cancelled.
pub(crate) async fn blocking<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("admin task failed: {e}"))
}

/// POLICY_VIOLATION when one request names more topics than `--max-topics-per-request`.
pub(crate) fn check_topic_count(count: usize, cfg: &BrokerConfig) -> Result<(), (i16, String)> {
    if count > cfg.max_topics_per_request {
        return Err((
            codes::policy_violation(),
            format!(
                "Unable to perform excessively large batch operation: {count} topics in one \
                 request, at most {} (--max-topics-per-request)",
                cfg.max_topics_per_request
            ),
        ));
    }
    Ok(())
}

/// POLICY_VIOLATION when one request would create more partitions than
/// `--max-partitions-per-request` (Kafka's controller refuses such requests with this code).
pub(crate) fn check_partition_total(new: i64, cfg: &BrokerConfig) -> Result<(), (i16, String)> {
    let max = i64::try_from(cfg.max_partitions_per_request).unwrap_or(i64::MAX);
    if new > max {
        return Err((
            codes::policy_violation(),
            format!(
                "Unable to perform excessively large batch operation: {new} partitions in one \
                 request, at most {max} (--max-partitions-per-request)"
            ),
        ));
    }
    Ok(())
}

/// INVALID_REQUEST when one resource carries more config entries than any real request.
pub(crate) fn check_config_entries(count: usize) -> Result<(), (i16, String)> {
    if count > MAX_CONFIG_ENTRIES {
        return Err((
            codes::invalid_request(),
            format!("{count} config entries for one resource, at most {MAX_CONFIG_ENTRIES}"),
        ));
    }
    Ok(())
}

/// One resource's outcome in an alter-configs response: its type, its name, and the refusal
/// (error code and message) if any.
pub(crate) type AlterOutcome = (i8, StrBytes, Result<(), (i16, String)>);

/// An alter-configs response built from the outcomes: AlterConfigs and
/// IncrementalAlterConfigs answer with the same fields in distinct generated types.
macro_rules! alter_response {
    ($response:ty, $item:ty) => {
        |outcomes: Vec<$crate::handlers::admin::AlterOutcome>| {
            let mut resp = <$response>::default();
            for (resource_type, resource_name, result) in outcomes {
                let mut out = <$item>::default();
                out.resource_type = resource_type;
                out.resource_name = resource_name;
                if let Err((code, msg)) = result {
                    out.error_code = code;
                    out.error_message = Some(kafka_protocol::protocol::StrBytes::from_string(msg));
                }
                resp.responses.push(out);
            }
            resp
        }
    };
}
pub(crate) use alter_response;

/// What AlterConfigs and IncrementalAlterConfigs share: the request-level topic count checked
/// first, then per resource the resource type (topics only) and the number of entries, then
/// `alter` on the blocking pool; `respond` builds the API's own response from the outcomes, in
/// request order. `head` gives a resource's type, name and number of config entries.
pub(crate) fn alter_topic_configs<Res, Resp>(
    ctx: RequestContext,
    resources: Vec<Res>,
    head: fn(&Res) -> (i8, &StrBytes, usize),
    alter: impl Fn(&LogManager, &Res) -> Result<(), (i16, String)> + Send + 'static,
    respond: fn(Vec<AlterOutcome>) -> Resp,
) -> Reply
where
    Res: Send + 'static,
    Resp: Into<ResponseKind> + Send + 'static,
{
    let keys: Vec<(i8, StrBytes)> = resources
        .iter()
        .map(|r| {
            let (resource_type, name, _) = head(r);
            (resource_type, name.clone())
        })
        .collect();
    // AlterConfigs on each topic named (on the cluster for broker resources): all or nothing.
    let authorized = ctx
        .authorize_each(
            crate::acl::Operation::AlterConfigs,
            crate::acl::ResourceType::Topic,
            keys.iter()
                .filter(|(t, _)| *t == 2)
                .map(|(_, n)| n.as_str()),
        )
        .and_then(|()| {
            if keys.iter().all(|(t, _)| *t == 2) {
                return Ok(());
            }
            ctx.authorize_each(
                crate::acl::Operation::AlterConfigs,
                crate::acl::ResourceType::Cluster,
                [crate::acl::CLUSTER_NAME],
            )
        });
    let answer = move |results: Vec<Result<(), (i16, String)>>| {
        respond(
            keys.into_iter()
                .zip(results)
                .map(|((t, name), r)| (t, name, r))
                .collect(),
        )
    };
    let n = resources.len();
    if let Err(refusal) = check_topic_count(n, &ctx.broker.config).and(authorized) {
        return Reply::now(answer(vec![Err(refusal); n]));
    }
    Reply::later(async move {
        let work = move || {
            let logs = &ctx.broker.logs;
            resources
                .iter()
                .map(|res| {
                    let (resource_type, _, entries) = head(res);
                    if resource_type != RESOURCE_TOPIC {
                        return Err((
                            codes::invalid_request(),
                            "only topic configs can be altered; broker configs are set by flags"
                                .to_string(),
                        ));
                    }
                    check_config_entries(entries)?;
                    alter(logs, res)
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
