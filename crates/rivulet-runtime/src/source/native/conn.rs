//! Blocking Kafka connections for the native source: one [`Conn`] per broker (length-prefixed
//! frames, `kafka-protocol` codecs, API versions negotiated with ApiVersions v0, which every
//! broker answers) and a [`Cluster`] that knows the brokers and partition leaders from Metadata
//! and routes ListOffsets and FindCoordinator.
//!
//! TLS (rustls) and SASL PLAIN/SCRAM come from the source's client properties
//! ([`ClientSecurity`]): the TLS handshake runs on the first bytes sent, SASL right after
//! ApiVersions.
//!
//! Blocking `std::net` sockets rather than tokio: each user (the query thread, the prefetch
//! thread, the committer thread) owns its connections and waits on one request at a time, so
//! an async runtime would only add hand-offs.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use rivulet_auth::client::{ClientSecurity, SaslClient};

use crate::source::TopicPartition;

/// `client.id` in every request header.
const CLIENT_ID: &str = "rivulet";
/// Largest response frame accepted before allocating for it (a fetch is at most
/// [`super::fetcher::FETCH_MAX_BYTES`] plus headers; brokers may exceed it by one batch).
const MAX_RESPONSE_BYTES: usize = 512 << 20;
/// Socket connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A network or protocol failure, as text naming the broker and the request.
pub(crate) type NetResult<T> = std::result::Result<T, String>;

/// The name of a Kafka error code.
pub(crate) fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| "NONE".to_string(), |e| e.to_string())
}

