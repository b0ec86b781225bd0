//! Splits a `.sql` file into statements and reads the streaming extensions that are not
//! standard SQL, on sqlparser's tokens and parser primitives (no expression parser of our own):
//!
//! - `CREATE SOURCE name (col TYPE [NOT NULL], ..., WATERMARK FOR col AS expr) WITH (k = 'v', ...)`
//! - `CREATE SINK name WITH (k = 'v', ...)`
//! - `SET key = 'value'` (query-level options: name, trigger, checkpoint directory)
//! - a trailing `EMIT ON WINDOW CLOSE` or `EMIT CHANGES` on `INSERT INTO ... SELECT`
//!
//! Column types, the watermark expression and the whole `INSERT ... SELECT` are parsed by
//! sqlparser itself (the dialect DataFusion uses), so positions in every error are sqlparser's.

use rivulet_engine::plan::FieldType;
use sqlparser::ast::{Expr, Ident, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use crate::error::{Pos, Result, SqlError};

/// One statement of the file.
#[derive(Debug)]
pub(crate) enum Item {
    Source(Box<SourceDecl>),
    Sink(SinkDecl),
    Set(Opt),
    Insert(InsertStmt),
}

#[derive(Debug)]
pub(crate) struct SourceDecl {
    pub name: String,
    pub pos: Pos,
    pub columns: Vec<ColumnDecl>,
    pub watermark: Option<WatermarkDecl>,
    pub options: Vec<Opt>,
}

#[derive(Debug)]
pub(crate) struct ColumnDecl {
    pub name: String,
    pub data_type: FieldType,
    pub nullable: bool,
}

#[derive(Debug)]
pub(crate) struct WatermarkDecl {
    pub column: String,
    pub pos: Pos,
    /// The `AS` expression, e.g. `ts - INTERVAL '5' SECOND`.
    pub expr: Expr,
}

#[derive(Debug)]
pub(crate) struct SinkDecl {
    pub name: String,
    pub pos: Pos,
    pub options: Vec<Opt>,
}

/// A `key = 'value'` pair from a `WITH (...)` list or a `SET` statement.
#[derive(Debug, Clone)]
pub(crate) struct Opt {
    /// Lower-cased, dotted key (`scan.startup.mode`).
    pub key: String,
    pub value: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emit {
    OnWindowClose,
    Changes,
}

#[derive(Debug)]
pub(crate) struct InsertStmt {
    /// Boxed: an AST statement is several kB, the other items are small.
    pub statement: Box<Statement>,
    pub pos: Pos,
    pub emit: Option<(Emit, Pos)>,
}

/// The dialect of every statement; DataFusion's default dialect is the generic one too.
pub(crate) const DIALECT: GenericDialect = GenericDialect {};

/// The name an identifier resolves to: unquoted names are case-insensitive (lower-cased, as
/// DataFusion normalises them), quoted names are kept as written.
pub(crate) fn ident_name(id: &Ident) -> String {
    match id.quote_style {
        None => id.value.to_lowercase(),
        Some(_) => id.value.clone(),
    }
}

/// sqlparser's messages end in `at Line: L, Column: C`; that position becomes ours.
fn parser_error(e: ParserError, fallback: Pos) -> SqlError {
    let msg = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    if let Some(i) = msg.rfind(" at Line: ") {
        let tail = &msg[i + " at Line: ".len()..];
        let mut parts = tail.split(", Column: ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let col = parts.next().and_then(|c| c.trim().parse().ok());
        if let (Some(line), Some(col)) = (line, col) {
            return SqlError::At {
                pos: Pos { line, col },
                message: msg[..i].to_string(),
            };
        }
    }
    SqlError::At {
        pos: fallback,
        message: msg,
    }
}

fn word_is(t: &Token, w: &str) -> bool {
    matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
}

/// Parses the whole file into statements.
pub(crate) fn parse(text: &str) -> Result<Vec<Item>> {
    let tokens = Tokenizer::new(&DIALECT, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location, e.message))?;
    let mut items = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    for t in tokens {
        match &t.token {
            Token::Whitespace(Whitespace::Space | Whitespace::Tab | Whitespace::Newline)
            | Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => {}
            Token::SemiColon => {
                if !current.is_empty() {
                    items.push(statement(std::mem::take(&mut current))?);
                }
            }
            _ => current.push(t),
        }
    }
    if !current.is_empty() {
        items.push(statement(current)?);
    }
    Ok(items)
}

/// Parses a bare `SELECT ... [EMIT ...]` (the shell's input) as `INSERT INTO <sink> SELECT ...`.
/// Positions stay those of `text`, so errors point into what the user typed; one trailing `;`
/// is allowed.
pub(crate) fn parse_select(text: &str, sink: &str) -> Result<Item> {
    let tokens = Tokenizer::new(&DIALECT, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location, e.message))?;
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut ended: Option<Pos> = None;
    for t in tokens {
        match &t.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => {
                ended.get_or_insert(t.span.start.into());
            }
            _ => {
                if ended.is_some() {
                    return Err(SqlError::at(
                        t.span.start,
                        "one statement at a time: this comes after the `;`",
                    ));
                }
                current.push(t);
            }
        }
    }
    let Some(first) = current.first() else {
        return Err(SqlError::File("empty query".into()));
    };
    let pos: Pos = first.span.start.into();
    if !word_is(&first.token, "SELECT") {
        return Err(SqlError::at(
            pos,
            format!("expected SELECT, found `{}`", first.token),
        ));
    }
    // The INSERT INTO part has no place in the text: its tokens carry empty spans, and the
    // statement's own position is that of SELECT.
    let mut tokens = vec![
        TokenWithSpan::wrap(Token::make_keyword("INSERT")),
        TokenWithSpan::wrap(Token::make_keyword("INTO")),
        TokenWithSpan::wrap(Token::make_word(sink, Some('"'))),
    ];
    tokens.extend(current);
    statement_at(tokens, pos)
}

