//! Kafka request framing and decoding, kept apart from socket I/O so it can be tested and fuzzed
//! on plain bytes.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. [`frame_length`] looks at
//! the prefix only: "need more bytes" is `Ok(None)`, a length over the configured maximum is an
//! error before anything is allocated. [`decode_request`] turns one frame body into a typed
//! request through the `kafka-protocol` crate (no hand-written codecs), after checking that we
//! implement that API at that version.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

/// What can go wrong turning bytes into a request. Every variant closes the connection, except
/// [`Decoded::UnsupportedVersion`] which is answered.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { size: usize, max: usize },
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("API {api:?} (key {key}) is not implemented")]
    UnsupportedApi { api: ApiKey, key: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The APIs and versions this broker implements, advertised by ApiVersions. Ranges are
/// clamped to what the `kafka-protocol` crate can decode.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    // Produce: min 0 is advertised because older librdkafka disables compression when the
    // minimum is above 0; versions 0-2 are answered with UNSUPPORTED_VERSION.
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // Transactions (KIP-98/447/664). AddPartitionsToTxn v4+ is the broker-to-broker batch
    // form; EndTxn v5, TxnOffsetCommit v4+ and AddOffsetsToTxn v4 belong to transaction
    // version 2 (KIP-890), which clients use only when the broker advertises that feature.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // SASL (KIP-43, KIP-152); advertised on every listener, as Kafka does.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // ACLs (KIP-140, KIP-290 prefixed patterns).
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    // SCRAM users managed online (KIP-554).
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Our supported range for an API, if we implement it at all.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

/// Examines the length prefix at the start of `buf`.
/// `Ok(None)`: not even the prefix yet, or the frame is incomplete (need more bytes).
/// `Ok(Some(n))`: a complete frame body of `n` bytes follows the 4-byte prefix.
pub fn frame_length(buf: &[u8], max: usize) -> Result<Option<usize>, CodecError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let len = usize::try_from(len).map_err(|_| CodecError::NegativeLength(len))?;
    if len > max {
        return Err(CodecError::FrameTooLarge { size: len, max });
    }
    if buf.len() - 4 < len {
        return Ok(None);
    }
    Ok(Some(len))
}

/// The length prefix of the frame at the start of `buf`, if four bytes are there, so a caller can
/// reserve room for the rest of a frame it already knows is acceptable.
pub fn peek_length(buf: &[u8]) -> Option<usize> {
    let p = buf.get(..4)?;
    usize::try_from(i32::from_be_bytes([p[0], p[1], p[2], p[3]])).ok()
}

/// A decoded frame.
#[derive(Debug)]
pub enum Decoded {
    Request {
        api: ApiKey,
        header: RequestHeader,
        body: Box<RequestKind>,
    },
    /// A version we do not implement of an API we do. Answered with UNSUPPORTED_VERSION (for
    /// ApiVersions, with the v0 body listing our APIs as KIP-511 requires).
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        /// The whole frame body, for the few cases answered with more than an error code.
        frame: Bytes,
    },
}

/// Decodes one frame body (without the length prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Decoded, CodecError> {
    if frame.len() < 8 {
        return Err(CodecError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| CodecError::UnknownApiKey(key))?;
    let Some((min, max)) = supported_range(api) else {
        return Err(CodecError::UnsupportedApi { api, key });
    };
    let decodable = api.valid_versions();
    if version < min || version > max || version < decodable.min || version > decodable.max {
        return Ok(Decoded::UnsupportedVersion {
            api,
            version,
            correlation_id,
            frame,
        });
    }
    let malformed = |reason: String| CodecError::Malformed {
        api,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e:#}")))?;
    let body =
        RequestKind::decode(api, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
    if frame.has_remaining() {
        // Kafka ignores bytes after the last field it knows (some librdkafka versions send an
        // extra field in Metadata v12); so do we, but say so when debugging.
        tracing::debug!(
            ?api,
            version,
            trailing = frame.remaining(),
            "ignoring trailing request bytes"
        );
    }
    Ok(Decoded::Request {
        api,
        header,
        body: Box::new(body),
    })
}

/// Encodes a response frame (length prefix, response header, body) for `api` at `version`.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, CodecError> {
    let err = |reason: String| CodecError::Encode {
        api,
        version,
        reason,
    };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length, patched below
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| err(format!("{e:#}")))?;
    body.encode(&mut buf, version)
        .map_err(|e| err(format!("{e:#}")))?;
    patch_length(&mut buf)?;
    Ok(buf)
}

/// The answer to an ApiVersions request at a version we don't support: error 35 and the v0 body
/// listing our APIs, with a v0 response header (KIP-511), so the client can retry with a version
/// it finds in the list.
pub fn api_versions_fallback(correlation_id: i32) -> Result<BytesMut, CodecError> {
    let mut body = api_versions_body();
    body.error_code = kafka_protocol::error::ResponseError::UnsupportedVersion.code();
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    body.encode(&mut buf, 0).map_err(|e| CodecError::Encode {
        api: ApiKey::ApiVersions,
        version: 0,
        reason: format!("{e:#}"),
    })?;
    patch_length(&mut buf)?;
    Ok(buf)
}

