//! `rivulet sql explain`: the streaming plan a SQL file compiles to, in words.

use std::fmt::Write as _;

use rivulet_engine::plan::{OutputMode, Plan, TimeFormat, TriggerSpec, WindowSpec};
use rivulet_runtime::connectors;

use crate::compile::{Compiled, Script};

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
/// A file with several INSERTs shows the shared source once, then each branch.
pub fn explain(script: &Script) -> String {
    let mut o = String::new();
    match script.branches.as_slice() {
        [] => {}
        [c] => {
            let _ = writeln!(o, "query {}", c.plan.name);
            source(&mut o, &c.plan, &c.source_name);
            branch(&mut o, c, "");
        }
        [first, ..] => {
            let p = &first.plan;
            let _ = writeln!(o, "job {}", script.name);
            source(&mut o, p, &script.source_name);
            let _ = writeln!(
                o,
                "  decode json -> arrow once per record, fanned out to {} branches",
                script.branches.len()
            );
            let _ = writeln!(
                o,
                "checkpoint: source offsets and every branch's state in {}, trigger {}",
                checkpoint_dir(p, &script.name),
                trigger(p)
            );
            for c in &script.branches {
                let _ = writeln!(o, "branch {} (INSERT INTO {}):", c.plan.name, c.sink_name);
                branch(&mut o, c, "  ");
            }
        }
    }
    o
}

fn checkpoint_dir(p: &Plan, name: &str) -> String {
    if !p.checkpoint.store.is_dir() {
        // One task per input partition number, spread over the processes of consumer
        // group rivulet-<name> (rivulet_runtime::group).
        return format!(
            "Kafka topic {}, partition <p> for task <p> (transactional ids {}), tasks shared by the processes of consumer group rivulet-{name}",
            rivulet_runtime::checkpoint::kafka::changelog_topic(name),
            rivulet_runtime::checkpoint::kafka::transactional_id(&format!("{name}:<p>"))
        );
    }
    p.checkpoint.dir.as_ref().map_or_else(
        || format!("./checkpoints/{name}"),
        |d| d.display().to_string(),
    )
}

fn trigger(p: &Plan) -> String {
    match p.output.trigger {
        TriggerSpec::OnArrival => "on arrival".to_string(),
        TriggerSpec::ProcessingTime(d) => format!("every {}", ms(d.0)),
    }
}

/// The source, its schema, watermark and dead-letter handling (shared by every branch).
fn source(o: &mut String, p: &Plan, source_name: &str) {
    // A compiled plan's connectors are valid, so they describe themselves.
    let d = connectors::describe_source(p).unwrap_or_else(|e| connectors::SourceDescription {
        summary: format!("{} ({e})", p.source.connector),
        details: Vec::new(),
        dead_letters: String::new(),
        late_rows: String::new(),
    });
    let _ = writeln!(o, "source {source_name}: {}", d.summary);
    for line in &d.details {
        let _ = writeln!(o, "  {line}");
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
        d.dead_letters, d.late_rows
    );
}

/// The shuffle stage and repartition topic of a query spread over processes whose groups
/// are not the input's key (`rivulet_runtime::repartition`), as a step of its operators.
fn repartition(o: &mut String, p: &Plan, n: &mut usize) {
    let job = rivulet_engine::Job::single(p.clone());
    match rivulet_runtime::repartition::plan(&job, p.checkpoint.store) {
        Ok(None) => {}
        Ok(Some(r)) => {
            *n += 1;
            let _ = writeln!(
                o,
                "  {n}. repartition by [{}] through topic {} (one partition per input \
                 partition)",
                r.key_columns.join(", "),
                r.topic
            );
            let _ = writeln!(
                o,
                "     stage 1, consumer group {}: task <p> runs the steps above on input \
                 partition <p> and forwards each record's value keyed by its group key, with its \
                 watermark into every partition, one transaction per task epoch (checkpoint {})",
                r.shuffle_group,
                rivulet_runtime::checkpoint::kafka::changelog_topic(
                    &rivulet_runtime::repartition::shuffle_name(&p.name)
                )
            );
            let _ = writeln!(
                o,
                "     stage 2, consumer group {}: task <q> reads partition <q> read_committed, \
                 decodes and runs the steps above again, watermark = min over the upstream \
                 tasks' watermark records (late records are judged here), then:",
                r.group
            );
        }
        Err(e) => {
            let _ = writeln!(o, "  repartition: {e}");
        }
    }
}

/// One branch: its operators, state, emit mode and sinks, each line indented by `ind`. A
/// single query (`ind` empty) also names its checkpoint and trigger here, as it always did.
fn branch(o: &mut String, c: &Compiled, ind: &str) {
    let p = &c.plan;
    let et = &p.event_time;
    let single = ind.is_empty();
    let _ = writeln!(o, "{ind}operators:");
    let mut n = 0;
    if single {
        n += 1;
        let _ = writeln!(o, "  {n}. decode json -> arrow");
    }
    if let Some(f) = &p.filter {
        n += 1;
        let _ = writeln!(o, "{ind}  {n}. filter: {f}");
    }
    for d in &p.columns {
        n += 1;
        let _ = writeln!(o, "{ind}  {n}. derive {} = {}", d.name, d.expr);
    }
    if single {
        repartition(o, p, &mut n);
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
            "{ind}  {n}. window aggregate: {window} on {}, group by [{}], {}",
            et.field,
            p.group_by.join(", "),
            aggs.join(", ")
        );
        let mut out: Vec<String> = p.group_by.clone();
        if p.window.is_some() {
            out.push("window_start".into());
            out.push("window_end".into());
        }
        out.extend(p.aggregates.iter().map(|a| a.output_name()));
        let _ = writeln!(o, "{ind}     emits: {}", out.join(", "));
    }
    if let Some(h) = &p.having {
        n += 1;
        let _ = writeln!(o, "{ind}  {n}. having: {h}");
    }
    if !p.select.is_empty() {
        n += 1;
        let cols: Vec<String> = p
            .select
            .iter()
            .map(|c| {
                let plain = c.expr.trim_matches('"');
                if plain == c.name {
                    c.name.clone()
                } else {
                    format!("{} AS {}", c.expr, c.name)
                }
            })
            .collect();
        let _ = writeln!(o, "{ind}  {n}. select: {}", cols.join(", "));
    }
    if !p.is_passthrough() {
        if single {
            let _ = writeln!(
                o,
                "state: one accumulator per (group, window), checkpointed with the source \
                 offsets in {}",
                checkpoint_dir(p, &p.name)
            );
        } else {
            let _ = writeln!(o, "{ind}state: one accumulator per (group, window)");
        }
    } else if single {
        let _ = writeln!(o, "state: source offsets only");
    } else {
        if n == 0 {
            let _ = writeln!(o, "{ind}  (the decoded rows, unchanged)");
        }
        let _ = writeln!(o, "{ind}state: none");
    }
    let emit = match p.output.mode {
        OutputMode::Append => "on window close (append)",
        OutputMode::Update => "changes (update)",
    };
    if single {
        let _ = writeln!(o, "emit: {emit}, trigger {}", trigger(p));
    } else {
        let _ = writeln!(o, "{ind}emit: {emit}");
    }
    let _ = writeln!(o, "{ind}sinks:");
    let lines =
        connectors::describe_sinks(p).unwrap_or_else(|e| vec![format!("({e})"); p.sinks.len()]);
    for line in lines {
        let _ = writeln!(o, "{ind}  {}: {line}", c.sink_name);
    }
}
