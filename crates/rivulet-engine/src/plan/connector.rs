//! Sources and sinks as the plan holds them: which connector, and its options as written —
//! a `[source]` or `[[sinks]]` table of the pipeline file, a `--sink` shorthand, a SQL
//! `WITH (...)` list. The engine does not interpret them: each connector's module in the
//! runtime (`rivulet_runtime::connectors`) owns its option names, parses and validates them,
//! describes them (secrets redacted) and builds the connector. Keeping them generic here is
//! what lets one module own a connector end to end.
//!
//! In TOML a sink's `type` names the connector and every other key is an option; nested
//! tables flatten into dotted names (`[source.properties]` `"security.protocol" = "SSL"` is the
//! option `properties.security.protocol`, as in Flink's `WITH`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One option's value: TOML gives typed values, the CLI and SQL give text; connectors accept
/// either where it makes sense (`compact_min_files = 4` or `'4'`).
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// A list of texts (`partition_by = ["id"]`).
    List(Vec<String>),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Text(s) => f.write_str(s),
            OptionValue::Integer(n) => write!(f, "{n}"),
            OptionValue::Float(x) => write!(f, "{x}"),
            OptionValue::Boolean(b) => write!(f, "{b}"),
            OptionValue::List(v) => write!(f, "[{}]", v.join(", ")),
        }
    }
}

impl From<&str> for OptionValue {
    fn from(s: &str) -> OptionValue {
        OptionValue::Text(s.to_string())
    }
}

impl From<String> for OptionValue {
    fn from(s: String) -> OptionValue {
        OptionValue::Text(s)
    }
}

/// A source or sink: the connector's name and its options (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectorSpec {
    /// The connector (`kafka`, `console`, `file`, `parquet`, `postgres`).
    pub connector: String,
    /// The options, by name.
    pub options: BTreeMap<String, OptionValue>,
}

impl ConnectorSpec {
    /// A connector with no options yet.
    pub fn new(connector: impl Into<String>) -> ConnectorSpec {
        ConnectorSpec {
            connector: connector.into(),
            ..ConnectorSpec::default()
        }
    }

    /// The same spec with one more option.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<OptionValue>) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }

    /// Sets (or replaces) an option.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<OptionValue>) {
        self.options.insert(name.into(), value.into());
    }

    /// An option's value.
    pub fn get(&self, name: &str) -> Option<&OptionValue> {
        self.options.get(name)
    }
}

/// The key naming the connector in a TOML table.
const TYPE_KEY: &str = "type";

impl Serialize for ConnectorSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.options.len() + 1))?;
        m.serialize_entry(TYPE_KEY, &self.connector)?;
        for (k, v) in &self.options {
            match v {
                OptionValue::Text(t) => m.serialize_entry(k, t)?,
                OptionValue::Integer(n) => m.serialize_entry(k, n)?,
                OptionValue::Float(x) => m.serialize_entry(k, x)?,
                OptionValue::Boolean(b) => m.serialize_entry(k, b)?,
                OptionValue::List(l) => m.serialize_entry(k, l)?,
            }
        }
        m.end()
    }
}

/// A TOML/JSON value as an option (tables are flattened by the caller).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawValue {
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    List(Vec<String>),
    Table(BTreeMap<String, RawValue>),
}

fn flatten(
    prefix: &str,
    v: RawValue,
    out: &mut BTreeMap<String, OptionValue>,
) -> Result<(), String> {
    let value = match v {
        RawValue::Boolean(b) => OptionValue::Boolean(b),
        RawValue::Integer(n) => OptionValue::Integer(n),
        RawValue::Float(x) => OptionValue::Float(x),
        RawValue::Text(t) => OptionValue::Text(t),
        RawValue::List(l) => OptionValue::List(l),
        RawValue::Table(t) => {
            for (k, v) in t {
                flatten(&format!("{prefix}.{k}"), v, out)?;
            }
            return Ok(());
        }
    };
    if out.insert(prefix.to_string(), value).is_some() {
        return Err(format!("option `{prefix}` is given twice"));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for ConnectorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ConnectorSpec, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConnectorSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of connector options")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConnectorSpec, A::Error> {
                let mut spec = ConnectorSpec::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == TYPE_KEY {
                        spec.connector = map.next_value()?;
                        continue;
                    }
                    let v: RawValue = map.next_value().map_err(|e| {
                        de::Error::custom(format!(
                            "option `{key}`: expected a string, number, boolean, list of \
                             strings or table ({e})"
                        ))
                    })?;
                    flatten(&key, v, &mut spec.options).map_err(de::Error::custom)?;
                }
                Ok(spec)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn toml_tables_flatten_and_round_trip() {
        let text = r#"
type = "kafka"
topics = ["events"]
max_records_per_trigger = 400
[properties]
"security.protocol" = "SASL_SSL"
sasl = { mechanism = "PLAIN" }
"#;
        let spec: ConnectorSpec = toml::from_str(text).unwrap();
        assert_eq!(spec.connector, "kafka");
        assert_eq!(
            spec.get("topics"),
            Some(&OptionValue::List(vec!["events".into()]))
        );
        assert_eq!(
            spec.get("max_records_per_trigger"),
            Some(&OptionValue::Integer(400))
        );
        assert_eq!(
            spec.get("properties.security.protocol"),
            Some(&OptionValue::Text("SASL_SSL".into()))
        );
        assert_eq!(
            spec.get("properties.sasl.mechanism"),
            Some(&OptionValue::Text("PLAIN".into()))
        );
        let again: ConnectorSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["type"], "kafka");
        assert_eq!(json["properties.security.protocol"], "SASL_SSL");
    }

    #[test]
    fn duplicate_flattened_names_are_errors() {
        let text = "type = \"x\"\n\"a.b\" = \"1\"\n[a]\nb = \"2\"\n";
        let e = toml::from_str::<ConnectorSpec>(text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("option `a.b` is given twice"), "{e}");
    }
}
