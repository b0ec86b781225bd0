//! Loading a pipeline file: TOML → [`Plan`], with errors that point at `line:column` and
//! name the field (`12:3: aggregates[1].windw: unknown field ...`), then validated.
//!
//! Connector options are checked by whoever knows the connectors (the runtime's registry):
//! [`Plan::from_toml_checked`] takes that check, so its problems come out in the same message
//! as the query's own.

use std::path::Path;

use super::Plan;
use crate::error::EngineError;

/// A check beyond [`Plan::validate`]: the problems it finds, each starting with its field path
/// (`sinks[0].roll_size: must be > 0`).
pub type ExtraCheck<'a> = &'a dyn Fn(&Plan) -> Vec<String>;

impl Plan {
    /// Parses and validates a pipeline file's text (not its connectors' options: see
    /// [`Plan::from_toml_checked`]).
    pub fn from_toml(text: &str) -> Result<Plan, EngineError> {
        Plan::from_toml_checked(text, &|_| Vec::new())
    }

    /// [`Plan::from_toml`], then `extra` (the connectors' check) when the query is valid.
    pub fn from_toml_checked(text: &str, extra: ExtraCheck<'_>) -> Result<Plan, EngineError> {
        let plan: Plan =
            ::toml::from_str(text).map_err(|e| EngineError::Plan(toml_error_message(text, &e)))?;
        plan.validate_with(extra)?;
        Ok(plan)
    }

    /// [`Plan::from_toml`] on a file; messages are prefixed with the path
    /// (`pipeline.toml:12:3: ...`).
    pub fn from_toml_file(path: &Path) -> Result<Plan, EngineError> {
        Plan::from_toml_file_checked(path, &|_| Vec::new())
    }

    /// [`Plan::from_toml_checked`] on a file.
    pub fn from_toml_file_checked(path: &Path, extra: ExtraCheck<'_>) -> Result<Plan, EngineError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::Plan(format!("{shown}: cannot read: {e}")))?;
        let plan: Plan = ::toml::from_str(&text).map_err(|e| {
            let m = toml_error_message(&text, &e);
            // `path:line:col: ...` when the error has a position, else `path: ...`.
            let sep = if m.starts_with(|c: char| c.is_ascii_digit()) {
                ":"
            } else {
                ": "
            };
            EngineError::Plan(format!("{shown}{sep}{m}"))
        })?;
        plan.validate_with(extra).map_err(|e| match e {
            EngineError::Plan(msg) => EngineError::Plan(format!("{shown}: {msg}")),
            other => other,
        })?;
        Ok(plan)
    }
}

/// `line:col: [path: ]message` for a TOML error, from its byte span.
fn toml_error_message(text: &str, e: &::toml::de::Error) -> String {
    let msg = e.message().trim_end();
    let Some(span) = e.span() else {
        return msg.to_string();
    };
    let start = refine_in_table(text, span.start, msg).unwrap_or(span.start);
    let (line, col) = line_col(text, start);
    match field_path_at(text, start) {
        Some(path) if !msg.contains(&format!("`{path}`")) => format!("{line}:{col}: {path}: {msg}"),
        _ => format!("{line}:{col}: {msg}"),
    }
}

/// Errors inside internally tagged tables (`[window]`, `[[sinks]]`) lose their span: serde
/// buffers the table, so toml can only point at its header. Find the key the message talks
/// about (`unknown field `windw``, or a value quoted in it such as `10x`) among the table's
/// lines and point there instead.
fn refine_in_table(text: &str, offset: usize, msg: &str) -> Option<usize> {
    let rest = text.get(offset..)?;
    let mut lines = rest.split_inclusive('\n');
    let header = lines.next()?;
    if !header.trim_start().starts_with('[') {
        return None;
    }
    let tokens: Vec<&str> = msg.split('`').skip(1).step_by(2).collect();
    let mut pos = offset + header.len();
    for line in lines {
        let t = line.trim_start();
        if t.starts_with('[') {
            break;
        }
        if let Some((key, value)) = t.split_once('=') {
            let key = key.trim().trim_matches('"');
            let value = value.trim().trim_matches('"');
            let unknown_key = msg.starts_with("unknown field") && tokens.first() == Some(&key);
            if unknown_key || tokens.iter().any(|tok| !tok.is_empty() && *tok == value) {
                return Some(pos + (line.len() - t.len()));
            }
        }
        pos += line.len();
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Best-effort field path (`aggregates[1].column`) of the line holding `offset`: the last table
/// header before it (array tables counted) plus the key on that line. `None` when unsure.
fn field_path_at(text: &str, offset: usize) -> Option<String> {
    let mut header: Option<String> = None;
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let end = pos + line.len();
        let t = line.trim();
        let is_header = t.starts_with('[');
        if is_header {
            if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
                let name = name.trim().to_string();
                let n = counts.entry(name.clone()).or_insert(0);
                header = Some(format!("{name}[{n}]"));
                *n += 1;
            } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
                header = Some(name.trim().to_string());
            }
        }
        if offset < end || end == text.len() {
            if is_header {
                return header;
            }
            let (key, _) = t.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return None;
            }
            return Some(match header {
                Some(h) => format!("{h}.{key}"),
                None => key.to_string(),
            });
        }
        pos = end;
    }
    None
}
