//! Authorisation with Kafka's ACL model: a binding allows or denies a principal (`User:alice`,
//! `User:*`) from a host (`*` or an address) an operation on resources (topics, groups, the
//! cluster, transactional ids) named literally (or `*`) or by prefix. Stored in
//! `<data-dir>/acls.json`, written atomically before CreateAcls/DeleteAcls answer.
//!
//! Who is checked: connections whose principal was authenticated — SASL, or a TLS client
//! certificate on a mutual-TLS listener. On those a request needs a matching ALLOW and no
//! matching DENY (Kafka's `AclAuthorizer`), unless the principal is a super user
//! (`--super-users`) or no ACL names the resource and `--allow-everyone-if-no-acl-found` is
//! set. Connections on PLAINTEXT (and SSL without client certificates) listeners are not
//! checked: bind those to addresses only trusted clients reach.
//!
//! Implied operations, as in Kafka: Describe by Read, Write, Delete or Alter; DescribeConfigs by
//! AlterConfigs; All covers every operation.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
pub use rivulet_auth::acl::*;
use serde::{Deserialize, Serialize};

/// Most ACL bindings the broker keeps (each request is checked against all of them).
pub const MAX_ACLS: usize = 10_000;

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    acls: Vec<AclBinding>,
}

/// The broker's ACLs and how they are applied (see the module docs).
#[derive(Debug)]
pub struct Authorizer {
    path: PathBuf,
    acls: RwLock<Vec<AclBinding>>,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
}

/// Whether an ALLOW for `granted` also allows `wanted`.
fn implies(granted: Operation, wanted: Operation) -> bool {
    granted == wanted
        || granted == Operation::All
        || (wanted == Operation::Describe
            && matches!(
                granted,
                Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
            ))
        || (wanted == Operation::DescribeConfigs && granted == Operation::AlterConfigs)
}

impl Authorizer {
    /// Loads `<data_dir>/acls.json` (none yet: no ACLs).
    pub fn open(
        data_dir: &Path,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> Result<Authorizer, String> {
        let path = data_dir.join("acls.json");
        let acls = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<File>(&bytes)
                    .map_err(|e| format!("{}: not an ACL file: {e}", path.display()))?
                    .acls
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Authorizer {
            path,
            acls: RwLock::new(acls),
            super_users,
            allow_if_no_acl,
        })
    }

    /// Whether `principal` from `host` may do `op` on the resource. `checked`: whether the
    /// connection's principal was authenticated (others are not checked).
    pub fn allows(
        &self,
        checked: bool,
        principal: &str,
        host: IpAddr,
        op: Operation,
        rtype: ResourceType,
        name: &str,
    ) -> bool {
        if !checked || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.acls.read();
        let mut on_resource = acls
            .iter()
            .filter(|b| b.matches_resource(rtype, name))
            .peekable();
        if on_resource.peek().is_none() {
            return self.allow_if_no_acl;
        }
        let mut allowed = false;
        for b in on_resource.filter(|b| b.matches_who(principal, host)) {
            match b.permission {
                // A DENY of an operation does not deny what it would imply.
                Permission::Deny if b.operation == op || b.operation == Operation::All => {
                    return false
                }
                Permission::Deny => {}
                Permission::Allow => allowed |= implies(b.operation, op),
            }
        }
        allowed
    }

    /// Every binding a filter matches, sorted.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let mut out: Vec<AclBinding> = self
            .acls
            .read()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Adds bindings (present ones are kept once) and saves; all or nothing.
    pub fn create(&self, new: &[AclBinding]) -> Result<(), String> {
        let mut acls = self.acls.write();
        let mut next = acls.clone();
        for b in new {
            if !next.contains(b) {
                next.push(b.clone());
            }
        }
        if next.len() > MAX_ACLS {
            return Err(format!("the broker keeps at most {MAX_ACLS} ACLs"));
        }
        self.save(&next)?;
        *acls = next;
        Ok(())
    }

