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

/// One `name=value` client property (`-X name=value`); the value may use `${ENV_VAR}`.
pub fn parse_property(item: &str) -> Result<(String, String), String> {
    let (k, v) = item
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got `{}`", item.escape_debug()))?;
    let k = k.trim();
    if k.is_empty() {
        return Err("empty client property name".into());
    }
    Ok((k.to_string(), expand_env(v.trim(), k)?))
}

/// A client properties file, as the Kafka tools' `--command-config` reads it: `name=value`
/// (or `name: value`) lines, `#` and `!` comments, blank lines; values may use `${ENV_VAR}`.
/// Errors name the file and line, never a value.
pub fn read_properties_file(path: &std::path::Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("client config file {}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let sep = line
            .find(['=', ':'])
            .ok_or_else(|| format!("{}:{}: expected name=value", path.display(), i + 1))?;
        let (k, v) = (line[..sep].trim(), line[sep + 1..].trim());
        if k.is_empty() {
            return Err(format!("{}:{}: empty property name", path.display(), i + 1));
        }
        let v = expand_env(v, k).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// Replaces `${NAME}` by the environment variable's value, so secrets stay out of files and
/// command lines. The error names the variable and the property, not any value.
pub fn expand_env(value: &str, property: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("client property {property}: unterminated ${{ in its value"))?;
        let name = &rest[start + 2..start + end];
        let v = std::env::var(name).map_err(|_| {
            format!(
                "client property {property}: environment variable {} is not set",
                name.escape_debug()
            )
        })?;
        out.push_str(&v);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl KafkaConnection {
    /// Settings from the command line: bootstrap servers, then the properties file, then
    /// `-X name=value` items (later ones win).
    pub fn from_cli(
        bootstrap_servers: &str,
        file: Option<&std::path::Path>,
        items: &[String],
    ) -> Result<KafkaConnection, String> {
        let mut c = KafkaConnection::new(bootstrap_servers);
        if let Some(f) = file {
            c.properties.extend(read_properties_file(f)?);
        }
        for item in items {
            let (k, v) = parse_property(item)?;
            c.properties.insert(k, v);
        }
        if c.properties.contains_key("bootstrap.servers") {
            return Err(
                "give the bootstrap servers with --brokers, not as a client property".into(),
            );
        }
        Ok(c)
    }

    /// `security.protocol`, upper-cased; `PLAINTEXT` when not set.
    pub fn security_protocol(&self) -> String {
        self.properties
            .get("security.protocol")
            .map_or_else(|| "PLAINTEXT".to_string(), |p| p.to_ascii_uppercase())
    }

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

/// The bootstrap servers and the properties, secrets redacted ([`KafkaConnection::describe`]).
impl fmt::Display for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
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
#[allow(clippy::unwrap_used)]
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
        assert_eq!(c.to_string(), d);
    }

    #[test]
    fn command_line_properties_files_and_environment_variables() {
        let dir = std::env::temp_dir().join(format!("rivulet-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("client.properties");
        std::fs::write(
            &f,
            "# comment\n! also\n\nsecurity.protocol=SASL_SSL\nsasl.mechanism: SCRAM-SHA-512\nsasl.password=${RIVULET_TEST_PW_1}\n",
        )
        .unwrap();
        std::env::set_var("RIVULET_TEST_PW_1", "from-env");
        let c = KafkaConnection::from_cli(
            "k:9092",
            Some(&f),
            &["sasl.username=alice".into(), "sasl.mechanism=PLAIN".into()],
        )
        .unwrap();
        assert_eq!(c.properties["sasl.password"], "from-env");
        assert_eq!(c.properties["sasl.mechanism"], "PLAIN");
        assert_eq!(c.security_protocol(), "SASL_SSL");
        assert!(!c.describe().contains("from-env"));
        let e = KafkaConnection::from_cli(
            "k",
            None,
            &["sasl.password=${RIVULET_TEST_UNSET_VAR}".into()],
        )
        .unwrap_err();
        assert!(e.contains("RIVULET_TEST_UNSET_VAR is not set"), "{e}");
        assert!(KafkaConnection::from_cli("k", None, &["novalue".into()]).is_err());
        assert!(KafkaConnection::from_cli("k", None, &["bootstrap.servers=x".into()]).is_err());
        std::fs::write(&f, "a=1\nsasl.password hunter2\n").unwrap();
        let e = KafkaConnection::from_cli("k", Some(&f), &[]).unwrap_err();
        assert!(
            e.ends_with(":2: expected name=value") && !e.contains("hunter2"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
