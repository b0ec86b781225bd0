//! `rivulet acls add|list|remove`: ACLs on any Kafka-compatible cluster, through CreateAcls,
//! DescribeAcls and DeleteAcls spoken directly (`wire.rs`; librdkafka's admin API is not
//! exposed by the `rdkafka` crate for ACLs). Flags as Kafka's `kafka-acls` names them:
//! `--allow-principal User:alice --operation Write --topic T`.

use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rivulet_auth::acl::{
    AclBinding, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME,
};

use crate::wire::WireClient;
use crate::{ClientError, KafkaConnection};

const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Subcommand)]
pub enum AclsCommand {
    /// Add ACLs: every principal × operation × resource given.
    Add(AclArgs),
    /// List ACLs: all, or those matching the resources, principals and operations given.
    List(AclArgs),
    /// Remove the ACLs matching the resources, principals and operations given.
    Remove(AclArgs),
}

#[derive(Debug, clap::Args)]
pub struct AclArgs {
    /// A principal to allow, e.g. `User:alice` (repeatable).
    #[arg(long)]
    pub allow_principal: Vec<String>,
    /// A principal to deny (repeatable); a DENY wins over any ALLOW.
    #[arg(long)]
    pub deny_principal: Vec<String>,
    /// The host the ACLs apply to (`*`: any).
    #[arg(long, default_value = "*")]
    pub host: String,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs,
    /// AlterConfigs, IdempotentWrite or All (repeatable).
    #[arg(long)]
    pub operation: Vec<String>,
    /// A topic (repeatable; `*` for all).
    #[arg(long)]
    pub topic: Vec<String>,
    /// A consumer group (repeatable; `*` for all).
    #[arg(long)]
    pub group: Vec<String>,
    /// A transactional id (repeatable; `*` for all).
    #[arg(long)]
    pub transactional_id: Vec<String>,
    /// The cluster itself (creating topics, ACLs, describing the cluster).
    #[arg(long)]
    pub cluster: bool,
    /// `literal` (the name, or `*`) or `prefixed` (every name starting with it).
    #[arg(long, default_value = "literal")]
    pub resource_pattern_type: String,
}

fn invalid(msg: impl Into<String>) -> ClientError {
    ClientError::InvalidArgument(msg.into())
}

impl AclArgs {
    fn pattern(&self) -> Result<PatternType, ClientError> {
        PatternType::from_name(&self.resource_pattern_type)
            .ok_or_else(|| invalid("--resource-pattern-type is literal or prefixed"))
    }

