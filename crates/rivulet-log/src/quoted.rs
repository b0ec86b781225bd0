//! Client-supplied text in log lines and error messages.
//!
//! Topic names that passed validation are plain ASCII, but everything else a client sends
//! (invalid topic names, config keys and values, client ids, group and member ids) may hold
//! newlines, ANSI escapes or megabytes of text. Written raw, one such string forges whole log
//! lines. [`Quoted`] prints it in double quotes with Rust's escaping (`\n`, `\u{1b}`, `\"`)
//! and cut to [`Quoted::MAX_CHARS`] characters, saying how much was left out.

use std::fmt;

/// Displays a string quoted, escaped and bounded; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl Quoted<'_> {
    /// Characters shown before the rest is summarised.
    pub const MAX_CHARS: usize = 200;
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        f.write_char('"')?;
        let mut cut_at = None;
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == Self::MAX_CHARS {
                cut_at = Some(i);
                break;
            }
            for e in c.escape_debug() {
                f.write_char(e)?;
            }
        }
        f.write_char('"')?;
        if let Some(i) = cut_at {
            write!(f, "…(+{} bytes)", self.0.len() - i)?;
        }
        Ok(())
    }
}

/// [`Quoted`] as an owned `String`.
pub fn quoted(s: &str) -> String {
    Quoted(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_quotes() {
        let forged = "id\n2026-01-01T00:00:00Z ERROR \u{1b}[31mFAKE LINE\u{1b}[0m \"x\"";
        let shown = quoted(forged);
        assert!(!shown.contains('\n'));
        assert!(!shown.contains('\u{1b}'));
        assert_eq!(
            shown,
            r#""id\n2026-01-01T00:00:00Z ERROR \u{1b}[31mFAKE LINE\u{1b}[0m \"x\"""#
        );
    }

    #[test]
    fn long_strings_are_cut_with_a_count() {
        let long = "é".repeat(1000);
        let shown = quoted(&long);
        assert!(shown.starts_with("\"éé"));
        assert!(shown.ends_with(&format!("\"…(+{} bytes)", 2 * 800)));
        assert_eq!(quoted(""), "\"\"");
    }
}
