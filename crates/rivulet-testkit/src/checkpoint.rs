//! What a query's checkpoint directory says was committed (the layout of rivulet-runtime's
//! `checkpoint` module: `commits/<epoch>` markers, `offsets/<epoch>` JSON with the epoch's
//! input ranges), read while the query may be writing it.

use std::path::Path;

/// The largest epoch number among the files of a checkpoint subdirectory (`commits`,
/// `offsets`, ...); `None` while there is none.
pub fn latest_epoch(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
}

/// One input range of an epoch: the topic, the partition and the end offset (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommittedRange {
    pub topic: String,
    pub partition: i32,
    pub end: i64,
}

/// The latest committed epoch of `checkpoint` and its input ranges in file order. `None`
/// before the first commit (or when a file vanished under a concurrent purge: ask again).
pub fn latest_commit(checkpoint: &Path) -> Option<(u64, Vec<CommittedRange>)> {
    let epoch = latest_epoch(&checkpoint.join("commits"))?;
    let text = std::fs::read_to_string(checkpoint.join("offsets").join(epoch.to_string())).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let ranges = v["ranges"]
        .as_array()?
        .iter()
        .map(|r| CommittedRange {
            topic: r["topic"].as_str().unwrap_or_default().to_string(),
            partition: r["partition"].as_i64().expect("partition") as i32,
            end: r["end"].as_i64().expect("end"),
        })
        .collect();
    Some((epoch, ranges))
}
