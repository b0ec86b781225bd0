//! Kafka connection settings: the one type every Rivulet connection to a cluster is made
//! from — the query's source, the Kafka sink, the dead-letter and late-row writers, the
//! generator, the admin commands and the benchmarks.
//!
//! Settings are bootstrap servers plus client properties under the names Kafka users know
//! from librdkafka and the Java client (`security.protocol`, `sasl.mechanism`, …), handed to
//! librdkafka as given. Property values may be secrets: [`KafkaConnection::describe`] and the
//! `Debug` output redact them.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;

/// Bootstrap servers and client properties (see the module docs).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaConnection {
    /// `host:port[,host:port...]` (librdkafka's `bootstrap.servers`).
    pub bootstrap_servers: String,
    /// Client properties, by their librdkafka / Java client names.
    pub properties: BTreeMap<String, String>,
}

/// What replaces a secret property's value in descriptions.
pub const REDACTED: &str = "***";

/// Whether the client property `name` holds a secret (a password, key or token), whose value
/// must never be printed.
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "secret", "token", "credentials", "jaas"]
        .iter()
        .any(|s| n.contains(s))
        || n.ends_with("key.pem")
}

impl KafkaConnection {
    /// Settings for `bootstrap_servers` with no client properties.
    pub fn new(bootstrap_servers: impl Into<String>) -> KafkaConnection {
        KafkaConnection {
            bootstrap_servers: bootstrap_servers.into(),
            properties: BTreeMap::new(),
        }
    }

    /// The same settings with one more property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// A librdkafka configuration with these settings (and librdkafka's defaults otherwise;
    /// its own log lines at warning level and above).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        c
    }

    /// `servers` or `servers (name=value, ...)`, secret values replaced by [`REDACTED`].
    pub fn describe(&self) -> String {
        if self.properties.is_empty() {
            return self.bootstrap_servers.clone();
        }
        let props: Vec<String> = self
            .redacted_properties()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} ({})", self.bootstrap_servers, props.join(", "))
    }

    /// The properties with secret values replaced by [`REDACTED`].
    pub fn redacted_properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties.iter().map(|(k, v)| {
            let v = if is_secret_property(k) {
                REDACTED
            } else {
                v.as_str()
            };
            (k.as_str(), v)
        })
    }
}

impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConnection")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field(
                "properties",
                &self.redacted_properties().collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_everywhere_they_are_shown() {
        let c = KafkaConnection::new("k1:9092,k2:9092")
            .with_property("security.protocol", "SASL_SSL")
            .with_property("sasl.username", "alice")
            .with_property("sasl.password", "hunter2")
            .with_property("ssl.key.password", "p4ss");
        let d = c.describe();
        assert!(d.starts_with("k1:9092,k2:9092 ("), "{d}");
        assert!(d.contains("sasl.username=alice") && d.contains("sasl.password=***"));
        assert!(!d.contains("hunter2") && !d.contains("p4ss"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("p4ss"), "{dbg}");
        // librdkafka gets the real values.
        let cfg = c.client_config();
        assert_eq!(cfg.get("sasl.password"), Some("hunter2"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("k1:9092,k2:9092"));
        assert_eq!(KafkaConnection::new("h:1").describe(), "h:1");
    }
}