/// True for errors that go away by themselves or after a metadata refresh.
pub(crate) fn retriable(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// A plaintext or TLS socket.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One connection to one broker; requests and responses strictly in turn.
pub(crate) struct Conn {
    stream: Stream,
    addr: String,
    next_correlation: i32,
    /// API key → (min, max) version the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    write_buf: BytesMut,
}

impl Conn {
    /// Connects to `addr` (`host:port`) and asks for its API versions. `timeout` bounds every
    /// later read and write on the socket.
    pub(crate) fn connect(
        addr: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> NetResult<Conn> {
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| format!("resolving broker address `{addr}`: {e}"))?
            .collect();
        let mut last = format!("broker address `{addr}` resolves to nothing");
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("connecting to broker {addr}: {e}"),
            }
        }
        let stream = stream.ok_or(last)?;
        let setup = |e: std::io::Error| format!("setting up the connection to {addr}: {e}");
        stream.set_nodelay(true).map_err(setup)?;
        stream.set_read_timeout(Some(timeout)).map_err(setup)?;
        stream.set_write_timeout(Some(timeout)).map_err(setup)?;
        let stream = match &security.tls {
            None => Stream::Plain(stream),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let name = ClientSecurity::server_name(host).map_err(|e| e.to_string())?;
                let tls = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| format!("TLS with {addr}: {e}"))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(tls, stream)))
            }
        };
        let mut conn = Conn {
            stream,
            addr: addr.to_string(),
            next_correlation: 0,
            versions: HashMap::new(),
            write_buf: BytesMut::with_capacity(1024),
        };
        let resp = conn.call(0, &ApiVersionsRequest::default())?;
        if resp.error_code != 0 {
            return Err(format!(
                "broker {addr} answered ApiVersions with {}",
                error_name(resp.error_code)
            ));
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(creds) = &security.sasl {
            conn.authenticate(creds)?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate v1 until the mechanism is done.
    fn authenticate(&mut self, creds: &rivulet_auth::client::SaslCredentials) -> NetResult<()> {
        let addr = self.addr.clone();
        let mut sasl = SaslClient::new(creds);
        let hs = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(sasl.mechanism().to_string()));
        let r = self.call(1, &hs)?;
        let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        sasl.on_handshake(&addr, r.error_code, &offered)?;
        let mut token = Some(sasl.first());
        for _ in 0..SaslClient::MAX_ROUNDS {
            let Some(t) = token.take() else {
                return Ok(());
            };
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(t));
            let r = self.call(1, &req)?;
            token = sasl.on_authenticate(
                &addr,
                r.error_code,
                r.error_message.as_deref(),
                &r.auth_bytes,
            )?;
        }
        Err(format!("SASL with {addr} did not end after three rounds"))
    }

    /// The highest version of `R` in `ours` that the broker supports.
    pub(crate) fn version<R: Request>(&self, ours: RangeInclusive<i16>) -> NetResult<i16> {
        let name = api_name(R::KEY);
        let (min, max) = self
            .versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| format!("broker {} does not support the {name} API", self.addr))?;
        let v = max.min(*ours.end());
        if v < min.max(*ours.start()) {
            return Err(format!(
                "broker {} supports {name} v{min}-{max}; Rivulet speaks v{}-{}",
                self.addr,
                ours.start(),
                ours.end()
            ));
        }
        Ok(v)
    }

    /// Sends `req` and waits for its response.
    pub(crate) fn call<R: Request>(&mut self, version: i16, req: &R) -> NetResult<R::Response> {
        let correlation = self.send(version, req)?;
        self.receive::<R>(version, correlation)
    }

    /// Sends `req`; the response must be read with [`Conn::receive`] before the next send's.
    pub(crate) fn send<R: Request>(&mut self, version: i16, req: &R) -> NetResult<i32> {
        let name = api_name(R::KEY);
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let hv = R::header_version(version);
        let enc = encode_error(name, version);
        let len =
            header.compute_size(hv).map_err(&enc)? + req.compute_size(version).map_err(&enc)?;
        let len = i32::try_from(len).map_err(|_| format!("{name} request of {len} bytes"))?;
        self.write_buf.clear();
        self.write_buf.put_i32(len);
        header.encode(&mut self.write_buf, hv).map_err(&enc)?;
        req.encode(&mut self.write_buf, version).map_err(&enc)?;
        self.stream
            .write_all(&self.write_buf)
            .map_err(|e| format!("sending {name} to {}: {e}", self.addr))?;
        Ok(correlation)
    }

    /// Reads the response to the request sent with `correlation`.
    pub(crate) fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation: i32,
    ) -> NetResult<R::Response> {
        let name = api_name(R::KEY);
        let mut frame = self.read_frame(name)?;
        let hv = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, hv)
            .map_err(|e| format!("decoding a {name} response header from {}: {e}", self.addr))?;
        if header.correlation_id != correlation {
            return Err(format!(
                "{name} response from {} has correlation id {} where {correlation} was expected",
                self.addr, header.correlation_id
            ));
        }
        <R::Response as Decodable>::decode(&mut frame, version).map_err(|e| {
            format!(
                "decoding a {name} v{version} response from {}: {e}",
                self.addr
            )
        })
    }

    /// One length-prefixed frame, its length checked before allocating.
    fn read_frame(&mut self, name: &str) -> NetResult<Bytes> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("reading the {name} response from {}: {e}", self.addr))?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len).unwrap_or(0);
        if !(4..=MAX_RESPONSE_BYTES).contains(&len) {
            return Err(format!(
                "{name} response frame of {len} bytes from {} (expected 4..={MAX_RESPONSE_BYTES})",
                self.addr
            ));
        }
        // `read_to_end` fills spare capacity without zeroing it first; the Vec becomes the
        // `Bytes` that record keys and values point into, without a copy.
        let mut buf = Vec::with_capacity(len);
        let n = (&mut self.stream)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| format!("reading the {name} response from {}: {e}", self.addr))?;
        if n < len {
            return Err(format!(
                "broker {} closed the connection in the middle of a {name} response",
                self.addr
            ));
        }
        Ok(Bytes::from(buf))
    }
}

fn encode_error<E: std::fmt::Display>(name: &str, version: i16) -> impl Fn(E) -> String + '_ {
    move |e| format!("encoding a {name} v{version} request: {e}")
}

fn api_name(key: i16) -> &'static str {
    match key {
        0 => "Produce",
        1 => "Fetch",
        2 => "ListOffsets",
        3 => "Metadata",
        8 => "OffsetCommit",
        10 => "FindCoordinator",
        18 => "ApiVersions",
        _ => "Kafka",
    }
}

/// `host:port`, bracketing IPv6 hosts.
fn host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What the source needs to know about the cluster, and connections to its brokers.
pub(crate) struct Cluster {
    bootstrap: Vec<String>,
    timeout: Duration,
    security: Arc<ClientSecurity>,
    /// Node id → `host:port`.
    brokers: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
    /// Connection used for Metadata and FindCoordinator (any broker will do).
    any: Option<Conn>,
    leaders: HashMap<TopicPartition, i32>,
    /// ListOffsets' latest is the last stable offset (see the fetcher's isolation).
    pub(crate) read_committed: bool,
}

