//! Reading a connector's options: typed getters that accept what each front end gives (TOML
//! values, or text from `--sink` and SQL `WITH`), aliases, and problems that name the option.
//! No connector's option names live here: each connector module asks for its own.

use std::collections::{BTreeMap, BTreeSet};

use rivulet_engine::expr::unknown_column_message;
use rivulet_engine::plan::{ByteSize, ConnectorSpec, DurationMs, OptionValue};

/// Reads the options of one spec, keeping track of which were used and what was wrong.
/// Problems are `name: message`; [`OptionReader::finish`] adds the unknown options.
pub(crate) struct OptionReader<'a> {
    spec: &'a ConnectorSpec,
    used: BTreeSet<String>,
    /// Every name asked for, aliases too (for "did you mean").
    known: Vec<&'static str>,
    /// The canonical names asked for (for "expected one of").
    canonical: Vec<&'static str>,
    problems: Vec<String>,
}

impl<'a> OptionReader<'a> {
    pub(crate) fn new(spec: &'a ConnectorSpec) -> OptionReader<'a> {
        OptionReader {
            spec,
            used: BTreeSet::new(),
            known: Vec::new(),
            canonical: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Records a problem with option `name`.
    pub(crate) fn problem(&mut self, name: &str, message: impl std::fmt::Display) {
        self.problems.push(format!("{name}: {message}"));
    }

    /// The value under the first of `names` (a canonical name, then its aliases) that is set;
    /// a problem when two of them are.
    fn raw(&mut self, names: &[&'static str]) -> Option<(&'static str, &'a OptionValue)> {
        self.known.extend(names.iter().copied());
        if let Some(n) = names.first() {
            if !self.canonical.contains(n) {
                self.canonical.push(n);
            }
        }
        let mut found: Option<(&'static str, &'a OptionValue)> = None;
        for n in names {
            if let Some(v) = self.spec.options.get(*n) {
                self.used.insert((*n).to_string());
                match found {
                    None => found = Some((n, v)),
                    Some((first, _)) => {
                        self.problem(n, format!("given twice (also as `{first}`)"));
                    }
                }
            }
        }
        found
    }

    /// A value parsed by `parse` from the option's text (numbers and booleans as written).
    pub(crate) fn parsed<T>(
        &mut self,
        names: &[&'static str],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (name, v) = self.raw(names)?;
        let text = match v {
            OptionValue::List(_) => {
                self.problem(name, "expected a single value, got a list");
                return None;
            }
            other => other.to_string(),
        };
        match parse(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(name, e);
                None
            }
        }
    }

    /// A text value (must not be empty).
    pub(crate) fn text(&mut self, names: &[&'static str]) -> Option<String> {
        self.parsed(names, |s| {
            if s.trim().is_empty() {
                Err("must not be empty".to_string())
            } else {
                Ok(s.to_string())
            }
        })
    }

    /// A required text value.
    pub(crate) fn required_text(&mut self, names: &[&'static str]) -> Option<String> {
        let v = self.text(names);
        if v.is_none()
            && !self
                .spec
                .options
                .keys()
                .any(|k| names.contains(&k.as_str()))
        {
            self.problem(names[0], "required");
        }
        v
    }

    /// A list: a TOML list, or comma-separated text (`'a, b'`; `''` is the empty list).
    pub(crate) fn list(&mut self, names: &[&'static str]) -> Option<Vec<String>> {
        let (_, v) = self.raw(names)?;
        Some(match v {
            OptionValue::List(l) => l.clone(),
            other => other
                .to_string()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        })
    }

    /// A whole number of at least `min`.
    pub(crate) fn number<T>(&mut self, names: &[&'static str], min: T) -> Option<T>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        self.parsed(names, |s| {
            let n: T = s
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not valid; expected a whole number"))?;
            if n < min {
                return Err(if min.to_string() == "1" {
                    "must be > 0".to_string()
                } else {
                    format!("must be at least {min}")
                });
            }
            Ok(n)
        })
    }

    /// A duration (`"30s"`), > 0.
    pub(crate) fn duration(&mut self, names: &[&'static str]) -> Option<DurationMs> {
        self.parsed(names, |s| {
            let d = DurationMs::try_from(s.to_string())?;
            if d.0 <= 0 {
                return Err("must be > 0".to_string());
            }
            Ok(d)
        })
    }

    /// A byte size (`"128MiB"`), > 0.
    pub(crate) fn bytes(&mut self, names: &[&'static str]) -> Option<ByteSize> {
        self.parsed(names, |s| {
            let b = ByteSize::try_from(s.to_string())?;
            if b.0 == 0 {
                return Err("must be > 0".to_string());
            }
            Ok(b)
        })
    }

    /// One of `choices` (`(text, value)`), by its text.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        names: &[&'static str],
        choices: &[(&str, T)],
    ) -> Option<T> {
        self.parsed(names, |s| {
            choices
                .iter()
                .find(|(n, _)| *n == s)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let all: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
                    format!("`{s}` is not valid; expected one of {}", all.join(", "))
                })
        })
    }

    /// Every option under `prefix` (`properties.`) not read already, the prefix stripped, as
    /// text.
    pub(crate) fn prefixed(&mut self, prefix: &'static str) -> BTreeMap<String, String> {
        self.known.push(prefix);
        self.canonical.push(prefix);
        let mut out = BTreeMap::new();
        for (k, v) in &self.spec.options {
            if self.used.contains(k) {
                continue;
            }
            if let Some(rest) = k.strip_prefix(prefix) {
                self.used.insert(k.clone());
                out.insert(rest.to_string(), v.to_string());
            }
        }
        out
    }

    /// Whether any of `names` is set (without reading it).
    pub(crate) fn has(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.spec.options.contains_key(*n))
    }

    /// The problems, led by one for every option no getter asked for (a misspelt option is
    /// the likely cause of a "required" problem after it).
    pub(crate) fn finish(self) -> Vec<String> {
        let mut problems = Vec::new();
        let unknown: Vec<&String> = self
            .spec
            .options
            .keys()
            .filter(|k| !self.used.contains(*k))
            .collect();
        for k in unknown {
            let expected: Vec<String> = self
                .canonical
                .iter()
                .map(|n| match n.ends_with('.') {
                    true => format!("`{n}<name>`"),
                    false => format!("`{n}`"),
                })
                .collect();
            let hint = unknown_column_message(k, self.known.iter().copied());
            // `unknown column "x" (did you mean "y"?)` → the suggestion part only.
            let suggestion = hint
                .find(" (did you mean")
                .map(|i| hint[i..].to_string())
                .unwrap_or_default();
            let msg = if expected.is_empty() {
                format!(
                    "unknown option `{k}`: a {} connector takes no options",
                    self.spec.connector
                )
            } else {
                format!(
                    "unknown option `{k}`{suggestion}, expected one of {}",
                    expected.join(", ")
                )
            };
            problems.push(format!("{k}: {msg}"));
        }
        problems.extend(self.problems);
        problems
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn getters_accept_toml_values_and_text_and_name_the_option() {
        let spec = ConnectorSpec::new("x")
            .with("n", OptionValue::Integer(4))
            .with("t", "4")
            .with("size", "12 parsecs")
            .with("l", "a, b,")
            .with("alias.name", "v")
            .with("rol_size", "1MB");
        let mut r = OptionReader::new(&spec);
        assert_eq!(r.number::<u32>(&["n"], 2), Some(4));
        assert_eq!(r.number::<u32>(&["t"], 5), None);
        assert_eq!(r.bytes(&["size"]), None);
        assert_eq!(r.list(&["l"]), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(r.text(&["canonical", "alias.name"]), Some("v".to_string()));
        assert_eq!(r.duration(&["roll_size"]), None);
        let p = r.finish();
        assert!(
            p[0].starts_with(
                "rol_size: unknown option `rol_size` (did you mean \"roll_size\"?), expected one of"
            ),
            "{p:?}"
        );
        assert_eq!(p[1], "t: must be at least 5");
        assert!(
            p[2].starts_with("size: unknown size unit `parsecs`"),
            "{p:?}"
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn an_option_and_its_alias_together_are_a_problem() {
        let spec = ConnectorSpec::new("x").with("a", "1").with("b", "2");
        let mut r = OptionReader::new(&spec);
        assert_eq!(r.text(&["a", "b"]), Some("1".to_string()));
        assert_eq!(r.finish(), ["b: given twice (also as `a`)"]);
    }
}
