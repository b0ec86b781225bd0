//! `compile_select` (the shell's bare SELECT) and `declarations`: the SELECT compiles to the
//! plan its `INSERT INTO` form gives, and its errors point into the SELECT as typed.

use rivulet_sql::{compile, compile_select, declarations, listed_columns, Declaration, SqlError};

const SOURCE: &str = "CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events', brokers = '127.0.0.1:1');";

fn err(r: Result<rivulet_sql::Compiled, SqlError>) -> String {
    match r {
        Ok(c) => panic!("compiled: {:?}", c.plan),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_bare_select_is_the_insert_into_a_console_sink() {
    let select = "SELECT id, window_start, window_end, count(*) AS n\n\
                  FROM TUMBLE(events, ts, INTERVAL '10' SECOND)\n\
                  WHERE abs(value) > 1\n\
                  GROUP BY id, window_start, window_end EMIT CHANGES;";
    let got = compile_select(SOURCE, select).expect("compiles");
    let file = format!(
        "{SOURCE}\nCREATE SINK \"select\" WITH (connector = 'console');\nINSERT INTO \"select\" {select}"
    );
    let want = compile(&file).expect("compiles");
    assert_eq!(Some(&got.plan), want.single_plan());
    assert_eq!(got.source_name, "events");
    assert_eq!(got.sink_name, rivulet_sql::SELECT_SINK);
}

#[test]
fn select_errors_point_into_the_select_as_typed() {
    // Unknown column on line 1, column 28 of the SELECT (not of the declarations before it).
    assert_eq!(
        err(compile_select(
            SOURCE,
            "SELECT * FROM events WHERE vale > 1"
        )),
        "1:28: Schema error: No field named vale. Did you mean 'events.value'? Valid fields are \
         events.id, events.value, events.ts."
    );
    let e = err(compile_select(SOURCE, "SELECT *\nFROM evnts"));
    assert!(e.starts_with("2:6: unknown source `evnts`"), "{e}");
    let e = err(compile_select(SOURCE, "SELECT * FROM events WHERE"));
    assert!(e.starts_with("1:"), "{e}");
    let e = err(compile_select(SOURCE, "SELECT * FROM events; SELECT 1"));
    assert!(e.starts_with("1:23: one statement at a time"), "{e}");
    let e = err(compile_select(SOURCE, "DELETE FROM events"));
    assert!(e.starts_with("1:1: expected SELECT"), "{e}");
    // A non-windowed aggregation without EMIT CHANGES: the error is at SELECT.
    let e = err(compile_select(
        SOURCE,
        "  SELECT id, count(*) FROM events GROUP BY id",
    ));
    assert!(e.starts_with("1:3: a non-windowed aggregation"), "{e}");
}

#[test]
fn declarations_must_not_hold_sinks_or_inserts() {
    let decls = format!("{SOURCE}\nCREATE SINK s WITH (connector = 'console');");
    let e = err(compile_select(&decls, "SELECT * FROM events"));
    assert!(
        e.starts_with("4:13: CREATE SINK is not allowed here"),
        "{e}"
    );
}

#[test]
fn declarations_name_what_each_statement_declares() {
    let d = declarations(&format!(
        "{SOURCE}\nSET Trigger = 'on-arrival';\nCREATE SINK out WITH (connector = 'console');\n\
         INSERT INTO out SELECT * FROM events;"
    ))
    .expect("parses");
    assert_eq!(
        d,
        vec![
            Declaration::Source {
                name: "events".into()
            },
            Declaration::Set {
                key: "trigger".into(),
                value: "on-arrival".into()
            },
            Declaration::Sink { name: "out".into() },
            Declaration::Insert,
        ]
    );
    let e = declarations("CREATE SOURCE x (id BIGINT,\n y MAP) WITH ()").expect_err("bad type");
    assert!(e.to_string().starts_with("2:"), "{e}");
}

#[test]
fn listed_columns_are_those_of_a_plain_select() {
    assert_eq!(
        listed_columns("SELECT value, ID, \"ts\" FROM events WHERE id > 1;"),
        Some(vec!["value".into(), "id".into(), "ts".into()])
    );
    assert_eq!(listed_columns("SELECT * FROM events"), None);
    assert_eq!(listed_columns("SELECT id, abs(value) FROM events"), None);
    assert_eq!(
        listed_columns("SELECT id, count(*) FROM events GROUP BY id EMIT CHANGES"),
        None
    );
    assert_eq!(listed_columns("SELECT id FROM"), None);
}
