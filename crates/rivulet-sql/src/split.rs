//! Statement boundaries in typed or streamed SQL text, found before any parsing: an
//! interactive front end (the `rivulet sql` shell) reads until a statement is complete and
//! compiles each one on its own, keeping positions those of the input.

use std::ops::Range;

/// The complete statements of `text` and where its unfinished rest starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statements {
    /// Byte ranges of the complete statements, without their `;`.
    pub complete: Vec<Range<usize>>,
    /// Where the text after the last `;` starts (`text.len()` when nothing follows it).
    pub rest: usize,
}

/// Splits `text` at top-level `;`: not inside quotes (`'...'`, `"..."`, a doubled quote
/// being an escaped one), `-- line` comments or `/* block */` comments.
pub fn split_statements(text: &str) -> Statements {
    let b = text.as_bytes();
    let mut complete = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // To the closing quote; a doubled quote is an escaped one and simply reopens.
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                complete.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    Statements {
        complete,
        rest: start.min(b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> (Vec<&str>, &str) {
        let st = split_statements(s);
        let got = st.complete.iter().map(|r| s[r.clone()].trim()).collect();
        (got, s[st.rest..].trim())
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        let s = "SELECT ';' FROM t; -- a ; comment\nSET x = 'a;b'; /* ; */ SELECT";
        let (got, rest) = texts(s);
        assert_eq!(
            got,
            vec!["SELECT ';' FROM t", "-- a ; comment\nSET x = 'a;b'"]
        );
        assert_eq!(rest, "/* ; */ SELECT");
        assert!(split_statements("SELECT 1").complete.is_empty());
    }

    #[test]
    fn quotes_identifiers_and_escapes() {
        let (got, rest) = texts("SELECT 'it''s;' AS \"a;b\" FROM t;");
        assert_eq!(got, vec!["SELECT 'it''s;' AS \"a;b\" FROM t"]);
        assert_eq!(rest, "");
        // Unterminated quote or comment: everything is the unfinished rest.
        for open in ["SELECT 'a; b", "SELECT 1 /* ; ", "x\"y;"] {
            let st = split_statements(open);
            assert!(st.complete.is_empty(), "{open}");
            assert_eq!(st.rest, 0, "{open}");
        }
    }

    #[test]
    fn ranges_point_into_the_input() {
        let s = "SET a = 'b'; SELECT\n  x;;";
        let st = split_statements(s);
        assert_eq!(st.complete, vec![0..11, 12..23, 24..24]);
        assert_eq!(st.rest, s.len());
        assert_eq!(&s[12..23], " SELECT\n  x");
        assert_eq!(split_statements("").rest, 0);
    }
}
