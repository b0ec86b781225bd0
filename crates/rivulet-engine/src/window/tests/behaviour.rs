//! Behaviour beyond the ground truths: batch boundaries, approximate percentiles, output
//! modes, running aggregates, composite keys, key recycling, refused definitions, throughput.

use super::*;

#[test]
fn output_is_independent_of_batch_boundaries() {
    // No watermark until the end: the same rows in the same order, cut differently, must give
    // bit-identical results (floating-point sums, stddev, sketches included).
    let events = gen_events(21, 20_000);
    let aggs = {
        let mut a = standard_aggs();
        a.push(AggregateSpec {
            function: F::ApproxPercentile,
            column: Some("value".into()),
            percentile: Some(0.5),
            alias: Some("median".into()),
        });
        a
    };
    for window in [
        WindowSpec::Tumbling {
            size: DurationMs(5_000),
        },
        WindowSpec::Session {
            gap: DurationMs(100),
        },
    ] {
        let run = |chunk: usize| {
            let mut op = WindowAggregate::new(
                schema(),
                &["id".to_string()],
                Some(&window),
                &aggs,
                OutputMode::Append,
            )
            .unwrap();
            let mut out = Vec::new();
            for c in events.chunks(chunk) {
                op.process_batch(to_batch(c), &mut out).unwrap();
            }
            op.on_close(&mut out).unwrap();
            out
        };
        let a = run(20_000);
        let b = run(37);
        let c = run(1);
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
}

fn percentile_op(q: f64) -> WindowAggregate {
    let aggs = [AggregateSpec {
        function: F::ApproxPercentile,
        column: Some("value".into()),
        percentile: Some(q),
        alias: Some("p".into()),
    }];
    let window = WindowSpec::Tumbling {
        size: DurationMs(1_000_000_000),
    };
    WindowAggregate::new(schema(), &[], Some(&window), &aggs, OutputMode::Append).unwrap()
}

#[test]
fn approx_percentile_accuracy_and_determinism() {
    let mut rng = StdRng::seed_from_u64(99);
    // Log-normal-ish values: skewed, like latencies.
    let events: Vec<Event> = (0..100_000)
        .map(|i| Event {
            id: 0,
            value: Some((rng.gen_range(0.0f64..1.0) * 4.0).exp() * 10.0),
            n: None,
            t: i,
            partition: 0,
        })
        .collect();
    let mut sorted: Vec<f64> = events.iter().filter_map(|e| e.value).collect();
    sorted.sort_by(f64::total_cmp);
    for q in [0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999] {
        let run = |chunk: usize| {
            let mut op = percentile_op(q);
            let mut out = Vec::new();
            for c in events.chunks(chunk) {
                op.process_batch(to_batch(c), &mut out).unwrap();
            }
            op.on_close(&mut out).unwrap();
            assert_eq!(out.len(), 1);
            out[0]
                .column_by_name("p")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0)
        };
        let est = run(1_000);
        assert_eq!(est.to_bits(), run(333).to_bits(), "deterministic for q={q}");
        let n = sorted.len() as f64;
        let lo = sorted.partition_point(|x| *x < est) as f64 / n;
        let hi = sorted.partition_point(|x| *x <= est) as f64 / n;
        let err = if q < lo {
            lo - q
        } else if q > hi {
            q - hi
        } else {
            0.0
        };
        assert!(err <= 0.01, "q={q}: estimate {est} has rank error {err}");
    }
}

