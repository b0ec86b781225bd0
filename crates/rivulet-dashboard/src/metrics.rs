//! `/metrics` in the Prometheus text exposition format (version 0.0.4), written by hand: it
//! is a few lines of text, and the figures already live in [`Health`] and [`ClusterView`].
//! Names follow the Prometheus conventions: a `rivulet_` prefix, the unit in the name,
//! `_total` for counters.

use std::fmt::Write;

use crate::state::{ClusterView, Health, InstanceHealth, TaskView};

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&fmt_value(value));
        self.text.push('\n');
    }

    /// A family with one unlabelled (or fixed-label) sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.family(name, kind, help);
        self.sample(name, labels, v);
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Renders every metric.
pub fn render(h: &Health, cluster: &ClusterView) -> String {
    let mut o = Out {
        text: String::with_capacity(4096),
    };
    if let Some(g) = &h.generator {
        o.one(
            "rivulet_generator_events_sent_total",
            "counter",
            "Events the generator handed to its producer.",
            &[],
            g.events_sent_total as f64,
        );
        o.one(
            "rivulet_generator_events_acknowledged_total",
            "counter",
            "Events the brokers acknowledged (acks=all).",
            &[],
            g.events_acknowledged_total as f64,
        );
        o.one(
            "rivulet_generator_delivery_errors_total",
            "counter",
            "Events that failed delivery.",
            &[],
            g.delivery_errors_total as f64,
        );
    }
    let b = &h.broker;
    if let Some(v) = b.records_in_total {
        o.one(
            "rivulet_broker_records_in_total",
            "counter",
            "Records appended by produce requests to the embedded broker.",
            &[],
            v as f64,
        );
    }
    if let Some(v) = b.bytes_out_total {
        o.one(
            "rivulet_broker_bytes_out_total",
            "counter",
            "Response bytes the embedded broker sent to clients.",
            &[],
            v as f64,
        );
    }
    for (name, kind, help, value) in [
        (
            "rivulet_broker_transactions_open",
            "gauge",
            "Transactions open in the embedded broker's coordinator.",
            b.transactions_open,
        ),
        (
            "rivulet_broker_transactions_committed_total",
            "counter",
            "Transactions the embedded broker committed.",
            b.transactions_committed_total,
        ),
        (
            "rivulet_broker_transactions_aborted_total",
            "counter",
            "Transactions the embedded broker aborted (asked, fenced or timed out).",
            b.transactions_aborted_total,
        ),
        (
            "rivulet_broker_authentications_total",
            "counter",
            "SASL authentications the embedded broker accepted.",
            b.authentications_total,
        ),
        (
            "rivulet_broker_authentication_failures_total",
            "counter",
            "SASL authentications the embedded broker refused (password, user, mechanism, message).",
            b.authentication_failures_total,
        ),
        (
            "rivulet_broker_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed on the embedded broker's TLS listeners.",
            b.tls_handshake_failures_total,
        ),
        (
            "rivulet_broker_unauthenticated_requests_total",
            "counter",
            "Connections the embedded broker closed for a request before authentication.",
            b.unauthenticated_requests_total,
        ),
    ] {
        if let Some(v) = value {
            o.one(name, kind, help, &[], v as f64);
        }
    }
    if let Some(e) = &h.engine {
        let q = [("query", e.query.as_str())];
        o.one(
            "rivulet_engine_epochs_total",
            "counter",
            "Micro-batches (epochs) committed by the query in this run.",
            &q,
            e.epochs_total as f64,
        );
        o.one(
            "rivulet_engine_input_rows_total",
            "counter",
            "Records the query read from its source.",
            &q,
            e.input_rows_total as f64,
        );
        o.one(
            "rivulet_engine_output_rows_total",
            "counter",
            "Result rows the query wrote to its sinks.",
            &q,
            e.output_rows_total as f64,
        );
        o.one(
            "rivulet_engine_late_rows_total",
            "counter",
            "Rows behind the watermark, not aggregated.",
            &q,
            e.late_rows_total as f64,
        );
        o.one(
            "rivulet_engine_dead_letter_rows_total",
            "counter",
            "Records that failed decoding (sent to the dead-letter topic when configured).",
            &q,
            e.dead_letters_total as f64,
        );
        if let Some(w) = e.watermark_ms {
            o.one(
                "rivulet_engine_watermark_timestamp_seconds",
                "gauge",
                "The query's event-time watermark, seconds since the Unix epoch.",
                &q,
                w as f64 / 1000.0,
            );
        }
        if let Some(d) = e.watermark_delay_seconds {
            o.one(
                "rivulet_engine_watermark_delay_seconds",
                "gauge",
                "Wall clock minus the watermark.",
                &q,
                d,
            );
        }
        if let Some(a) = e.checkpoint_age_seconds {
            o.one(
                "rivulet_checkpoint_age_seconds",
                "gauge",
                "Seconds since the query last committed an epoch to its checkpoint.",
                &q,
                a,
            );
        }
        o.one(
            "rivulet_engine_state_rows",
            "gauge",
            "Rows (windows per key) held in the query's state.",
            &q,
            e.state_rows as f64,
        );
        o.one(
            "rivulet_engine_state_memory_bytes",
            "gauge",
            "Estimated memory of the query's state.",
            &q,
            e.state_memory_bytes as f64,
        );
        o.family(
            "rivulet_consumer_lag_records",
            "gauge",
            "Records between the query's position and the partition's end, as of its last epoch.",
        );
        for p in &e.lag {
            let part = p.partition.to_string();
            o.sample(
                "rivulet_consumer_lag_records",
                &[
                    ("query", e.query.as_str()),
                    ("topic", p.topic.as_str()),
                    ("partition", part.as_str()),
                ],
                p.lag as f64,
            );
        }
    }
    if let (Some(i), Some(e)) = (&h.instance, &h.engine) {
        instance(&mut o, e.query.as_str(), i);
    }
    o.family(
        "rivulet_topic_partition_start_offset",
        "gauge",
        "First offset still held by the partition (log start offset).",
    );
    for t in &cluster.topics {
        for p in &t.partitions {
            let part = p.partition.to_string();
            o.sample(
                "rivulet_topic_partition_start_offset",
                &[("topic", t.name.as_str()), ("partition", part.as_str())],
                p.log_start_offset as f64,
            );
        }
    }
    o.family(
        "rivulet_topic_partition_end_offset",
        "gauge",
        "The partition's high watermark (next offset to be written).",
    );
    for t in &cluster.topics {
        for p in &t.partitions {
            let part = p.partition.to_string();
            o.sample(
                "rivulet_topic_partition_end_offset",
                &[("topic", t.name.as_str()), ("partition", part.as_str())],
                p.high_watermark as f64,
            );
        }
    }
    o.family(
        "rivulet_consumer_group_members",
        "gauge",
        "Members of a consumer group.",
    );
    for g in &cluster.groups {
        o.sample(
            "rivulet_consumer_group_members",
            &[("group", g.group.as_str())],
            g.members.len() as f64,
        );
    }
    o.family(
        "rivulet_consumer_group_lag_records",
        "gauge",
        "Records between a group's committed offset and the partition's end.",
    );
    for g in &cluster.groups {
        for r in &g.offsets {
            if let Some(lag) = r.lag {
                let part = r.partition.to_string();
                o.sample(
                    "rivulet_consumer_group_lag_records",
                    &[
                        ("group", g.group.as_str()),
                        ("topic", r.topic.as_str()),
                        ("partition", part.as_str()),
                    ],
                    lag as f64,
                );
            }
        }
    }
    if let Some(rss) = h.process.resident_memory_bytes {
        o.one(
            "rivulet_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the rivulet process.",
            &[],
            rss as f64,
        );
    }
    o.one(
        "rivulet_process_start_time_seconds",
        "gauge",
        "When the dashboard (and so the process) started, seconds since the Unix epoch.",
        &[],
        h.process.start_time_ms as f64 / 1000.0,
    );
    o.one(
        "rivulet_healthy",
        "gauge",
        "1 when the dashboard's verdict is healthy, else 0 (see /api/health for why).",
        &[("status", h.status.as_str())],
        if h.status == "healthy" { 1.0 } else { 0.0 },
    );
    o.text
}

