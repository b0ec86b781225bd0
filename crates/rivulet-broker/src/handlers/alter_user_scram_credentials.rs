//! AlterUserScramCredentials v0 (KIP-554): adds or replaces users' SCRAM credentials (the client
//! sends the salt and the salted password, never the password) and deletes them, in the
//! credential store, written before the answer. Needs Alter on the cluster from an authenticated
//! principal (also on listeners whose other requests are not checked: anyone reaching a
//! plaintext port must not be able to set a user's password).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_auth::scram::{check_iterations, Mechanism, ScramCredential};

use super::admin::blocking;
use super::{Reply, RequestContext};
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

/// One change of the request.
enum Change {
    Upsert(String, Mechanism, ScramCredential),
    Delete(String, Mechanism),
}

fn mechanism(code: i8) -> Result<Mechanism, String> {
    Mechanism::ALL
        .into_iter()
        .find(|m| m.kafka_type() == code)
        .ok_or_else(|| format!("unknown SCRAM mechanism {code}"))
}

pub(crate) fn handle(ctx: RequestContext, req: AlterUserScramCredentialsRequest) -> Reply {
    let mut resp = AlterUserScramCredentialsResponse::default();
    let names: Vec<StrBytes> = req
        .deletions
        .iter()
        .map(|d| d.name.clone())
        .chain(req.upsertions.iter().map(|u| u.name.clone()))
        .collect();
    let result = |user: &StrBytes, code: i16, msg: Option<String>| {
        let mut r = AlterUserScramCredentialsResult::default();
        r.user = user.clone();
        r.error_code = code;
        r.error_message = msg.map(StrBytes::from_string);
        r
    };
    if !ctx.allowed_authenticated(Operation::Alter, ResourceType::Cluster, CLUSTER_NAME) {
        resp.results = names
            .iter()
            .map(|n| result(n, ResponseError::ClusterAuthorizationFailed.code(), None))
            .collect();
        return Reply::now(resp);
    }
    let mut changes: Vec<Result<Change, String>> = Vec::new();
    for d in &req.deletions {
        changes.push(mechanism(d.mechanism).map(|m| Change::Delete(d.name.to_string(), m)));
    }
    for u in &req.upsertions {
        let c = mechanism(u.mechanism).and_then(|m| {
            let iterations =
                u32::try_from(u.iterations).map_err(|_| "negative iterations".to_string())?;
            check_iterations(iterations).map_err(|e| e.to_string())?;
            rivulet_auth::store::check_username(&u.name).map_err(|e| e.to_string())?;
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err("the salt and the salted password must not be empty".into());
            }
            let cred = ScramCredential::from_salted_password(
                m,
                &u.salted_password,
                u.salt.to_vec(),
                iterations,
            );
            Ok(Change::Upsert(u.name.to_string(), m, cred))
        });
        changes.push(c);
    }
    Reply::later(async move {
        let broker = ctx.broker.clone();
        let outcomes = blocking(move || {
            let mut store = broker.credentials.lock();
            let _ = store.refresh();
            changes
                .into_iter()
                .map(|c| match c {
                    Err(e) => Err((ResponseError::UnsupportedSaslMechanism.code(), e)),
                    Ok(Change::Upsert(name, m, cred)) => store
                        .upsert(&name, m, cred)
                        .map_err(|e| (ResponseError::UnknownServerError.code(), e.to_string())),
                    Ok(Change::Delete(name, m)) => match store.remove(&name, Some(m)) {
                        Ok(true) => Ok(()),
                        Ok(false) => Err((
                            ResponseError::ResourceNotFound.code(),
                            "no such credential".to_string(),
                        )),
                        Err(e) => Err((ResponseError::UnknownServerError.code(), e.to_string())),
                    },
                })
                .collect::<Vec<_>>()
        })
        .await;
        resp.results = match outcomes {
            Ok(outcomes) => names
                .iter()
                .zip(outcomes)
                .map(|(n, o)| match o {
                    Ok(()) => result(n, 0, None),
                    Err((code, msg)) => result(n, code, Some(msg)),
                })
                .collect(),
            Err(e) => names
                .iter()
                .map(|n| result(n, ResponseError::UnknownServerError.code(), Some(e.clone())))
                .collect(),
        };
        resp
    })
}