    fn operations(&self) -> Result<Vec<Operation>, ClientError> {
        self.operation
            .iter()
            .map(|o| {
                Operation::from_name(o).ok_or_else(|| {
                    invalid(format!(
                        "--operation {}: not one of {}",
                        o.escape_debug(),
                        Operation::ALL
                            .iter()
                            .map(|o| o.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            })
            .collect()
    }

    fn resources(&self) -> Vec<(ResourceType, String)> {
        let mut r: Vec<(ResourceType, String)> = Vec::new();
        r.extend(self.topic.iter().map(|t| (ResourceType::Topic, t.clone())));
        r.extend(self.group.iter().map(|g| (ResourceType::Group, g.clone())));
        r.extend(
            self.transactional_id
                .iter()
                .map(|t| (ResourceType::TransactionalId, t.clone())),
        );
        if self.cluster {
            r.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        r
    }

    fn principals(&self) -> Vec<(Permission, String)> {
        self.allow_principal
            .iter()
            .map(|p| (Permission::Allow, p.clone()))
            .chain(
                self.deny_principal
                    .iter()
                    .map(|p| (Permission::Deny, p.clone())),
            )
            .collect()
    }

    /// Every binding `add` creates.
    pub fn bindings(&self) -> Result<Vec<AclBinding>, ClientError> {
        let (ops, resources, principals) =
            (self.operations()?, self.resources(), self.principals());
        if ops.is_empty() || resources.is_empty() || principals.is_empty() {
            return Err(invalid(
                "acls add needs --allow-principal or --deny-principal, --operation and a resource \
                 (--topic, --group, --transactional-id or --cluster)",
            ));
        }
        let pattern = self.pattern()?;
        let mut out = Vec::new();
        for (permission, principal) in &principals {
            for op in &ops {
                for (rtype, name) in &resources {
                    let b = AclBinding {
                        resource_type: *rtype,
                        resource_name: name.clone(),
                        pattern_type: pattern,
                        principal: principal.clone(),
                        host: self.host.clone(),
                        operation: *op,
                        permission: *permission,
                    };
                    b.validate()
                        .map_err(|e| invalid(format!("{principal} {op} {rtype} {name}: {e}")))?;
                    out.push(b);
                }
            }
        }
        Ok(out)
    }

    /// The filters of `list` and `remove`: one per resource × principal × operation given,
    /// each unset dimension matching anything (ANY = 1).
    fn filters(&self) -> Result<Vec<DeleteAclsFilter>, ClientError> {
        let ops: Vec<Option<Operation>> = match self.operations()? {
            v if v.is_empty() => vec![None],
            v => v.into_iter().map(Some).collect(),
        };
        let resources: Vec<Option<(ResourceType, String)>> = match self.resources() {
            v if v.is_empty() => vec![None],
            v => v.into_iter().map(Some).collect(),
        };
        let principals: Vec<Option<(Permission, String)>> = match self.principals() {
            v if v.is_empty() => vec![None],
            v => v.into_iter().map(Some).collect(),
        };
        let pattern = if resources.iter().any(Option::is_some) {
            self.pattern()?.code()
        } else {
            1
        };
        let mut out = Vec::new();
        for r in &resources {
            for p in &principals {
                for o in &ops {
                    let mut f = DeleteAclsFilter::default();
                    f.resource_type_filter = r.as_ref().map_or(1, |(t, _)| t.code());
                    f.resource_name_filter =
                        r.as_ref().map(|(_, n)| StrBytes::from_string(n.clone()));
                    f.pattern_type_filter = pattern;
                    f.principal_filter = p.as_ref().map(|(_, n)| StrBytes::from_string(n.clone()));
                    f.host_filter =
                        (self.host != "*").then(|| StrBytes::from_string(self.host.clone()));
                    f.operation = o.map_or(1, Operation::code);
                    f.permission_type = p.as_ref().map_or(1, |(perm, _)| perm.code());
                    out.push(f);
                }
            }
        }
        Ok(out)
    }
}

async fn connect(brokers: &KafkaConnection) -> Result<WireClient, ClientError> {
    crate::wire::connect_any(brokers, TIMEOUT).await
}

fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let name = kafka_protocol::error::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    match message {
        Some(m) if !m.is_empty() => format!("{name}: {}", m.as_str().escape_debug()),
        _ => name,
    }
}

fn describe_row(b: &AclBinding) -> String {
    format!(
        "{} {} {} on {} {} ({}) from {}",
        b.principal.escape_debug(),
        b.permission,
        b.operation,
        b.resource_type,
        b.resource_name.escape_debug(),
        b.pattern_type,
        b.host
    )
}

/// The ACLs a DescribeAcls filter matches.
pub async fn list(
    brokers: &KafkaConnection,
    filter: &DeleteAclsFilter,
) -> Result<Vec<AclBinding>, ClientError> {
    let mut c = connect(brokers).await?;
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = filter.resource_type_filter;
    req.resource_name_filter = filter.resource_name_filter.clone();
    req.pattern_type_filter = filter.pattern_type_filter;
    req.principal_filter = filter.principal_filter.clone();
    req.host_filter = filter.host_filter.clone();
    req.operation = filter.operation;
    req.permission_type = filter.permission_type;
    let resp: DescribeAclsResponse = c.call(ApiKey::DescribeAcls, 1, &req).await?;
    if resp.error_code != 0 {
        return Err(ClientError::Protocol(format!(
            "DescribeAcls: {}",
            error_text(resp.error_code, resp.error_message.as_ref())
        )));
    }
    let mut out = Vec::new();
    for r in resp.resources {
        for a in r.acls {
            if let (Some(rt), Some(pt), Some(op), Some(perm)) = (
                ResourceType::from_code(r.resource_type),
                PatternType::from_code(r.pattern_type),
                Operation::from_code(a.operation),
                Permission::from_code(a.permission_type),
            ) {
                out.push(AclBinding {
                    resource_type: rt,
                    resource_name: r.resource_name.to_string(),
                    pattern_type: pt,
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: op,
                    permission: perm,
                });
            }
        }
    }
    Ok(out)
}

impl AclsCommand {
    /// Runs the command against `brokers`, printing to stdout.
    pub async fn run(self, brokers: &KafkaConnection) -> Result<(), ClientError> {
        match self {
            AclsCommand::Add(args) => {
                let bindings = args.bindings()?;
                let mut req = CreateAclsRequest::default();
                req.creations = bindings
                    .iter()
                    .map(|b| {
                        let mut c = AclCreation::default();
                        c.resource_type = b.resource_type.code();
                        c.resource_name = StrBytes::from_string(b.resource_name.clone());
                        c.resource_pattern_type = b.pattern_type.code();
                        c.principal = StrBytes::from_string(b.principal.clone());
                        c.host = StrBytes::from_string(b.host.clone());
                        c.operation = b.operation.code();
                        c.permission_type = b.permission.code();
                        c
                    })
                    .collect();
                let mut c = connect(brokers).await?;
                let resp: CreateAclsResponse = c.call(ApiKey::CreateAcls, 1, &req).await?;
                let mut failed = Vec::new();
                for (b, r) in bindings.iter().zip(&resp.results) {
                    if r.error_code == 0 {
                        println!("added: {}", describe_row(b));
                    } else {
                        failed.push(format!(
                            "{}: {}",
                            describe_row(b),
                            error_text(r.error_code, r.error_message.as_ref())
                        ));
                    }
                }
                if !failed.is_empty() {
                    return Err(ClientError::Protocol(format!(
                        "CreateAcls refused {}",
                        failed.join("; ")
                    )));
                }
            }
            AclsCommand::List(args) => {
                let mut all = Vec::new();
                for f in args.filters()? {
                    for b in list(brokers, &f).await? {
                        if !all.contains(&b) {
                            all.push(b);
                        }
                    }
                }
                all.sort();
                if all.is_empty() {
                    println!("no ACLs");
                }
                for b in &all {
                    println!("{}", describe_row(b));
                }
            }
            AclsCommand::Remove(args) => {
                let filters = args.filters()?;
                if args.resources().is_empty() && args.principals().is_empty() {
                    return Err(invalid(
                        "acls remove needs a resource or a principal (it would remove every ACL)",
                    ));
                }
                let mut req = DeleteAclsRequest::default();
                req.filters = filters;
                let mut c = connect(brokers).await?;
                let resp: DeleteAclsResponse = c.call(ApiKey::DeleteAcls, 1, &req).await?;
                let mut removed = 0;
                for r in &resp.filter_results {
                    if r.error_code != 0 {
                        return Err(ClientError::Protocol(format!(
                            "DeleteAcls: {}",
                            error_text(r.error_code, r.error_message.as_ref())
                        )));
                    }
                    removed += r.matching_acls.len();
                }
                println!("removed {removed} ACL(s)");
            }
        }
        Ok(())
    }
}
