//! Dead letters and late rows.
//!
//! A record that fails decoding goes to the dead-letter topic (`<topic>.dlq`, or the
//! source's override) unchanged: same key, same value bytes, with headers `rivulet.error` (the
//! reason), `rivulet.source.topic`, `rivulet.source.partition` and `rivulet.source.offset`.
//! Rows behind the watermark go to the source's late topic as JSON rows when one is
//! configured, else they are only counted. Both go through [`EpochProducer`], so replayed epochs do not duplicate
//! them; each destination topic is its own writer (`dlq/<topic>`, `late/<topic>`), so the
//! dead letters of several queries over one source share `<topic>.dlq` without one query's
//! records hiding another's.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;

use crate::connectors::kafka::{KafkaConnection, SourceOptions};
use crate::rows::row_json;
pub use crate::sinks::kafka::WriterScope;
use crate::sinks::kafka::{EpochProducer, OutRecord};
use crate::Result;

pub const ERROR_HEADER: &str = "rivulet.error";
pub const SOURCE_TOPIC_HEADER: &str = "rivulet.source.topic";
pub const SOURCE_PARTITION_HEADER: &str = "rivulet.source.partition";
pub const SOURCE_OFFSET_HEADER: &str = "rivulet.source.offset";

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub reason: String,
}

impl DeadRecord {
    fn to_out(&self) -> OutRecord {
        OutRecord {
            key: self.key.clone(),
            value: self.value.clone(),
            partition_hint: self.partition,
            partition: None,
            headers: vec![
                (ERROR_HEADER.into(), self.reason.clone().into_bytes()),
                (SOURCE_TOPIC_HEADER.into(), self.topic.clone().into_bytes()),
                (
                    SOURCE_PARTITION_HEADER.into(),
                    self.partition.to_string().into_bytes(),
                ),
                (
                    SOURCE_OFFSET_HEADER.into(),
                    self.offset.to_string().into_bytes(),
                ),
            ],
        }
    }
}

/// Where dead letters and late rows go.
pub struct DeadLetters {
    scope: WriterScope,
    connection: KafkaConnection,
    source: SourceOptions,
    /// Producers per dead-letter topic, opened on first use.
    dlq: BTreeMap<String, EpochProducer>,
    late: Option<EpochProducer>,
}

impl DeadLetters {
    /// The source's dead-letter topic (`<source topic>.dlq` unless overridden) and late
    /// topic (else late rows are counted only), written through the source's connection.
    pub fn connect(scope: WriterScope, source: &SourceOptions) -> Result<DeadLetters> {
        let connection = source.connection.clone();
        let late = match &source.late_topic {
            Some(t) => Some(EpochProducer::connect(
                &connection,
                t,
                scope.writer(&format!("late/{t}")),
            )?),
            None => None,
        };
        Ok(DeadLetters {
            scope,
            connection,
            source: source.clone(),
            dlq: BTreeMap::new(),
            late,
        })
    }

    /// The dead-letter topic for records of `source_topic`.
    pub fn dlq_topic_for(&self, source_topic: &str) -> String {
        self.source.dlq_topic_for(source_topic)
    }

    /// Sends the epoch's dead letters (in the given, deterministic order). Records are grouped
    /// by destination topic, each topic's records in order.
    pub fn send_dead_letters(&mut self, epoch: u64, records: &[DeadRecord]) -> Result<()> {
        let mut by_topic: BTreeMap<String, Vec<OutRecord>> = BTreeMap::new();
        for r in records {
            by_topic
                .entry(self.dlq_topic_for(&r.topic))
                .or_default()
                .push(r.to_out());
        }
        for (topic, outs) in by_topic {
            if !self.dlq.contains_key(&topic) {
                let p = EpochProducer::connect(
                    &self.connection,
                    &topic,
                    self.scope.writer(&format!("dlq/{topic}")),
                )?;
                self.dlq.insert(topic.clone(), p);
            }
            if let Some(p) = self.dlq.get_mut(&topic) {
                p.send_epoch(epoch, &outs)?;
            }
        }
        Ok(())
    }

    /// The epochs sent so far are committed (see [`EpochProducer::commit`]).
    pub fn commit(&mut self) -> Result<()> {
        for p in self.dlq.values_mut().chain(self.late.as_mut()) {
            p.commit()?;
        }
        Ok(())
    }

    /// Whether these writers commit with the task's checkpoint ([`crate::producer`]).
    pub fn joins_epoch_transaction(&self) -> bool {
        self.scope
            .joint
            .as_ref()
            .is_some_and(|p| p.joins(&self.connection))
    }

    /// Whether late rows are sent anywhere.
    pub fn has_late_topic(&self) -> bool {
        self.late.is_some()
    }

    /// Sends the epoch's late rows as JSON (when a late topic is configured).
    pub fn send_late(&mut self, epoch: u64, batches: &[RecordBatch]) -> Result<()> {
        let Some(p) = self.late.as_mut() else {
            return Ok(());
        };
        let mut outs = Vec::new();
        for b in batches {
            for i in 0..b.num_rows() {
                outs.push(OutRecord {
                    key: None,
                    value: Some(row_json(b, i).into_bytes()),
                    partition_hint: outs.len() as i32,
                    partition: None,
                    headers: Vec::new(),
                });
            }
        }
        p.send_epoch(epoch, &outs)?;
        Ok(())
    }
}