fn statement(tokens: Vec<TokenWithSpan>) -> Result<Item> {
    let pos: Pos = tokens
        .first()
        .map(|t| t.span.start.into())
        .unwrap_or(Pos { line: 1, col: 1 });
    statement_at(tokens, pos)
}

fn statement_at(tokens: Vec<TokenWithSpan>, pos: Pos) -> Result<Item> {
    let first = |i: usize| tokens.get(i).map(|t| &t.token);
    let is = |i: usize, w: &str| first(i).is_some_and(|t| word_is(t, w));
    if is(0, "CREATE") && is(1, "SOURCE") {
        return create_source(tokens, pos).map(|s| Item::Source(Box::new(s)));
    }
    if is(0, "CREATE") && is(1, "SINK") {
        return create_sink(tokens, pos).map(Item::Sink);
    }
    if is(0, "SET") {
        let mut p = Parser::new(&DIALECT).with_tokens_with_locations(tokens);
        p.next_token();
        let opt = option(&mut p, pos)?;
        end(&mut p, pos)?;
        return Ok(Item::Set(opt));
    }
    if is(0, "INSERT") {
        let mut tokens = tokens;
        let n = tokens.len();
        let tail_is = |ws: &[&str]| {
            n > ws.len()
                && ws
                    .iter()
                    .enumerate()
                    .all(|(i, w)| word_is(&tokens[n - ws.len() + i].token, w))
        };
        let emit = if tail_is(&["EMIT", "ON", "WINDOW", "CLOSE"]) {
            Some((Emit::OnWindowClose, 4))
        } else if tail_is(&["EMIT", "CHANGES"]) {
            Some((Emit::Changes, 2))
        } else {
            None
        };
        let emit = emit.map(|(e, k)| {
            let at: Pos = tokens[n - k].span.start.into();
            tokens.truncate(n - k);
            (e, at)
        });
        let mut p = Parser::new(&DIALECT).with_tokens_with_locations(tokens);
        let statement = p.parse_statement().map_err(|e| parser_error(e, pos))?;
        end(&mut p, pos)?;
        return Ok(Item::Insert(InsertStmt {
            statement: Box::new(statement),
            pos,
            emit,
        }));
    }
    let found = tokens
        .first()
        .map(|t| t.token.to_string())
        .unwrap_or_default();
    Err(SqlError::at(
        pos,
        format!(
            "unexpected `{found}`: a streaming SQL file holds CREATE SOURCE, CREATE SINK, SET and \
             INSERT INTO ... SELECT statements"
        ),
    ))
}

/// Fails unless the statement is over.
fn end(p: &mut Parser, pos: Pos) -> Result<()> {
    let t = p.peek_token();
    if t.token == Token::EOF {
        return Ok(());
    }
    p.expected("end of statement", t)
        .map_err(|e| parser_error(e, pos))
}

