//! The broker tests' own helpers: raw Kafka frames. Everything the tests share with the other
//! crates' tests (the in-process broker, librdkafka clients, topic readers, bounded waits)
//! comes from `rivulet-testkit`, re-exported here.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

pub use rivulet_testkit::*;

/// Raw Kafka frames over a plain TCP socket (for malformed-input tests and APIs librdkafka does
/// not expose). Encoding/decoding goes through the `kafka-protocol` crate.
pub mod raw {
    use std::time::Duration;

    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const IO_WAIT: Duration = Duration::from_secs(30);

    pub async fn connect(addr: &str) -> TcpStream {
        tokio::time::timeout(IO_WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed")
    }

    /// Encodes a full frame (length prefix, request header, body) for `api` at `version`.
    pub fn frame<R: Encodable>(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> BytesMut {
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("rivulet-raw-test"));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("encode header");
        body.encode(&mut buf, version).expect("encode body");
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        buf
    }

    /// Reads one response frame body (without the length prefix).
    pub async fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let len = i32::from_be_bytes(len);
        assert!(
            (0..64 << 20).contains(&len),
            "implausible response length {len}"
        );
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body).await?;
        Ok(Bytes::from(body))
    }

    /// Sends `body` as `api`@`version` and decodes the response (header checked).
    pub async fn call<Req: Encodable, Resp: Decodable>(
        s: &mut TcpStream,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &Req,
    ) -> Resp {
        let f = frame(api, version, correlation_id, body);
        tokio::time::timeout(IO_WAIT, s.write_all(&f))
            .await
            .expect("write timed out")
            .expect("write");
        let mut resp = tokio::time::timeout(IO_WAIT, read_frame(s))
            .await
            .expect("response timed out")
            .expect("read response");
        let h = ResponseHeader::decode(&mut resp, api.response_header_version(version))
            .expect("response header");
        assert_eq!(h.correlation_id, correlation_id, "correlation id");
        let r = Resp::decode(&mut resp, version).expect("decode response body");
        assert_eq!(
            resp.remaining(),
            0,
            "trailing bytes after {api:?} v{version} response"
        );
        r
    }

    /// Decodes a hex string (the reproductions are given as hex).
    pub fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// A v2 record batch of `values` (keys `k0`, `k1`, …, timestamps 1000, 1001, …).
    pub fn batch(values: &[Vec<u8>], compression: kafka_protocol::records::Compression) -> Bytes {
        let records = values.iter().enumerate().map(|(i, v)| {
            rivulet_log::NewRecord::new(
                Some(Bytes::from(format!("k{i}"))),
                v.clone(),
                1_000 + i as i64,
            )
        });
        rivulet_log::encode_batch(records, &rivulet_log::BatchSpec::compressed(compression))
            .expect("encode batch")
    }

    /// A batch whose records section is `records` (maybe garbage, maybe compressed), with codec
    /// `codec` and `count` declared records; length, offset delta and CRC-32C are fixed up so
    /// that only the content is wrong (how issue 12's hostile batches were made).
    pub fn forge(records: &[u8], codec: i16, count: i32) -> Bytes {
        let mut b =
            batch(&[b"x".to_vec()], kafka_protocol::records::Compression::None)[..61].to_vec();
        b.extend_from_slice(records);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&codec.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }

    /// Produce v9 (acks=-1) of `records` to one partition: (error code, error message, base
    /// offset).
    pub async fn produce(
        s: &mut TcpStream,
        correlation_id: i32,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> (i16, Option<String>, i64) {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
        let mut p = PartitionProduceData::default();
        p.index = partition;
        p.records = Some(records);
        let mut t = TopicProduceData::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partition_data = vec![p];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 30_000;
        req.topic_data = vec![t];
        let resp: ProduceResponse = call(s, ApiKey::Produce, 9, correlation_id, &req).await;
        let r = &resp.responses[0].partition_responses[0];
        (
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            r.base_offset,
        )
    }

    /// Reads one response frame and throws it away in small pieces (so a large response costs
    /// the test no memory); returns its length.
    pub async fn drain_frame(s: &mut TcpStream) -> std::io::Result<u64> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let len = u64::try_from(i32::from_be_bytes(len)).expect("negative response length");
        let mut left = len;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = (left as usize).min(buf.len());
            s.read_exact(&mut buf[..n]).await?;
            left -= n as u64;
        }
        Ok(len)
    }

    /// Waits until the peer closes the connection (EOF or reset) and returns true, or returns
    /// false if it is still open after `IO_WAIT`. Any bytes the broker sends first are skipped.
    pub async fn closed_by_peer(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + IO_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}
