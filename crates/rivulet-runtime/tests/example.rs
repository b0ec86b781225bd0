//! The example pipeline parses and validates.
#![allow(clippy::unwrap_used)]

#[test]
fn example_pipeline_is_valid() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pipeline.toml");
    let plan = rivulet_engine::Plan::from_toml_file(&p).unwrap();
    assert_eq!(plan.source.topics, vec!["events".to_string()]);
    assert_eq!(plan.aggregates.len(), 4);
}