#[test]
fn append_and_update_modes() {
    let tumbling = WindowSpec::Tumbling {
        size: DurationMs(10),
    };
    let ev = |id, t, v: f64| Event {
        id,
        value: Some(v),
        n: Some(1),
        t,
        partition: 0,
    };
    let batch1 = to_batch(&[ev(1, 1, 1.0), ev(2, 2, 2.0), ev(1, 12, 3.0)]);
    let batch2 = to_batch(&[ev(1, 3, 4.0), ev(1, 13, 5.0)]);
    let summary = |out: &[RecordBatch]| -> Vec<(i64, i64, i64, Option<f64>)> {
        out.iter()
            .flat_map(rows_of)
            .map(|r| (r.start, r.id, r.count, r.sum))
            .collect()
    };

    // Append: nothing until the watermark passes a window's end; then each window once.
    let mut op = operator(Some(tumbling.clone()), OutputMode::Append);
    let mut out = Vec::new();
    op.process_batch(batch1.clone(), &mut out).unwrap();
    op.on_trigger(&mut out).unwrap();
    op.on_watermark(9, &mut out).unwrap();
    assert!(out.is_empty());
    op.process_batch(batch2.clone(), &mut out).unwrap();
    op.on_watermark(10, &mut out).unwrap();
    assert_eq!(summary(&out), [(0, 1, 2, Some(5.0)), (0, 2, 1, Some(2.0))]);
    out.clear();
    // A row for the closed window is dropped; the watermark never goes back.
    op.process_batch(to_batch(&[ev(1, 5, 100.0)]), &mut out)
        .unwrap();
    op.on_watermark(5, &mut out).unwrap();
    assert_eq!(op.watermark(), Some(10));
    assert_eq!(op.metrics().num_rows_dropped_by_watermark, 1);
    op.on_close(&mut out).unwrap();
    assert_eq!(summary(&out), [(10, 1, 2, Some(8.0))]);
    assert_eq!(op.metrics().num_rows_total, 0);

    // Update: every trigger emits the rows changed since the previous one.
    let mut op = operator(Some(tumbling), OutputMode::Update);
    let mut out = Vec::new();
    op.process_batch(batch1, &mut out).unwrap();
    assert_eq!(op.metrics().num_rows_updated, 3);
    op.on_trigger(&mut out).unwrap();
    assert_eq!(
        summary(&out),
        [
            (0, 1, 1, Some(1.0)),
            (0, 2, 1, Some(2.0)),
            (10, 1, 1, Some(3.0))
        ]
    );
    assert_eq!(op.metrics().num_rows_updated, 0);
    out.clear();
    op.on_trigger(&mut out).unwrap();
    assert!(out.is_empty(), "nothing changed");
    op.process_batch(batch2, &mut out).unwrap();
    // The watermark closes [0, 10) before its last change was emitted: emitted, then dropped.
    op.on_watermark(10, &mut out).unwrap();
    assert!(out.is_empty());
    // (0, key 2) had no pending change and is dropped at once; (0, key 1) waits for the trigger.
    assert_eq!(op.metrics().num_rows_total, 2);
    op.on_trigger(&mut out).unwrap();
    assert_eq!(summary(&out), [(0, 1, 2, Some(5.0)), (10, 1, 2, Some(8.0))]);
    assert_eq!(op.metrics().num_rows_total, 1);
    assert!(op.metrics().memory_used_bytes > 0);
}

#[test]
fn running_aggregate_without_window() {
    let mut op = operator(None, OutputMode::Update);
    let schema = op.output_schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "count",
            "sum_value",
            "avg_value",
            "min_value",
            "max_value",
            "stddev_value",
            "sum_n",
            "min_n",
            "avg_n"
        ]
    );
    let ev = |id, v: Option<f64>| Event {
        id,
        value: v,
        n: None,
        t: 0,
        partition: 0,
    };
    let mut out = Vec::new();
    op.process_batch(
        to_batch(&[ev(3, Some(1.0)), ev(1, None), ev(3, Some(3.0))]),
        &mut out,
    )
    .unwrap();
    op.on_watermark(i64::MAX, &mut out).unwrap();
    op.on_trigger(&mut out).unwrap();
    let b = &out[0];
    assert_eq!(i64_col(b, "id"), [Some(1), Some(3)]);
    assert_eq!(i64_col(b, "count"), [Some(1), Some(2)]);
    assert_eq!(f64_col(b, "sum_value"), [None, Some(4.0)]);
    assert_eq!(f64_col(b, "stddev_value"), [None, Some(2f64.sqrt())]);
    assert_eq!(i64_col(b, "sum_n"), [None, None]);
    out.clear();
    op.process_batch(to_batch(&[ev(3, Some(5.0))]), &mut out)
        .unwrap();
    op.on_close(&mut out).unwrap();
    assert_eq!(i64_col(&out[0], "count"), [Some(3)]);
    assert_eq!(f64_col(&out[0], "avg_value"), [Some(3.0)]);

    let err = WindowAggregate::new(
        schema_ref(),
        &["id".into()],
        None,
        &standard_aggs(),
        OutputMode::Append,
    );
    assert!(err.is_err(), "append without a window is refused");
}

