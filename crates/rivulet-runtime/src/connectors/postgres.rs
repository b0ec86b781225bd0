//! The PostgreSQL connector: upserts each micro-batch into a table keyed by the group keys
//! and the window start ([`crate::sinks::PostgresSink`] has the protocol). Shorthand
//! `--sink postgres://USER:PASSWORD@HOST:PORT/DB[?table=NAME]`.
//!
//! | option | meaning |
//! |---|---|
//! | `url` | `postgres://user:password@host:port/database` or libpq's `key=value` form; its password is never printed; `sslmode` (`disable` … `verify-full`) and `sslrootcert=FILE` as in libpq (`sinks/pg_tls.rs`) |
//! | `table` | `name` or `schema.name` (created when missing) [default: the query name; SQL: the sink's name] |
//! | `max_pending_epochs` | committed epochs held on local disk while the server is away; the query pauses beyond that [default: 1000] |

use arrow::datatypes::Schema;
use rivulet_engine::plan::{ConnectorSpec, OptionValue, Plan};

use super::options::OptionReader;
use super::SinkConnector;
use crate::error::RuntimeError;
use crate::sinks::{PostgresSink, Sink, SinkContext};
use crate::Result;

/// The connector's name.
pub const NAME: &str = "postgres";
/// Default `max_pending_epochs`.
pub const DEFAULT_MAX_PENDING_EPOCHS: u32 = 1000;

const URL: &[&str] = &["url"];
const TABLE: &[&str] = &["table"];
const MAX_PENDING_EPOCHS: &[&str] = &["max_pending_epochs"];
/// The `--sink` URL parameter naming the table.
const TABLE_PARAM: &str = "table=";

/// A PostgreSQL sink's options (see the module docs).
#[derive(Clone, PartialEq)]
pub struct PostgresOptions {
    pub url: String,
    table: Option<String>,
    pub max_pending_epochs: u32,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("table", &self.table)
            .field("max_pending_epochs", &self.max_pending_epochs)
            .finish()
    }
}

impl PostgresOptions {
    /// Reads the options of `spec`; every problem at once.
    pub fn parse(spec: &ConnectorSpec) -> std::result::Result<PostgresOptions, Vec<String>> {
        let mut r = OptionReader::new(spec);
        let url = r.required_text(URL);
        if let Some(u) = &url {
            if let Err(e) = crate::sinks::pg_tls::split_tls(u) {
                r.problem(URL[0], e);
            }
        }
        let table = r.text(TABLE);
        if let Some(t) = &table {
            if let Err(m) = check_table_name(t) {
                r.problem(TABLE[0], m);
            }
        }
        let max_pending_epochs = r.number::<u32>(MAX_PENDING_EPOCHS, 1);
        let problems = r.finish();
        match url {
            Some(url) if problems.is_empty() => Ok(PostgresOptions {
                url,
                table,
                max_pending_epochs: max_pending_epochs.unwrap_or(DEFAULT_MAX_PENDING_EPOCHS),
            }),
            _ => Err(problems),
        }
    }

    fn of(spec: &ConnectorSpec) -> Result<PostgresOptions> {
        PostgresOptions::parse(spec)
            .map_err(|p| RuntimeError::Plan(format!("postgres sink: {}", p.join("; "))))
    }

    /// The options for `table` at `url` (the defaults otherwise).
    pub fn new(url: impl Into<String>, table: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            table: Some(table.into()),
            max_pending_epochs: DEFAULT_MAX_PENDING_EPOCHS,
        }
    }

    /// The spec of a sink with these options.
    pub fn spec(&self) -> ConnectorSpec {
        let mut s = ConnectorSpec::new(NAME).with(URL[0], self.url.as_str());
        if let Some(t) = &self.table {
            s.set(TABLE[0], t.as_str());
        }
        if self.max_pending_epochs != DEFAULT_MAX_PENDING_EPOCHS {
            s.set(
                MAX_PENDING_EPOCHS[0],
                OptionValue::Integer(i64::from(self.max_pending_epochs)),
            );
        }
        s
    }

    /// The target table for a query named `query_name`.
    pub fn table_name(&self, query_name: &str) -> String {
        self.table.clone().unwrap_or_else(|| query_name.to_string())
    }
}

/// A PostgreSQL table name the sink accepts: `name` or `schema.name`, each an unquoted
/// identifier (letters, digits, `_`, not starting with a digit, at most 63 bytes). Upper-case
/// letters are kept as written (the sink quotes identifiers).
pub fn check_table_name(table: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 {
        return Err(format!("`{table}`: expected NAME or SCHEMA.NAME"));
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.len() <= 63
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !p.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(format!(
                "`{table}`: `{p}` is not a plain identifier (letters, digits and _, not starting \
                 with a digit, at most 63 bytes)"
            ));
        }
    }
    Ok(())
}

