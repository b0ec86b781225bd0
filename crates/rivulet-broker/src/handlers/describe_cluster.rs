//! DescribeCluster: one broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, _req: DescribeClusterRequest) -> Reply {
    let cfg = &ctx.broker.config;
    let mut resp = DescribeClusterResponse::default();
    if !ctx.allowed(
        crate::acl::Operation::Describe,
        crate::acl::ResourceType::Cluster,
        crate::acl::CLUSTER_NAME,
    ) {
        resp.error_code = kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
        return Reply::now(resp);
    }
    resp.cluster_id = StrBytes::from_string(ctx.broker.logs.cluster_id().to_string());
    resp.controller_id = BrokerId(cfg.node_id);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(cfg.node_id);
    b.host = StrBytes::from_string(ctx.advertised.0.clone());
    b.port = i32::from(ctx.advertised.1);
    resp.brokers = vec![b];
    Reply::now(resp)
}