/// Partition count per topic from a metadata refresh, or why the topic is not usable yet.
pub(crate) type TopicStates = BTreeMap<String, std::result::Result<i32, String>>;

impl Cluster {
    /// `bootstrap`: comma-separated `host:port` list. Nothing connects until first used.
    pub(crate) fn new(
        bootstrap: &str,
        timeout: Duration,
        security: Arc<ClientSecurity>,
    ) -> Cluster {
        Cluster {
            bootstrap: bootstrap
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            timeout,
            security,
            brokers: HashMap::new(),
            conns: HashMap::new(),
            any: None,
            leaders: HashMap::new(),
            read_committed: false,
        }
    }

    /// A connection to some broker: the last one used, a known broker, or a bootstrap server.
    fn any_conn(&mut self) -> NetResult<&mut Conn> {
        if self.any.is_none() {
            let mut last = "no bootstrap servers given".to_string();
            let candidates: Vec<String> = self
                .brokers
                .values()
                .cloned()
                .chain(self.bootstrap.iter().cloned())
                .collect();
            for addr in candidates {
                match Conn::connect(&addr, self.timeout, &self.security) {
                    Ok(c) => {
                        self.any = Some(c);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            if self.any.is_none() {
                return Err(last);
            }
        }
        self.any
            .as_mut()
            .ok_or_else(|| "no broker connection".to_string())
    }

    /// Refreshes brokers and leaders for `topics` (Metadata; auto-creation allowed, as a
    /// consumer's metadata request does by default).
    pub(crate) fn refresh(&mut self, topics: &[String]) -> NetResult<TopicStates> {
        let result = self.refresh_once(topics);
        if result.is_err() {
            self.any = None;
        }
        result
    }

    fn refresh_once(&mut self, topics: &[String]) -> NetResult<TopicStates> {
        let conn = self.any_conn()?;
        let version = conn.version::<MetadataRequest>(1..=9)?;
        let req = MetadataRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect(),
        ));
        let resp = conn.call(version, &req)?;
        for b in &resp.brokers {
            let addr = host_port(b.host.as_str(), b.port);
            if self.brokers.get(&b.node_id.0) != Some(&addr) {
                self.conns.remove(&b.node_id.0);
                self.brokers.insert(b.node_id.0, addr);
            }
        }
        let mut states = TopicStates::new();
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            let state = if t.error_code != 0 {
                Err(error_name(t.error_code))
            } else if t.partitions.is_empty() {
                Err("no partitions yet".to_string())
            } else {
                for p in &t.partitions {
                    let tp = TopicPartition {
                        topic: name.clone(),
                        partition: p.partition_index,
                    };
                    if p.leader_id.0 >= 0 {
                        self.leaders.insert(tp, p.leader_id.0);
                    } else {
                        self.leaders.remove(&tp);
                    }
                }
                i32::try_from(t.partitions.len()).map_err(|e| e.to_string())
            };
            states.insert(name, state);
        }
        for t in topics {
            states
                .entry(t.clone())
                .or_insert_with(|| Err("missing from the metadata".to_string()));
        }
        Ok(states)
    }

