//! FindCoordinator: this single node coordinates every group (key type 0). Transactions are not
//! supported, so transaction coordinator lookups (key type 1) get COORDINATOR_NOT_AVAILABLE.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};

pub(crate) fn handle(ctx: RequestContext, req: FindCoordinatorRequest) -> Reply {
    let v = ctx.version();
    let cfg = &ctx.broker.config;
    let answer = |key: &str| -> (i16, Option<&'static str>) {
        if req.key_type != 0 {
            (
                ResponseError::CoordinatorNotAvailable.code(),
                Some("transactions are not supported by this broker"),
            )
        } else if key.is_empty() {
            (ResponseError::InvalidGroupId.code(), Some("empty group id"))
        } else {
            (0, None)
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, msg) = answer(k);
                let mut c = Coordinator::default();
                c.key = k.clone();
                c.error_code = code;
                c.error_message = msg.map(StrBytes::from_static_str);
                if code == 0 {
                    c.node_id = BrokerId(cfg.node_id);
                    c.host = StrBytes::from_string(cfg.advertised_host.clone());
                    c.port = i32::from(cfg.advertised_port);
                } else {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                c
            })
            .collect();
    } else {
        let (code, msg) = answer(&req.key);
        resp.error_code = code;
        if v >= 1 {
            resp.error_message = msg.map(StrBytes::from_static_str);
        }
        if code == 0 {
            resp.node_id = BrokerId(cfg.node_id);
            resp.host = StrBytes::from_string(cfg.advertised_host.clone());
            resp.port = i32::from(cfg.advertised_port);
        } else {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    Reply::now(resp)
}
