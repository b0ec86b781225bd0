//! DescribeUserScramCredentials v0 (KIP-554): the SCRAM mechanisms and iteration counts of
//! users — never salts or keys. Needs Describe on the cluster from an authenticated principal
//! (also on listeners whose other requests are not checked).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::acl::{Operation, ResourceType, CLUSTER_NAME};

pub(crate) fn handle(ctx: RequestContext, req: DescribeUserScramCredentialsRequest) -> Reply {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if !ctx.allowed_authenticated(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Reply::now(resp);
    }
    let users = {
        let mut store = ctx.broker.credentials.lock();
        let _ = store.refresh();
        store.list()
    };
    let info = |u: &rivulet_auth::store::UserInfo| {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = StrBytes::from_string(u.name.clone());
        r.credential_infos = u
            .mechanisms
            .iter()
            .map(|(m, i)| {
                let mut c = CredentialInfo::default();
                c.mechanism = m.kafka_type();
                c.iterations = i32::try_from(*i).unwrap_or(i32::MAX);
                c
            })
            .collect();
        r
    };
    // Null or empty: every user (as Kafka answers).
    resp.results = match req.users.filter(|u| !u.is_empty()) {
        None => users.iter().map(info).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| match users.iter().find(|u| u.name == w.name.as_str()) {
                Some(u) => info(u),
                None => {
                    let mut r = DescribeUserScramCredentialsResult::default();
                    r.user = w.name.clone();
                    r.error_code = ResponseError::ResourceNotFound.code();
                    r.error_message = Some(StrBytes::from_static_str(
                        "no SCRAM credential for this user",
                    ));
                    r
                }
            })
            .collect(),
    };
    Reply::now(resp)
}