    /// Waits (bounded by `wait`) until every topic exists with partitions; their counts.
    pub(crate) fn await_topics(
        &mut self,
        topics: &[String],
        wait: Duration,
    ) -> NetResult<BTreeMap<String, i32>> {
        let deadline = Instant::now() + wait;
        loop {
            let last = match self.refresh(topics) {
                Ok(states) => {
                    let bad: Vec<String> = states
                        .iter()
                        .filter_map(|(t, s)| s.as_ref().err().map(|e| format!("`{t}`: {e}")))
                        .collect();
                    if bad.is_empty() {
                        return Ok(states
                            .into_iter()
                            .filter_map(|(t, s)| s.ok().map(|n| (t, n)))
                            .collect());
                    }
                    bad.join(", ")
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!("topics not available: {last}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The partition's leader, if known.
    pub(crate) fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        self.leaders.get(tp).copied()
    }

    /// The connection to broker `node`, opened when needed.
    pub(crate) fn conn(&mut self, node: i32) -> NetResult<&mut Conn> {
        if !self.conns.contains_key(&node) {
            let addr = self
                .brokers
                .get(&node)
                .ok_or_else(|| format!("broker {node} is not in the metadata"))?
                .clone();
            let conn = Conn::connect(&addr, self.timeout, &self.security)?;
            self.conns.insert(node, conn);
        }
        self.conns
            .get_mut(&node)
            .ok_or_else(|| format!("no connection to broker {node}"))
    }

    /// Forgets the connection to `node` after an error (the next use reconnects).
    pub(crate) fn drop_conn(&mut self, node: i32) {
        self.conns.remove(&node);
    }

    /// ListOffsets at `timestamp` (-2 earliest, -1 latest, else the first offset with a
    /// timestamp at or after it; -1 in the answer when there is none) for every partition in
    /// `tps`, each asked of its leader. Retries leader changes until the client timeout.
    pub(crate) fn list_offsets(
        &mut self,
        tps: &[TopicPartition],
        timestamp: i64,
        topics: &[String],
    ) -> NetResult<BTreeMap<TopicPartition, i64>> {
        let deadline = Instant::now() + self.timeout;
        let mut out = BTreeMap::new();
        let mut todo: Vec<TopicPartition> = tps.to_vec();
        let mut last = String::new();
        while !todo.is_empty() {
            if Instant::now() >= deadline {
                return Err(format!("listing offsets: {last}"));
            }
            let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            let mut unknown = false;
            for tp in &todo {
                match self.leader(tp) {
                    Some(l) => by_leader.entry(l).or_default().push(tp.clone()),
                    None => unknown = true,
                }
            }
            let mut retry: Vec<TopicPartition> = Vec::new();
            for (node, tps) in by_leader {
                match self.list_offsets_at(node, &tps, timestamp) {
                    Ok(answers) => {
                        for (tp, r) in answers {
                            match r {
                                Ok(off) => {
                                    out.insert(tp, off);
                                }
                                Err(code) if retriable(code) => {
                                    last = format!(
                                        "{}/{}: {}",
                                        tp.topic,
                                        tp.partition,
                                        error_name(code)
                                    );
                                    retry.push(tp);
                                }
                                Err(code) => {
                                    return Err(format!(
                                        "listing offsets of {}/{}: {}",
                                        tp.topic,
                                        tp.partition,
                                        error_name(code)
                                    ))
                                }
                            }
                        }
                    }
                    Err(e) => {
                        self.drop_conn(node);
                        last = e;
                        retry.extend(tps);
                    }
                }
            }
            if unknown {
                retry.extend(todo.iter().filter(|tp| self.leader(tp).is_none()).cloned());
                last = "partition leader unknown".to_string();
            }
            todo = retry;
            if !todo.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
                if let Err(e) = self.refresh(topics) {
                    last = e;
                }
            }
        }
        Ok(out)
    }

    fn list_offsets_at(
        &mut self,
        node: i32,
        tps: &[TopicPartition],
        timestamp: i64,
    ) -> NetResult<Vec<(TopicPartition, std::result::Result<i64, i16>)>> {
        let read_committed = self.read_committed;
        let conn = self.conn(node)?;
        // v2 added the isolation level.
        let oldest = if read_committed { 2 } else { 1 };
        let version = conn.version::<ListOffsetsRequest>(oldest..=7)?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in tps {
            topics
                .entry(tp.topic.as_str())
                .or_default()
                .push(tp.partition);
        }
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(i8::from(read_committed))
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string((*t).to_string())))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_timestamp(timestamp)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = conn.call(version, &req)?;
        let mut out = Vec::new();
        for t in &resp.topics {
            for p in &t.partitions {
                let tp = TopicPartition {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                };
                out.push((
                    tp,
                    if p.error_code == 0 {
                        Ok(p.offset)
                    } else {
                        Err(p.error_code)
                    },
                ));
            }
        }
        Ok(out)
    }

    /// The coordinator of `group` (FindCoordinator), registered as a broker.
    pub(crate) fn coordinator(&mut self, group: &str) -> NetResult<i32> {
        let result = (|| {
            let conn = self.any_conn()?;
            let version = conn.version::<FindCoordinatorRequest>(0..=3)?;
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group.to_string()));
            let resp = conn.call(version, &req)?;
            if resp.error_code != 0 {
                return Err(format!(
                    "finding the coordinator of group `{group}`: {}",
                    error_name(resp.error_code)
                ));
            }
            Ok((resp.node_id.0, host_port(resp.host.as_str(), resp.port)))
        })();
        match result {
            Ok((node, addr)) => {
                if self.brokers.get(&node) != Some(&addr) {
                    self.conns.remove(&node);
                    self.brokers.insert(node, addr);
                }
                Ok(node)
            }
            Err(e) => {
                self.any = None;
                Err(e)
            }
        }
    }
}
