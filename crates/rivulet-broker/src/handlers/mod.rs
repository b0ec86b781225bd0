//! Request dispatch: one file per Kafka API. Each handler gets the decoded request and a
//! [`RequestContext`] and returns a [`Reply`]. Work that must happen in request order (appends)
//! runs synchronously inside the handler; waiting (fsync, long-poll, group rebalances) happens in
//! the returned future, so a connection can pipeline requests while responses go out in order.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::acl::{Operation, ResourceType};
use crate::codec::CodecError;
use crate::response::Outgoing;
use crate::state::Broker;

/// Everything a handler may need besides the request body.
#[derive(Clone)]
pub(crate) struct RequestContext {
    pub broker: Arc<Broker>,
    pub header: RequestHeader,
    pub peer: SocketAddr,
    /// Host and port of this connection's listener, as clients must see them.
    pub advertised: Arc<(String, u16)>,
    /// The connection's identity and SASL state.
    pub session: Arc<crate::auth::Session>,
}

impl RequestContext {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
    /// The client id as sent: arbitrary text; log it through [`rivulet_log::Quoted`].
    pub fn client_id(&self) -> String {
        self.header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
    /// Whether this connection's principal may do `op` on the resource (see `acl.rs`).
    pub fn allowed(&self, op: Operation, rtype: ResourceType, name: &str) -> bool {
        self.broker.authorizer.allows(
            self.session.checked(),
            &self.session.principal(),
            self.peer.ip(),
            op,
            rtype,
            name,
        )
    }

    /// Like [`RequestContext::allowed`], but unauthenticated connections are checked too (as
    /// `User:ANONYMOUS`, so denied unless an ACL names it): for what changes who may do what —
    /// ACLs and SCRAM credentials — which must not be open on a plaintext port.
    pub fn allowed_authenticated(&self, op: Operation, rtype: ResourceType, name: &str) -> bool {
        self.broker.authorizer.allows(
            true,
            &self.session.principal(),
            self.peer.ip(),
            op,
            rtype,
            name,
        )
    }

    /// `Ok` when `op` is allowed on every named resource; else the resource type's
    /// authorisation error for the whole request (admin requests are allowed or refused whole).
    pub fn authorize_each<'a>(
        &self,
        op: Operation,
        rtype: ResourceType,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), (i16, String)> {
        for n in names {
            if !self.allowed(op, rtype, n) {
                return Err((
                    crate::error::codes::authorization_failed(rtype),
                    format!("{op} on {rtype} {} is not allowed", rivulet_log::Quoted(n)),
                ));
            }
        }
        Ok(())
    }

