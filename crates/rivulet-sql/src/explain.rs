//! `rivulet sql explain`: the streaming plan a SQL file compiles to, in words.

use std::fmt::Write as _;

use rivulet_engine::plan::{
    OutputMode, SinkSpec, SourceClient, StartingOffsets, TimeFormat, TriggerSpec, WindowSpec,
};

use crate::compile::Compiled;

fn ms(v: i64) -> String {
    if v % 3_600_000 == 0 && v != 0 {
        format!("{}h", v / 3_600_000)
    } else if v % 60_000 == 0 && v != 0 {
        format!("{}m", v / 60_000)
    } else if v % 1_000 == 0 {
        format!("{}s", v / 1_000)
    } else {
        format!("{v}ms")
    }
}

/// The plan as indented text: source, watermark, operators in order, state, emit mode, sinks.
pub fn explain(c: &Compiled) -> String {
    let p = &c.plan;
    let mut o = String::new();
    let _ = writeln!(o, "query {}", p.name);
    let s = &p.source;
    let start = match s.starting_offsets {
        StartingOffsets::Earliest => "earliest".to_string(),
        StartingOffsets::Latest => "latest".to_string(),
        StartingOffsets::Timestamp(t) => format!("timestamp {t}"),
    };
    let client = match s.client {
        SourceClient::Native => "native",
        SourceClient::Librdkafka => "librdkafka",
    };
    let _ = writeln!(
        o,
        "source {}: kafka topics [{}] at {}, json, start {start}, client {client}",
        c.source_name,
        s.topics.join(", "),
        s.brokers
    );
    if let Some(g) = &s.group_id {
        let _ = writeln!(o, "  group id: {g}");
    }
    if let Some(n) = s.max_records_per_trigger {
        let _ = writeln!(o, "  max records per trigger: {n}");
    }
    let cols: Vec<String> = p
        .schema
        .iter()
        .map(|f| {
            format!(
                "{} {}{}",
                f.name,
                f.data_type.name().to_uppercase(),
                if f.nullable { "" } else { " NOT NULL" }
            )
        })
        .collect();
    let _ = writeln!(o, "  schema: {}", cols.join(", "));
    let et = &p.event_time;
    let fmt = match et.format {
        TimeFormat::Rfc3339 => "",
        TimeFormat::EpochMillis => " (epoch millis)",
        TimeFormat::EpochSeconds => " (epoch seconds)",
    };
    let _ = writeln!(
        o,
        "  watermark: max({}){fmt} - {}, idle partitions ignored after {}",
        et.field,
        ms(et.allowed_lateness.0),
        ms(et.idle_timeout.0)
    );
    let _ = writeln!(
        o,
        "  dead letters: {}; late records: {}",
        s.dlq_topic
            .clone()
            .unwrap_or_else(|| format!("{}.dlq", s.topics.first().map_or("", String::as_str))),
        s.late_topic.as_deref().unwrap_or("counted and dropped")
    );
    let _ = writeln!(o, "operators:");
    let mut n = 1;
    let _ = writeln!(o, "  {n}. decode json -> arrow");
    if let Some(f) = &p.filter {
        n += 1;
        let _ = writeln!(o, "  {n}. filter: {f}");
    }
    for d in &p.columns {
        n += 1;
        let _ = writeln!(o, "  {n}. derive {} = {}", d.name, d.expr);
    }
    if !p.aggregates.is_empty() || p.window.is_some() || !p.group_by.is_empty() {
        n += 1;
        let window = match &p.window {
            None => "running (no window)".to_string(),
            Some(WindowSpec::Tumbling { size }) => format!("tumbling {}", ms(size.0)),
            Some(WindowSpec::Hopping { size, slide }) => {
                format!("hopping {} every {}", ms(size.0), ms(slide.0))
            }
            Some(WindowSpec::Session { gap }) => format!("session gap {}", ms(gap.0)),
        };
        let aggs: Vec<String> = p
            .aggregates
            .iter()
            .map(|a| {
                let arg = match (&a.column, a.percentile) {
                    (None, _) => "*".to_string(),
                    (Some(c), Some(q)) => format!("{c}, {q}"),
                    (Some(c), None) => c.clone(),
                };
                format!("{}({arg}) AS {}", a.function.name(), a.output_name())
            })
            .collect();
        let _ = writeln!(
            o,
            "  {n}. window aggregate: {window} on {}, group by [{}], {}",
            et.field,
            p.group_by.join(", "),
            aggs.join(", ")
        );
        // The window operator's output order, whatever the SELECT order (not yet projected).
        let mut out: Vec<String> = p.group_by.clone();
        if p.window.is_some() {
            out.push("window_start".into());
            out.push("window_end".into());
        }
        out.extend(p.aggregates.iter().map(|a| a.output_name()));
        let _ = writeln!(o, "  output columns: {}", out.join(", "));
        let _ = writeln!(
            o,
            "state: one accumulator per (group, window), checkpointed with the source offsets \
             in {}",
            p.checkpoint.dir.as_ref().map_or_else(
                || format!("./checkpoints/{}", p.name),
                |d| d.display().to_string()
            )
        );
    } else {
        let _ = writeln!(o, "state: source offsets only");
    }
    let trigger = match p.output.trigger {
        TriggerSpec::OnArrival => "on arrival".to_string(),
        TriggerSpec::ProcessingTime(d) => format!("every {}", ms(d.0)),
    };
    let emit = match p.output.mode {
        OutputMode::Append => "on window close (append)",
        OutputMode::Update => "changes (update)",
    };
    let _ = writeln!(o, "emit: {emit}, trigger {trigger}");
    let _ = writeln!(o, "sinks:");
    for sink in &p.sinks {
        let line = match sink {
            SinkSpec::Console => "console".to_string(),
            SinkSpec::Kafka { topic, brokers } => format!(
                "kafka topic {topic} at {}",
                brokers.as_deref().unwrap_or(&s.brokers)
            ),
            SinkSpec::File { path } => format!("file {}", path.display()),
            // SQL cannot declare these sinks yet, but a plan can carry them (`--sink` flags).
            SinkSpec::Parquet(spec) => format!("parquet {}", spec.path.display()),
            SinkSpec::Postgres(spec) => format!(
                "postgres table {}",
                spec.table.as_deref().unwrap_or(p.name.as_str())
            ),
        };
        let _ = writeln!(o, "  {}: {line}", c.sink_name);
    }
    o
}