fn schema_ref() -> SchemaRef {
    schema()
}

#[test]
fn composite_string_and_null_keys() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("kind", DataType::Int32, false),
        Field::new("v", DataType::Int32, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(columns::EVENT_TIME, DataType::Int64, false),
    ]));
    let aggs = [
        spec(F::Count, None, Some("n")),
        spec(F::Count, Some("v"), None),
        spec(F::Max, Some("v"), None),
        spec(F::Sum, Some("v"), None),
        spec(F::Min, Some("city"), Some("first_city")),
        spec(F::Max, Some("ts"), None),
    ];
    let window = WindowSpec::Tumbling {
        size: DurationMs(100),
    };
    let group = ["city".to_string(), "kind".to_string()];
    let mut op = WindowAggregate::new(
        schema.clone(),
        &group,
        Some(&window),
        &aggs,
        OutputMode::Append,
    )
    .unwrap();
    let out_schema = op.output_schema();
    assert_eq!(out_schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(out_schema.field(1).data_type(), &DataType::Int32);
    assert_eq!(
        out_schema.field_with_name("max_v").unwrap().data_type(),
        &DataType::Int32
    );
    assert_eq!(
        out_schema.field_with_name("sum_v").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        out_schema.field_with_name("count_v").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        out_schema.field_with_name("max_ts").unwrap().data_type(),
        schema.field(3).data_type()
    );
    let cities: StringArray = vec![Some("b"), None, Some("a"), Some("b"), None, Some("b")]
        .into_iter()
        .collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(cities) as ArrayRef,
            Arc::new(Int32Array::from(vec![1, 1, 2, 1, 1, 2])),
            Arc::new(Int32Array::from(vec![
                Some(5),
                Some(7),
                None,
                Some(-2),
                None,
                Some(1),
            ])),
            Arc::new(
                TimestampMillisecondArray::from(vec![10, 20, 30, 40, 50, 60]).with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    op.process_batch(batch, &mut out).unwrap();
    let state = op.snapshot().unwrap();
    let mut op2 =
        WindowAggregate::new(schema, &group, Some(&window), &aggs, OutputMode::Append).unwrap();
    op2.restore(&state).unwrap();
    op.on_close(&mut out).unwrap();
    let mut out2 = Vec::new();
    op2.on_close(&mut out2).unwrap();
    assert_eq!(out, out2);
    let b = &out[0];
    let city: Vec<Option<&str>> = b.column(0).as_string::<i32>().iter().collect();
    // Nulls first, then by value.
    assert_eq!(city, [None, Some("a"), Some("b"), Some("b")]);
    let kind: Vec<i32> = b
        .column(1)
        .as_primitive::<arrow::datatypes::Int32Type>()
        .values()
        .to_vec();
    assert_eq!(kind, [1, 2, 1, 2]);
    assert_eq!(i64_col(b, "n"), [Some(2), Some(1), Some(2), Some(1)]);
    assert_eq!(i64_col(b, "count_v"), [Some(1), Some(0), Some(2), Some(1)]);
    assert_eq!(i64_col(b, "sum_v"), [Some(7), None, Some(3), Some(1)]);
    let max_v: Vec<Option<i32>> = b
        .column_by_name("max_v")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int32Type>()
        .iter()
        .collect();
    assert_eq!(max_v, [Some(7), None, Some(5), Some(1)]);
    let first_city: Vec<Option<&str>> = b
        .column_by_name("first_city")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .collect();
    assert_eq!(first_city, [None, Some("a"), Some("b"), Some("b")]);
    let max_ts = b
        .column_by_name("max_ts")
        .unwrap()
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(max_ts.values().to_vec(), [50, 30, 40, 60]);
}

#[test]
fn keys_are_recycled_when_windows_close() {
    let tumbling = WindowSpec::Tumbling {
        size: DurationMs(10),
    };
    let mut op = operator(Some(tumbling), OutputMode::Append);
    let mut out = Vec::new();
    for round in 0..50i64 {
        let evs: Vec<Event> = (0..100)
            .map(|i| Event {
                id: round * 1_000 + i,
                value: Some(1.0),
                n: Some(1),
                t: round * 10,
                partition: 0,
            })
            .collect();
        op.process_batch(to_batch(&evs), &mut out).unwrap();
        op.on_watermark(round * 10 + 10, &mut out).unwrap();
        assert_eq!(op.metrics().num_rows_total, 0);
    }
    assert_eq!(out.iter().map(RecordBatch::num_rows).sum::<usize>(), 5_000);
    // Late rows with new keys do not leak key entries either.
    op.process_batch(
        to_batch(&[Event {
            id: -1,
            value: None,
            n: None,
            t: 0,
            partition: 0,
        }]),
        &mut out,
    )
    .unwrap();
    assert_eq!(op.keys.live_count(), 0);
}

#[test]
fn invalid_definitions_are_refused() {
    let w = WindowSpec::Tumbling {
        size: DurationMs(10),
    };
    let new = |group: &[&str], aggs: &[AggregateSpec]| {
        let group: Vec<String> = group.iter().map(|s| s.to_string()).collect();
        WindowAggregate::new(schema(), &group, Some(&w), aggs, OutputMode::Append)
    };
    assert!(new(&["nope"], &[spec(F::Count, None, None)]).is_err());
    assert!(new(&["id"], &[spec(F::Sum, None, None)]).is_err());
    assert!(new(&["id"], &[spec(F::Sum, Some("nope"), None)]).is_err());
    assert!(new(
        &["id"],
        &[spec(F::Count, None, None), spec(F::Count, None, None)]
    )
    .is_err());
    assert!(new(&["id"], &[spec(F::ApproxPercentile, Some("value"), None)]).is_err());
    let mut p = spec(F::ApproxPercentile, Some("value"), None);
    p.percentile = Some(1.5);
    assert!(new(&["id"], &[p]).is_err());
    let mut p = spec(F::Avg, Some("value"), None);
    p.percentile = Some(0.5);
    assert!(new(&["id"], &[p]).is_err());
    assert!(new(&["id"], &[spec(F::Count, None, None)]).is_ok());
}

/// `cargo test --release -p rivulet-engine throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    let n = 5_000_000usize;
    let mut rng = StdRng::seed_from_u64(1);
    let events: Vec<Event> = (0..n)
        .map(|i| Event {
            id: rng.gen_range(0..1_000),
            value: Some(rng.gen_range(0.0..100.0)),
            n: Some(1),
            t: i as i64 / 5,
            partition: 0,
        })
        .collect();
    let batches: Vec<RecordBatch> = events.chunks(8_192).map(to_batch).collect();
    let tumbling = WindowSpec::Tumbling {
        size: DurationMs(10_000),
    };
    let hopping = WindowSpec::Hopping {
        size: DurationMs(30_000),
        slide: DurationMs(10_000),
    };
    let session = WindowSpec::Session {
        gap: DurationMs(1_000),
    };
    for (name, w, aggs) in [
        (
            "tumbling, count/sum/avg/min/max",
            &tumbling,
            standard_aggs()[..5].to_vec(),
        ),
        ("tumbling, 9 aggregates", &tumbling, standard_aggs()),
        (
            "hopping ×3, count/sum/avg/min/max",
            &hopping,
            standard_aggs()[..5].to_vec(),
        ),
        (
            "session, count/sum/avg/min/max",
            &session,
            standard_aggs()[..5].to_vec(),
        ),
    ] {
        let mut op = WindowAggregate::new(
            schema(),
            &["id".to_string()],
            Some(w),
            &aggs,
            OutputMode::Append,
        )
        .unwrap();
        let mut out = Vec::new();
        let start = std::time::Instant::now();
        for (i, b) in batches.iter().enumerate() {
            op.process_batch(b.clone(), &mut out).unwrap();
            op.on_watermark((i as i64 + 1) * 8_192 / 5 - 5_000, &mut out)
                .unwrap();
        }
        op.on_close(&mut out).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!("Int64 key, {name}: {:.1} M events/s", n as f64 / secs / 1e6);
    }
}