    /// Removes what each filter matches and saves; returns the removed bindings per filter.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, String> {
        let mut acls = self.acls.write();
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| acls.iter().filter(|b| f.matches(b)).cloned().collect())
            .collect();
        let next: Vec<AclBinding> = acls
            .iter()
            .filter(|b| !filters.iter().any(|f| f.matches(b)))
            .cloned()
            .collect();
        if next.len() != acls.len() {
            self.save(&next)?;
            *acls = next;
        }
        Ok(removed)
    }

    fn save(&self, acls: &[AclBinding]) -> Result<(), String> {
        use std::io::Write;
        let file = File {
            version: 1,
            acls: acls.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("json.tmp");
        let io = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        who: &str,
        op: Operation,
        p: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: p,
        }
    }

    #[test]
    fn kafka_semantics_allow_deny_prefix_implied_super_users() {
        use Operation::*;
        use PatternType::*;
        use ResourceType::*;
        let dir = tempfile::tempdir().unwrap();
        let a = Authorizer::open(dir.path(), vec!["User:admin".into()], false).unwrap();
        let h: IpAddr = "127.0.0.1".parse().unwrap();
        let ok = |who: &str, op, rt, name: &str| a.allows(true, who, h, op, rt, name);
        // Nothing yet: denied, except super users and unchecked connections.
        assert!(!ok("User:alice", Read, Topic, "t"));
        assert!(ok("User:admin", Delete, Topic, "t"));
        assert!(a.allows(false, "User:ANONYMOUS", h, Write, Topic, "t"));
        a.create(&[
            acl(
                Topic,
                "orders-",
                Prefixed,
                "User:alice",
                Read,
                Permission::Allow,
            ),
            acl(
                Topic,
                "orders-secret",
                Literal,
                "User:alice",
                All,
                Permission::Deny,
            ),
            acl(Group, "*", Literal, "User:*", Read, Permission::Allow),
            acl(
                Topic,
                "audit",
                Literal,
                "User:bob",
                AlterConfigs,
                Permission::Allow,
            ),
        ])
        .unwrap();
        assert!(ok("User:alice", Read, Topic, "orders-eu"));
        assert!(
            ok("User:alice", Describe, Topic, "orders-eu"),
            "Read implies Describe"
        );
        assert!(!ok("User:alice", Write, Topic, "orders-eu"));
        assert!(!ok("User:alice", Read, Topic, "orders-secret"), "DENY wins");
        assert!(!ok("User:alice", Read, Topic, "payments"));
        assert!(ok("User:carol", Read, Group, "any-group"), "wildcards");
        assert!(ok("User:bob", DescribeConfigs, Topic, "audit"));
        assert!(!ok("User:bob", Describe, Topic, "audit"));
        // Durable, and deletable by filter.
        let again = Authorizer::open(dir.path(), vec![], false).unwrap();
        assert_eq!(again.describe(&AclFilter::default()).len(), 4);
        let removed = again
            .delete(&[AclFilter {
                principal: Some("User:alice".into()),
                ..AclFilter::default()
            }])
            .unwrap();
        assert_eq!(removed[0].len(), 2);
        let again = Authorizer::open(dir.path(), vec![], true).unwrap();
        assert_eq!(again.describe(&AclFilter::default()).len(), 2);
        // allow-everyone-if-no-acl-found: a resource no ACL names is open.
        assert!(again.allows(true, "User:x", h, Write, Topic, "free"));
        assert!(!again.allows(true, "User:x", h, Write, Topic, "audit"));
    }

    #[test]
    fn bindings_are_validated_and_names_parse() {
        let mut b = AclBinding {
            resource_type: ResourceType::Cluster,
            resource_name: "other".into(),
            pattern_type: PatternType::Literal,
            principal: "User:a".into(),
            host: "*".into(),
            operation: Operation::Alter,
            permission: Permission::Allow,
        };
        assert!(b.validate().is_err());
        b.resource_name = CLUSTER_NAME.into();
        assert!(b.validate().is_ok());
        b.principal = "alice".into();
        assert!(b.validate().is_err());
        b.principal = "User:a".into();
        b.host = "not-an-ip".into();
        assert!(b.validate().is_err());
        assert_eq!(
            Operation::from_name("describe-configs"),
            Some(Operation::DescribeConfigs)
        );
        assert_eq!(
            Operation::from_name("IDEMPOTENT_WRITE"),
            Some(Operation::IdempotentWrite)
        );
        assert_eq!(
            ResourceType::from_code(5),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(Permission::from_code(1), None);
    }
}