/// A connection string with its password replaced by `***` (URL and `key=value` forms).
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // user:password@host...: the userinfo ends at the last `@` before the path.
        let end = rest.find('/').unwrap_or(rest.len());
        let mut out = match rest[..end].rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                let masked = if userinfo.contains(':') {
                    format!("{user}:***")
                } else {
                    user.to_string()
                };
                format!("{scheme}://{masked}{}", &rest[at..])
            }
            None => url.to_string(),
        };
        // A `password=` query parameter.
        if let Some(q) = out.find('?') {
            let (base, query) = out.split_at(q + 1);
            let masked: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            out = format!("{base}{}", masked.join("&"));
        }
        return out;
    }
    url.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PostgreSQL sink connector.
#[derive(Debug)]
pub struct Postgres;

impl SinkConnector for Postgres {
    fn name(&self) -> &'static str {
        NAME
    }

    fn shorthand(&self, value: &str) -> Option<ConnectorSpec> {
        if !(value.starts_with("postgres://") || value.starts_with("postgresql://")) {
            return None;
        }
        // `table=NAME` is the sink's, not the server's: take it out of the query string.
        let mut spec = ConnectorSpec::new(NAME);
        let url = match value.split_once('?') {
            None => value.to_string(),
            Some((base, query)) => {
                let rest: Vec<&str> = query
                    .split('&')
                    .filter(|kv| match kv.strip_prefix(TABLE_PARAM) {
                        Some(t) => {
                            spec.set(TABLE[0], t);
                            false
                        }
                        None => !kv.is_empty(),
                    })
                    .collect();
                if rest.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", rest.join("&"))
                }
            }
        };
        spec.set(URL[0], url);
        Some(spec)
    }

    fn check_options(&self, spec: &ConnectorSpec) -> Vec<String> {
        PostgresOptions::parse(spec).err().unwrap_or_default()
    }

    fn check_in_plan(&self, spec: &ConnectorSpec, plan: &Plan, _: &Schema) -> Vec<String> {
        let Ok(o) = PostgresOptions::parse(spec) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if o.table.is_none() {
            if let Err(m) = check_table_name(&plan.name) {
                problems.push(format!("{}: {m}", TABLE[0]));
            }
        }
        if plan.group_by.is_empty() && plan.window.is_none() {
            problems.push(
                "a postgres sink upserts by group keys and window; the query has neither"
                    .to_string(),
            );
        }
        problems
    }

    fn describe(&self, spec: &ConnectorSpec, plan: &Plan) -> Result<String> {
        // The URL is not printed: it holds a password.
        Ok(format!(
            "postgres table {}",
            PostgresOptions::of(spec)?.table_name(&plan.name)
        ))
    }

    fn target(&self, spec: &ConnectorSpec, plan: &Plan) -> Result<Option<String>> {
        let o = PostgresOptions::of(spec)?;
        Ok(Some(format!(
            "postgres table `{}` at {}",
            o.table_name(&plan.name),
            redact_url(&o.url)
        )))
    }

    fn redact(&self, spec: &ConnectorSpec) -> ConnectorSpec {
        let mut s = spec.clone();
        for n in URL {
            if let Some(OptionValue::Text(u)) = s.options.get_mut(*n) {
                *u = redact_url(u);
            }
        }
        s
    }

    fn declare(&self, name: &str, mut spec: ConnectorSpec) -> ConnectorSpec {
        if spec.get(TABLE[0]).is_none() {
            spec.set(TABLE[0], name);
        }
        spec
    }

    fn open(&self, spec: &ConnectorSpec, ctx: &SinkContext<'_>) -> Result<Box<dyn Sink>> {
        Ok(Box::new(PostgresSink::open(
            &PostgresOptions::of(spec)?,
            ctx,
        )?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_both_forms() {
        assert_eq!(
            redact_url("postgres://rivulet:s3cret@127.0.0.1:5432/db?table=x&password=p2"),
            "postgres://rivulet:***@127.0.0.1:5432/db?table=x&password=***"
        );
        assert_eq!(
            redact_url("postgres://rivulet@h/db"),
            "postgres://rivulet@h/db"
        );
        assert_eq!(
            redact_url("host=h user=u password=s3cret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn shorthand_takes_the_table_out_of_the_url() {
        let s = Postgres
            .shorthand("postgres://u:p@h:5432/db?sslmode=disable&table=stats")
            .unwrap();
        let o = PostgresOptions::parse(&s).unwrap();
        assert_eq!(o.url, "postgres://u:p@h:5432/db?sslmode=disable");
        assert_eq!(o.table_name("q"), "stats");
        assert_eq!(o.max_pending_epochs, DEFAULT_MAX_PENDING_EPOCHS);
        assert!(!format!("{o:?}").contains(":p@"));
        assert!(Postgres.shorthand("kafka:x").is_none());
    }
}
