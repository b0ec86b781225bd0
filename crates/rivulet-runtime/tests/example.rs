//! The example pipeline parses and validates, connectors included.
#![allow(clippy::unwrap_used)]

#[test]
fn example_pipeline_is_valid() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pipeline.toml");
    let plan = rivulet_runtime::connectors::load_toml_file(&p).unwrap();
    let source = rivulet_runtime::connectors::kafka::SourceOptions::of(&plan.source).unwrap();
    assert_eq!(source.topics, vec!["events".to_string()]);
    assert_eq!(plan.aggregates.len(), 4);
}
