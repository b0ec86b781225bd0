//! `rivulet users … --brokers`: SCRAM users on any Kafka cluster (KIP-554), through
//! DescribeUserScramCredentials and AlterUserScramCredentials spoken directly (`wire.rs`). The
//! password never leaves this process: it sends a random salt and the salted password, as the
//! Kafka tools do.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rand::RngCore;
use rivulet_auth::{Mechanism, ScramCredential};

use crate::{ClientError, KafkaConnection};

const TIMEOUT: Duration = Duration::from_secs(15);

fn mechanism_of(code: i8) -> String {
    Mechanism::ALL
        .into_iter()
        .find(|m| m.kafka_type() == code)
        .map_or_else(|| format!("mechanism {code}"), |m| m.name().to_string())
}

fn refused(what: &str, code: i16, msg: Option<&StrBytes>) -> ClientError {
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    ClientError::Protocol(match msg {
        Some(m) if !m.is_empty() => format!("{what}: {name}: {}", m.as_str().escape_debug()),
        _ => format!("{what}: {name}"),
    })
}

/// Users with their (mechanism, iterations).
pub async fn list(
    brokers: &KafkaConnection,
) -> Result<Vec<(String, Vec<(String, i32)>)>, ClientError> {
    let mut c = crate::wire::connect_any(brokers, TIMEOUT).await?;
    let mut req = DescribeUserScramCredentialsRequest::default();
    req.users = None;
    let resp: DescribeUserScramCredentialsResponse = c
        .call(ApiKey::DescribeUserScramCredentials, 0, &req)
        .await?;
    if resp.error_code != 0 {
        return Err(refused(
            "DescribeUserScramCredentials",
            resp.error_code,
            resp.error_message.as_ref(),
        ));
    }
    let mut out: Vec<(String, Vec<(String, i32)>)> = resp
        .results
        .into_iter()
        .filter(|r| r.error_code == 0)
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|i| (mechanism_of(i.mechanism), i.iterations))
                .collect();
            (r.user.to_string(), infos)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Adds or replaces `user`'s credential for `mechanism`.
pub async fn upsert(
    brokers: &KafkaConnection,
    user: &str,
    mechanism: Mechanism,
    password: &str,
    iterations: u32,
) -> Result<(), ClientError> {
    let mut salt = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut salt);
    let salted = ScramCredential::salted_password(mechanism, password, &salt, iterations);
    let mut u = ScramCredentialUpsertion::default();
    u.name = StrBytes::from_string(user.to_string());
    u.mechanism = mechanism.kafka_type();
    u.iterations = i32::try_from(iterations).unwrap_or(i32::MAX);
    u.salt = Bytes::from(salt);
    u.salted_password = Bytes::from(salted);
    let mut req = AlterUserScramCredentialsRequest::default();
    req.upsertions = vec![u];
    alter(brokers, req).await
}

/// Removes `user`'s credential for `mechanism`.
pub async fn delete(
    brokers: &KafkaConnection,
    user: &str,
    mechanism: Mechanism,
) -> Result<(), ClientError> {
    let mut d = ScramCredentialDeletion::default();
    d.name = StrBytes::from_string(user.to_string());
    d.mechanism = mechanism.kafka_type();
    let mut req = AlterUserScramCredentialsRequest::default();
    req.deletions = vec![d];
    alter(brokers, req).await
}

async fn alter(
    brokers: &KafkaConnection,
    req: AlterUserScramCredentialsRequest,
) -> Result<(), ClientError> {
    let mut c = crate::wire::connect_any(brokers, TIMEOUT).await?;
    let resp: AlterUserScramCredentialsResponse =
        c.call(ApiKey::AlterUserScramCredentials, 0, &req).await?;
    for r in &resp.results {
        if r.error_code != 0 {
            return Err(refused(
                &format!(
                    "AlterUserScramCredentials for {}",
                    r.user.as_str().escape_debug()
                ),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}