fn expect_word(p: &mut Parser, w: &str, pos: Pos) -> Result<()> {
    let t = p.next_token();
    if word_is(&t.token, w) {
        Ok(())
    } else {
        Err(SqlError::at(
            if t.token == Token::EOF {
                pos
            } else {
                t.span.start.into()
            },
            format!("expected {w}, found `{}`", t.token),
        ))
    }
}

fn create_source(tokens: Vec<TokenWithSpan>, pos: Pos) -> Result<SourceDecl> {
    let mut p = Parser::new(&DIALECT).with_tokens_with_locations(tokens);
    p.next_token();
    p.next_token();
    let name_tok = p.peek_token();
    let name = ident_name(&p.parse_identifier().map_err(|e| parser_error(e, pos))?);
    let mut columns = Vec::new();
    let mut watermark = None;
    p.expect_token(&Token::LParen)
        .map_err(|e| parser_error(e, pos))?;
    loop {
        let t = p.peek_token();
        let at: Pos = t.span.start.into();
        if word_is(&t.token, "WATERMARK") {
            p.next_token();
            if !p.parse_keyword(Keyword::FOR) {
                return Err(SqlError::at(
                    at,
                    "expected `WATERMARK FOR <column> AS <expression>`",
                ));
            }
            let col_tok = p.peek_token();
            let column = ident_name(&p.parse_identifier().map_err(|e| parser_error(e, pos))?);
            if !p.parse_keyword(Keyword::AS) {
                return Err(SqlError::at(
                    at,
                    "expected `WATERMARK FOR <column> AS <expression>`",
                ));
            }
            let expr = p.parse_expr().map_err(|e| parser_error(e, pos))?;
            if watermark.is_some() {
                return Err(SqlError::at(at, "a source has at most one WATERMARK"));
            }
            watermark = Some(WatermarkDecl {
                column,
                pos: col_tok.span.start.into(),
                expr,
            });
        } else {
            let name = ident_name(&p.parse_identifier().map_err(|e| parser_error(e, pos))?);
            let ty_tok = p.peek_token();
            let ty = p.parse_data_type().map_err(|e| parser_error(e, pos))?;
            let data_type = field_type(&ty.to_string()).ok_or_else(|| {
                SqlError::at(
                    ty_tok.span.start,
                    format!(
                        "column `{name}`: type {ty} is not supported by the JSON source (BIGINT, \
                         INT, DOUBLE, VARCHAR, BOOLEAN, TIMESTAMP)"
                    ),
                )
            })?;
            let nullable = if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                false
            } else {
                // SQL columns are nullable unless declared NOT NULL.
                let _ = p.parse_keyword(Keyword::NULL);
                true
            };
            if columns.iter().any(|c: &ColumnDecl| c.name == name) {
                return Err(SqlError::at(
                    at,
                    format!("column `{name}` is declared twice"),
                ));
            }
            columns.push(ColumnDecl {
                name,
                data_type,
                nullable,
            });
        }
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen)
            .map_err(|e| parser_error(e, pos))?;
        break;
    }
    let options = with_options(&mut p, pos)?;
    end(&mut p, pos)?;
    Ok(SourceDecl {
        name,
        pos: name_tok.span.start.into(),
        columns,
        watermark,
        options,
    })
}

fn create_sink(tokens: Vec<TokenWithSpan>, pos: Pos) -> Result<SinkDecl> {
    let mut p = Parser::new(&DIALECT).with_tokens_with_locations(tokens);
    p.next_token();
    p.next_token();
    let name_tok = p.peek_token();
    let name = ident_name(&p.parse_identifier().map_err(|e| parser_error(e, pos))?);
    let options = with_options(&mut p, pos)?;
    end(&mut p, pos)?;
    Ok(SinkDecl {
        name,
        pos: name_tok.span.start.into(),
        options,
    })
}

/// `WITH (key = 'value', ...)`.
fn with_options(p: &mut Parser, pos: Pos) -> Result<Vec<Opt>> {
    expect_word(p, "WITH", pos)?;
    p.expect_token(&Token::LParen)
        .map_err(|e| parser_error(e, pos))?;
    let mut opts = Vec::new();
    if p.consume_token(&Token::RParen) {
        return Ok(opts);
    }
    loop {
        opts.push(option(p, pos)?);
        if p.consume_token(&Token::Comma) {
            continue;
        }
        p.expect_token(&Token::RParen)
            .map_err(|e| parser_error(e, pos))?;
        return Ok(opts);
    }
}

