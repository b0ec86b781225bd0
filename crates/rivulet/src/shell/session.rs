//! The shell's session: the sources (`CREATE SOURCE`) and settings (`SET`) kept between
//! statements, and the declarations a SELECT compiles against.

use anyhow::Result;
use rivulet_engine::plan::TriggerSpec;
use rivulet_runtime::connectors::kafka::StartingOffsets;

use super::{ShellArgs, QUERY_NAME};

/// The session: sources and settings kept between statements.
pub(super) struct Session {
    brokers: String,
    /// (name, statement text), in declaration order.
    sources: Vec<(String, String)>,
    /// (key, statement text) of the `SET`s the SQL front end reads.
    sets: Vec<(String, String)>,
    pub(super) startup: StartingOffsets,
    /// `-X` / `--client-config-file` properties, added to each query's source.
    pub(super) client_properties: std::collections::BTreeMap<String, String>,
}

/// `'text'` as a SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Session {
    pub(super) fn new(args: &ShellArgs) -> Session {
        let events = format!(
            "CREATE SOURCE events (id BIGINT, value DOUBLE, timestamp TIMESTAMP,\n  \
             WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)\n\
             WITH (connector = 'kafka', topic = {}, brokers = {}, format = 'json');",
            quote(&args.topic),
            quote(&args.brokers)
        );
        Session {
            brokers: args.brokers.clone(),
            sources: vec![("events".to_string(), events)],
            sets: Vec::new(),
            startup: if args.from_beginning {
                StartingOffsets::Earliest
            } else {
                StartingOffsets::Latest
            },
            client_properties: Default::default(),
        }
    }

    /// The declarations a query compiles against: every source, then the settings (the
    /// shell's trigger default first, so a `SET trigger` typed later wins).
    pub(super) fn decls(&self) -> String {
        let mut d = String::new();
        for (_, text) in &self.sources {
            d.push_str(text);
            d.push('\n');
        }
        d.push_str("SET trigger = 'on-arrival';\n");
        for (_, text) in &self.sets {
            d.push_str(text);
            d.push('\n');
        }
        d
    }

    /// Whether source `name` chose its own start position in its WITH options.
    pub(super) fn source_sets_startup(&self, name: &str) -> bool {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, text)| text.to_lowercase().contains("scan.startup."))
    }

    /// `CREATE SOURCE` / `SET`: checked, then kept for the session.
    pub(super) fn declare(&mut self, text: &str) -> Result<String> {
        let decls = rivulet_sql::declarations(text)?;
        let [decl] = decls.as_slice() else {
            anyhow::bail!("expected one statement");
        };
        match decl {
            rivulet_sql::Declaration::Source { name } => {
                // Brokers default to the shell's: the source text gets them when it has none.
                let mut stored = text.trim().to_string();
                if !stored.to_lowercase().contains("brokers") && !stored.contains("bootstrap") {
                    if let Some(close) = stored.rfind(')') {
                        stored.insert_str(close, &format!(", brokers = {}", quote(&self.brokers)));
                    }
                }
                // Checked now (options, watermark, types), so a later query only fails for
                // its own mistakes; positions point into what was typed.
                rivulet_sql::compile_select(text, &format!("SELECT * FROM {name}"))?;
                if !stored.ends_with(';') {
                    stored.push(';');
                }
                let replaced = self.sources.iter().position(|(n, _)| n == name);
                match replaced {
                    Some(i) => self.sources[i] = (name.clone(), stored),
                    None => self.sources.push((name.clone(), stored)),
                }
                Ok(format!(
                    "source {name} {}",
                    if replaced.is_some() {
                        "replaced"
                    } else {
                        "declared"
                    }
                ))
            }
            rivulet_sql::Declaration::Set { key, value } => self.set(key, value, text),
            rivulet_sql::Declaration::Sink { .. } | rivulet_sql::Declaration::Insert => {
                anyhow::bail!(
                    "the shell prints a SELECT's rows itself: CREATE SINK and INSERT INTO are for \
                     `rivulet run --sql FILE`"
                )
            }
        }
    }

    fn set(&mut self, key: &str, value: &str, text: &str) -> Result<String> {
        match key {
            "scan.startup.mode" => {
                self.startup = match value {
                    "earliest" | "earliest-offset" => StartingOffsets::Earliest,
                    "latest" | "latest-offset" => StartingOffsets::Latest,
                    other => {
                        anyhow::bail!(
                            "scan.startup.mode: expected 'earliest' or 'latest', got '{other}'"
                        )
                    }
                };
            }
            "trigger" | "output.trigger" => {
                TriggerSpec::try_from(value.to_string())
                    .map_err(|e| anyhow::anyhow!("trigger: {e}"))?;
                self.keep_set("trigger", text);
            }
            "name" | "pipeline.name" | "checkpoint.dir" | "checkpoint.store" => {
                anyhow::bail!(
                    "`{key}` has no meaning in the shell: every query runs as `{QUERY_NAME}` \
                     with a temporary checkpoint"
                )
            }
            other => anyhow::bail!("unknown setting `{other}` (scan.startup.mode, trigger)"),
        }
        Ok(format!("{key} = '{value}'"))
    }

    fn keep_set(&mut self, key: &str, text: &str) {
        let mut stored = text.trim().to_string();
        if !stored.ends_with(';') {
            stored.push(';');
        }
        self.sets.retain(|(k, _)| k != key);
        self.sets.push((key.to_string(), stored));
    }

    pub(super) fn show_sources(&self) -> String {
        let mut o = String::new();
        for (_, text) in &self.sources {
            o.push_str(text);
            o.push('\n');
        }
        let start = match self.startup {
            StartingOffsets::Earliest => "earliest",
            StartingOffsets::Latest => "latest",
            StartingOffsets::Timestamp(_) => "timestamp",
        };
        o.push_str(&format!(
            "-- queries start at: {start} (unless a source sets scan.startup.mode)"
        ));
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_source_compiles_and_start_follows_the_flag() {
        let args = ShellArgs {
            brokers: "127.0.0.1:1".into(),
            topic: "it's".into(),
            from_beginning: false,
            history: None,
            client: Default::default(),
        };
        let mut s = Session::new(&args);
        let c = rivulet_sql::compile_select(&s.decls(), "SELECT * FROM events WHERE value > 90")
            .expect("compiles");
        assert_eq!(
            rivulet_runtime::connectors::kafka::SourceOptions::of(&c.plan.source)
                .expect("valid source")
                .topics,
            vec!["it's".to_string()]
        );
        assert_eq!(c.plan.output.trigger, TriggerSpec::OnArrival);
        assert_eq!(s.startup, StartingOffsets::Latest);
        s.declare("SET scan.startup.mode = 'earliest'")
            .expect("set");
        assert_eq!(s.startup, StartingOffsets::Earliest);
        s.declare("SET trigger = '2s'").expect("set");
        let c = rivulet_sql::compile_select(&s.decls(), "SELECT * FROM events").expect("compiles");
        assert_eq!(
            c.plan.output.trigger,
            TriggerSpec::ProcessingTime(rivulet_engine::plan::DurationMs(2000))
        );
        assert!(s.declare("SET trigger = 'often'").is_err());
        assert!(s.declare("SET name = 'x'").is_err());
        assert!(s
            .declare("CREATE SINK o WITH (connector = 'console')")
            .is_err());
        // A source without brokers gets the shell's; one of the same name replaces it.
        let msg = s
            .declare(
                "CREATE SOURCE events (id BIGINT, ts TIMESTAMP) WITH (connector = 'kafka', \
                 topic = 'other', scan.startup.mode = 'earliest')",
            )
            .expect("declared");
        assert_eq!(msg, "source events replaced");
        assert_eq!(s.sources.len(), 1);
        assert!(
            s.sources[0].1.contains("brokers = '127.0.0.1:1'"),
            "{}",
            s.sources[0].1
        );
        assert!(s.source_sets_startup("events"));
        let e = s
            .declare("CREATE SOURCE bad (id BIGINT) WITH (connector = 'kafka', topik = 'x')")
            .expect_err("bad option");
        assert!(e.to_string().contains("unknown option `topik`"), "{e}");
    }
}
