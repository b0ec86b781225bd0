//! The figures a bench prints: aligned `key: value` lines, then the same as one JSON object
//! (the line docs/BENCHMARKS.md quotes).

use serde_json::{json, Value};

/// Figures in print order; printed as `key: value` lines, then as one JSON object.
pub(crate) struct Report {
    fields: Vec<(String, Value)>,
}

impl Report {
    pub(crate) fn new(mode: &str) -> Report {
        Report {
            fields: vec![("bench".to_string(), json!(mode))],
        }
    }

    /// A report without the `bench` line, for figures that go into another one.
    pub(crate) fn empty() -> Report {
        Report { fields: Vec::new() }
    }

    pub(crate) fn add(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.fields.push((key.into(), value.into()));
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Adds `other`'s figures with `prefix` in front of their names.
    pub(crate) fn add_prefixed(&mut self, prefix: &str, other: Report) {
        for (k, v) in other.fields {
            self.fields.push((format!("{prefix}{k}"), v));
        }
    }

    pub(crate) fn print(&self) {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        for (k, v) in &self.fields {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{:<width$} {text}", format!("{k}:"));
        }
        let obj: serde_json::Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        println!("{}", Value::Object(obj));
    }
}

/// `x` rounded to two decimals (figures are printed that way).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