/// A query spread over processes: this process's tasks, each with its figures.
fn instance(o: &mut Out, query: &str, i: &InstanceHealth) {
    o.one(
        "rivulet_query_tasks",
        "gauge",
        "The query's task count (input partitions) and how many run in this process.",
        &[
            ("query", query),
            ("group", i.group.as_str()),
            ("where", "all"),
        ],
        f64::from(i.tasks_total),
    );
    o.sample(
        "rivulet_query_tasks",
        &[
            ("query", query),
            ("group", i.group.as_str()),
            ("where", "here"),
        ],
        i.tasks.len() as f64,
    );
    if let Some(m) = i.members {
        o.one(
            "rivulet_query_group_members",
            "gauge",
            "Processes in the query's consumer group, at the last cluster refresh.",
            &[("query", query), ("group", i.group.as_str())],
            m as f64,
        );
    }
    type Figure = fn(&TaskView) -> Option<f64>;
    let figures: [(&str, &str, Figure); 4] = [
        (
            "rivulet_task_lag_records",
            "Records the task is behind its partitions' ends.",
            |t| Some(t.lag as f64),
        ),
        (
            "rivulet_task_watermark_timestamp_seconds",
            "The task's event-time watermark, seconds since the Unix epoch.",
            |t| t.watermark_ms.map(|w| w as f64 / 1000.0),
        ),
        (
            "rivulet_task_state_memory_bytes",
            "Estimated memory of the task's state.",
            |t| Some(t.state_memory_bytes as f64),
        ),
        (
            "rivulet_task_last_epoch",
            "The task's last committed epoch.",
            |t| t.last_epoch.map(|e| e as f64),
        ),
    ];
    for (name, help, f) in figures {
        o.family(name, "gauge", help);
        for t in &i.tasks {
            if let Some(v) = f(t) {
                let task = t.task.to_string();
                o.sample(name, &[("query", query), ("task", task.as_str())], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_labels_are_formatted_for_prometheus() {
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(f64::NAN), "NaN");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut o = Out {
            text: String::new(),
        };
        o.one("x_total", "counter", "Help.", &[("topic", "t\"1")], 7.0);
        assert_eq!(
            o.text,
            "# HELP x_total Help.\n# TYPE x_total counter\nx_total{topic=\"t\\\"1\"} 7\n"
        );
    }
}
