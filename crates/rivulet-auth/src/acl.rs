//! Kafka's ACL model, shared by the broker's authorizer and `rivulet acls`: resource types,
//! pattern types, operations and permissions with their protocol codes and the names Kafka's
//! tools print, a binding, and a filter (DescribeAcls / DeleteAcls).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

macro_rules! kafka_enum {
    ($name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// The protocol's code.
            pub fn code(self) -> i8 { match self { $($name::$variant => $code,)* } }
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
            /// The name Kafka's tools print (`Topic`, `Read`, …).
            pub fn name(self) -> &'static str { match self { $($name::$variant => $text,)* } }
            /// By name, case and `-`/`_` insensitive (`--operation describe-configs`).
            pub fn from_name(s: &str) -> Option<$name> {
                let norm = |t: &str| t.replace(['-', '_'], "").to_ascii_lowercase();
                let s = norm(s);
                $name::ALL.iter().copied().find(|v| norm(v.name()) == s)
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.name()) }
        }
    };
}

kafka_enum!(ResourceType {
    Topic = 2, "Topic";
    Group = 3, "Group";
    Cluster = 4, "Cluster";
    TransactionalId = 5, "TransactionalId";
});

kafka_enum!(PatternType {
    Literal = 3, "Literal";
    Prefixed = 4, "Prefixed";
});

kafka_enum!(Operation {
    All = 2, "All";
    Read = 3, "Read";
    Write = 4, "Write";
    Create = 5, "Create";
    Delete = 6, "Delete";
    Alter = 7, "Alter";
    Describe = 8, "Describe";
    ClusterAction = 9, "ClusterAction";
    DescribeConfigs = 10, "DescribeConfigs";
    AlterConfigs = 11, "AlterConfigs";
    IdempotentWrite = 12, "IdempotentWrite";
});

kafka_enum!(Permission {
    Deny = 2, "Deny";
    Allow = 3, "Allow";
});

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// One ACL binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Refuses bindings Kafka refuses: empty names, principals not `Type:name`, a cluster
    /// resource not named `kafka-cluster`, a prefixed `*`.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named {CLUSTER_NAME}"));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err("a prefixed pattern cannot be *".into());
        }
        match self.principal.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => {}
            _ => return Err("the principal must be Type:name, e.g. User:alice".into()),
        }
        if self.host != "*" && self.host.parse::<IpAddr>().is_err() {
            return Err("the host must be * or an IP address".into());
        }
        for s in [&self.resource_name, &self.principal, &self.host] {
            if s.len() > 1000 || s.chars().any(char::is_control) {
                return Err(
                    "names must be at most 1000 characters without control characters".into(),
                );
            }
        }
        Ok(())
    }

    pub fn matches_resource(&self, rtype: ResourceType, name: &str) -> bool {
        self.resource_type == rtype
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    pub fn matches_who(&self, principal: &str, host: IpAddr) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == "*" || self.host.parse::<IpAddr>().is_ok_and(|h| h == host))
    }
}

/// A DescribeAcls / DeleteAcls filter: `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    /// `None`: any; Kafka's MATCH is treated as any.
    pub pattern_type: Option<PatternType>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && self
                .resource_name
                .as_ref()
                .is_none_or(|n| *n == b.resource_name)
            && self.pattern_type.is_none_or(|p| p == b.pattern_type)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}