/// `key = 'value'`, where the key is words joined by `.` or `-` (`scan.startup.mode`,
/// `scan.startup.timestamp-millis`) and the value a string or a number.
fn option(p: &mut Parser, pos: Pos) -> Result<Opt> {
    let first = p.next_token();
    let at: Pos = first.span.start.into();
    let mut key = match &first.token {
        Token::Word(w) => w.value.to_lowercase(),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.to_lowercase(),
        other => {
            return Err(SqlError::at(
                at,
                format!("expected an option name, found `{other}`"),
            ))
        }
    };
    loop {
        let t = p.peek_token();
        let sep = match t.token {
            Token::Period => '.',
            Token::Minus => '-',
            _ => break,
        };
        p.next_token();
        let w = p.next_token();
        match &w.token {
            Token::Word(w) => {
                key.push(sep);
                key.push_str(&w.value.to_lowercase());
            }
            other => {
                return Err(SqlError::at(
                    w.span.start,
                    format!("expected the rest of option name `{key}{sep}`, found `{other}`"),
                ))
            }
        }
    }
    p.expect_token(&Token::Eq)
        .map_err(|e| parser_error(e, pos))?;
    let v = p.next_token();
    let value = match &v.token {
        Token::SingleQuotedString(s) => s.clone(),
        Token::Number(n, _) => n.clone(),
        Token::Word(w) if matches!(w.keyword, Keyword::TRUE | Keyword::FALSE) => {
            w.value.to_lowercase()
        }
        other => {
            return Err(SqlError::at(
                if v.token == Token::EOF {
                    at
                } else {
                    v.span.start.into()
                },
                format!("option `{key}`: expected a quoted value, found `{other}`"),
            ))
        }
    };
    Ok(Opt {
        key,
        value,
        pos: at,
    })
}

/// The engine type of a SQL column type (as sqlparser prints it).
fn field_type(sql: &str) -> Option<FieldType> {
    let s = sql.to_ascii_uppercase();
    let base = s.split(['(', ' ']).next().unwrap_or("");
    Some(match base {
        "BIGINT" | "INT8" | "INT64" => FieldType::Bigint,
        "INT" | "INTEGER" | "INT4" | "INT32" => FieldType::Int,
        "DOUBLE" | "FLOAT" | "FLOAT8" | "FLOAT64" | "REAL" => FieldType::Double,
        "VARCHAR" | "STRING" | "TEXT" | "CHAR" | "CHARACTER" => FieldType::String,
        "BOOLEAN" | "BOOL" => FieldType::Boolean,
        "TIMESTAMP" => FieldType::Timestamp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_source_sink_set_and_insert_with_emit() {
        let items = parse(
            "CREATE SOURCE Events (id BIGINT NOT NULL, v DOUBLE, ts TIMESTAMP,\n\
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)\n\
             WITH (connector = 'kafka', topic = 'events', scan.startup.timestamp-millis = 12);\n\
             CREATE SINK out WITH (connector = 'console');\n\
             SET name = 'q';\n\
             INSERT INTO out SELECT id FROM events EMIT CHANGES;",
        )
        .expect("parses");
        assert_eq!(items.len(), 4);
        let Item::Source(s) = &items[0] else {
            panic!("not a source: {items:?}")
        };
        assert_eq!(s.name, "events");
        assert_eq!(s.columns.len(), 3);
        assert!(!s.columns[0].nullable && s.columns[1].nullable);
        assert_eq!(s.columns[2].data_type, FieldType::Timestamp);
        let wm = s.watermark.as_ref().expect("watermark");
        assert_eq!(wm.column, "ts");
        assert_eq!(wm.expr.to_string(), "ts - INTERVAL '5' SECOND");
        assert_eq!(s.options[2].key, "scan.startup.timestamp-millis");
        assert_eq!(s.options[2].value, "12");
        let Item::Insert(i) = &items[3] else {
            panic!("not an insert")
        };
        assert_eq!(i.emit.map(|e| e.0), Some(Emit::Changes));
        assert_eq!(i.pos, Pos { line: 6, col: 1 });
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse("CREATE SOURCE e (id BIGINT,\n  x MAP) WITH ()").expect_err("bad type");
        assert!(e.to_string().starts_with("2:"), "{e}");
        let e = parse("SELECT 1;\nDROP TABLE x;").expect_err("not allowed");
        assert!(e.to_string().starts_with("1:1: unexpected `SELECT`"), "{e}");
        let e = parse("INSERT INTO s SELECT a FROM t WHERE").expect_err("bad select");
        assert!(e.to_string().starts_with("1:"), "{e}");
    }
}