    /// Creating topics: Create on the cluster, or on each topic.
    pub fn authorize_create<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), (i16, String)> {
        if self.allowed(
            Operation::Create,
            ResourceType::Cluster,
            crate::acl::CLUSTER_NAME,
        ) {
            return Ok(());
        }
        self.authorize_each(Operation::Create, ResourceType::Topic, topics)
    }

    /// Client host as Kafka reports it in group descriptions ("/127.0.0.1").
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// A handler's answer.
pub(crate) enum Reply {
    Now(Box<ResponseKind>),
    Later(BoxFuture<'static, ResponseKind>),
    /// Encoded by the handler itself (Fetch: records stream from the log, see `response.rs`).
    Encoded(BoxFuture<'static, Result<Outgoing, CodecError>>),
    /// Produce with acks=0: Kafka sends nothing back.
    NoResponse,
}

impl Reply {
    pub fn now(r: impl Into<ResponseKind>) -> Reply {
        Reply::Now(Box::new(r.into()))
    }
    pub fn later<F, R>(f: F) -> Reply
    where
        F: std::future::Future<Output = R> + Send + 'static,
        R: Into<ResponseKind>,
    {
        Reply::Later(Box::pin(async move { f.await.into() }))
    }
    pub fn encoded<F>(f: F) -> Reply
    where
        F: std::future::Future<Output = Result<Outgoing, CodecError>> + Send + 'static,
    {
        Reply::Encoded(Box::pin(f))
    }
}

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod admin;
mod alter_configs;
mod alter_user_scram_credentials;
mod api_versions;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_topics;
mod describe_acls;
mod describe_cluster;
mod describe_configs;
mod describe_transactions;
mod describe_user_scram_credentials;
mod end_txn;
mod fetch;
mod find_coordinator;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod list_transactions;
mod sasl_authenticate;
mod sasl_handshake;
pub(crate) use sasl_authenticate::exchange as sasl_exchange;
mod metadata;
mod offset_for_leader_epoch;
pub(crate) mod produce;
mod txn_offset_commit;

// --- group handlers (coordinator) ---
mod delete_groups;
mod describe_groups;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_fetch;
mod sync_group;
// --- end group handlers ---

/// Routes a decoded request to its handler. `codec` has already checked that we implement the
/// API at this version, so every arm here is reachable only for supported requests.
pub(crate) fn handle(ctx: RequestContext, body: RequestKind) -> Reply {
    match body {
        RequestKind::ApiVersions(r) => api_versions::handle(ctx, r),
        RequestKind::Metadata(r) => metadata::handle(ctx, r),
        RequestKind::Produce(r) => produce::handle(ctx, r),
        RequestKind::Fetch(r) => fetch::handle(ctx, r),
        RequestKind::ListOffsets(r) => list_offsets::handle(ctx, r),
        RequestKind::FindCoordinator(r) => find_coordinator::handle(ctx, r),
        RequestKind::InitProducerId(r) => init_producer_id::handle(ctx, r),
        RequestKind::CreateTopics(r) => create_topics::handle(ctx, r),
        RequestKind::DeleteTopics(r) => delete_topics::handle(ctx, r),
        RequestKind::CreatePartitions(r) => create_partitions::handle(ctx, r),
        RequestKind::DescribeConfigs(r) => describe_configs::handle(ctx, r),
        RequestKind::IncrementalAlterConfigs(r) => incremental_alter_configs::handle(ctx, r),
        RequestKind::AlterConfigs(r) => alter_configs::handle(ctx, r),
        RequestKind::DescribeCluster(r) => describe_cluster::handle(ctx, r),
        RequestKind::OffsetForLeaderEpoch(r) => offset_for_leader_epoch::handle(ctx, r),
        RequestKind::JoinGroup(r) => join_group::handle(ctx, r),
        RequestKind::SyncGroup(r) => sync_group::handle(ctx, r),
        RequestKind::Heartbeat(r) => heartbeat::handle(ctx, r),
        RequestKind::LeaveGroup(r) => leave_group::handle(ctx, r),
        RequestKind::OffsetCommit(r) => offset_commit::handle(ctx, r),
        RequestKind::OffsetFetch(r) => offset_fetch::handle(ctx, r),
        RequestKind::DescribeGroups(r) => describe_groups::handle(ctx, r),
        RequestKind::ListGroups(r) => list_groups::handle(ctx, r),
        RequestKind::DeleteGroups(r) => delete_groups::handle(ctx, r),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn::handle(ctx, r),
        RequestKind::AddOffsetsToTxn(r) => add_offsets_to_txn::handle(ctx, r),
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit::handle(ctx, r),
        RequestKind::EndTxn(r) => end_txn::handle(ctx, r),
        RequestKind::DescribeTransactions(r) => describe_transactions::handle(ctx, r),
        RequestKind::ListTransactions(r) => list_transactions::handle(ctx, r),
        RequestKind::SaslHandshake(r) => sasl_handshake::handle(ctx, r),
        RequestKind::CreateAcls(r) => create_acls::handle(ctx, r),
        RequestKind::DescribeUserScramCredentials(r) => {
            describe_user_scram_credentials::handle(ctx, r)
        }
        RequestKind::AlterUserScramCredentials(r) => alter_user_scram_credentials::handle(ctx, r),
        RequestKind::DescribeAcls(r) => describe_acls::handle(ctx, r),
        RequestKind::DeleteAcls(r) => delete_acls::handle(ctx, r),
        RequestKind::SaslAuthenticate(r) => sasl_authenticate::handle(ctx, r),
        other => {
            // Unreachable in practice: codec refuses APIs missing from SUPPORTED_APIS.
            tracing::error!("no handler for {:?}", std::mem::discriminant(&other));
            Reply::NoResponse
        }
    }
}