/// Our ApiVersions body (error code 0).
pub fn api_versions_body() -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.api_keys = SUPPORTED_APIS
        .iter()
        .map(|&(k, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = k as i16;
            v.min_version = min;
            v.max_version = max;
            v
        })
        .collect();
    r
}

fn patch_length(buf: &mut BytesMut) -> Result<(), CodecError> {
    let len = i32::try_from(buf.len() - 4).map_err(|_| CodecError::Encode {
        api: ApiKey::ApiVersions,
        version: 0,
        reason: "response larger than 2 GiB".into(),
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn frame(api: ApiKey, version: i16, body: impl Fn(&mut BytesMut)) -> Bytes {
        let mut buf = BytesMut::new();
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = version;
        h.correlation_id = 7;
        h.client_id = Some(StrBytes::from_static_str("test"));
        h.encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body(&mut buf);
        buf.freeze()
    }

    #[test]
    fn need_more_bytes_is_a_value() {
        assert!(frame_length(&[], 100).unwrap().is_none());
        assert!(frame_length(&[0, 0], 100).unwrap().is_none());
        assert!(frame_length(&[0, 0, 0, 5, 1, 2], 100).unwrap().is_none());
        assert_eq!(frame_length(&[0, 0, 0, 2, 1, 2], 100).unwrap(), Some(2));
    }

    #[test]
    fn oversize_and_negative_frames_are_refused_from_the_prefix() {
        assert!(matches!(
            frame_length(&[0x7f, 0xff, 0xff, 0xff], 1024),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            frame_length(&[0xff, 0xff, 0xff, 0xff], 1024),
            Err(CodecError::NegativeLength(-1))
        ));
    }

    #[test]
    fn decodes_flexible_and_non_flexible_requests() {
        for v in [0, 3] {
            let f = frame(ApiKey::ApiVersions, v, |b| {
                ApiVersionsRequest::default().encode(b, v).unwrap()
            });
            match decode_request(f).unwrap() {
                Decoded::Request { api, header, .. } => {
                    assert_eq!(api, ApiKey::ApiVersions);
                    assert_eq!(header.correlation_id, 7);
                    assert_eq!(header.client_id.as_deref(), Some("test"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        for v in [0, 9, 12] {
            let f = frame(ApiKey::Metadata, v, |b| {
                MetadataRequest::default().encode(b, v).unwrap()
            });
            assert!(matches!(
                decode_request(f).unwrap(),
                Decoded::Request { .. }
            ));
        }
    }

    /// Regression: librdkafka sends Metadata v12 with bytes after the last field; Kafka
    /// ignores them and so must we (we used to close the connection).
    #[test]
    fn trailing_bytes_are_ignored_like_kafka() {
        let f = frame(ApiKey::Metadata, 12, |b| {
            MetadataRequest::default().encode(b, 12).unwrap();
            b.put_slice(&[0, 0, 0]);
        });
        assert!(matches!(
            decode_request(f).unwrap(),
            Decoded::Request { .. }
        ));
    }

    #[test]
    fn unsupported_version_is_answered_not_fatal() {
        let mut raw = BytesMut::new();
        raw.put_i16(ApiKey::ApiVersions as i16);
        raw.put_i16(99);
        raw.put_i32(42);
        raw.put_i16(-1);
        match decode_request(raw.freeze()).unwrap() {
            Decoded::UnsupportedVersion {
                correlation_id,
                version,
                ..
            } => {
                assert_eq!((correlation_id, version), (42, 99));
                let resp = api_versions_fallback(correlation_id).unwrap();
                let mut body = resp.freeze();
                assert_eq!(body.get_i32() as usize, body.len());
                assert_eq!(body.get_i32(), 42);
                let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
                assert_eq!(decoded.error_code, 35);
                assert_eq!(decoded.api_keys.len(), SUPPORTED_APIS.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_api_key_and_short_frames_are_errors() {
        let mut raw = BytesMut::new();
        raw.put_i16(9999);
        raw.put_i16(0);
        raw.put_i32(1);
        assert!(matches!(
            decode_request(raw.freeze()),
            Err(CodecError::UnknownApiKey(9999))
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1])),
            Err(CodecError::TooShort(2))
        ));
    }

    #[test]
    fn huge_array_count_does_not_allocate_or_abort() {
        // Metadata v1 topics array claiming i32::MAX entries with no bytes behind it.
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 1, |_| {})[..]);
        f.put_i32(i32::MAX);
        assert!(matches!(
            decode_request(f.freeze()),
            Err(CodecError::Malformed { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Arbitrary bytes after a valid (api, version) prefix never panic the decoder.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            idx in 0usize..SUPPORTED_APIS.len(),
            vsel in 0i16..20,
            corr in any::<i32>(),
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let (api, min, max) = SUPPORTED_APIS[idx];
            let version = min + vsel % (max - min + 1);
            let mut raw = BytesMut::new();
            raw.put_i16(api as i16);
            raw.put_i16(version);
            raw.put_i32(corr);
            raw.extend_from_slice(&tail);
            let _ = decode_request(raw.freeze());
        }

        /// Completely arbitrary frames never panic either.
        #[test]
        fn decoding_random_frames_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = frame_length(&raw, 1 << 20);
            let _ = decode_request(Bytes::from(raw));
        }
    }
}
