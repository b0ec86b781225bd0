//! One consumer group's membership state machine, modelled on Kafka's `GroupMetadata` and the
//! classic `GroupCoordinator` (Empty → PreparingRebalance → CompletingRebalance → Stable).
//!
//! Everything here runs under the group's mutex and never blocks: requests that must wait (a
//! JoinGroup until the rebalance completes, a follower's SyncGroup until the leader's assignment)
//! park a `oneshot::Sender` on their member, which is fired when the state machine gets there.
//! Deadlines (rebalance timeout, initial delay, session timeouts, pending-sync) are plain
//! `Instant`s polled by the coordinator's timer task through `Group::on_timer`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use rivulet_log::Quoted;
use tokio::sync::oneshot;

use super::GroupConfig;

/// Kafka's group states, printed exactly as Kafka prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup request gets back (version-independent; the coordinator encodes it).
#[derive(Debug, Clone)]
pub(crate) struct JoinOutcome {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Only the leader gets the members: (member id, group instance id, metadata).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(member_id: impl Into<String>, error: ResponseError) -> JoinOutcome {
        JoinOutcome {
            error: error.code(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.into(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// What a SyncGroup request gets back.
#[derive(Debug, Clone)]
pub(crate) struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ResponseError) -> SyncOutcome {
        SyncOutcome {
            error: error.code(),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Either an immediate answer or one that arrives later through the channel.
pub(crate) enum Pending<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub session_timeout: Duration,
    /// (name, metadata) in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    pub session_deadline: Instant,
    /// Join order; the lowest surviving one becomes leader when the leader leaves.
    seq: u64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
    /// The member's favourite among `candidates` (Kafka's `MemberMetadata.vote`).
    fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| candidates.contains(n))
    }
    /// Members parked on a join or sync automatically satisfy heartbeats (Kafka does the same;
    /// the rebalance / sync timeouts cover them instead).
    fn session_expired(&self, now: Instant) -> bool {
        self.awaiting_join.is_none() && self.awaiting_sync.is_none() && self.session_deadline <= now
    }
}

/// Parameters of one JoinGroup request.
#[derive(Debug, Clone)]
pub(crate) struct JoinParams {
    pub version: i16,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
}

/// The result of a LeaveGroup for one member identity.
pub(crate) type LeaveResult = i16;

#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    members: BTreeMap<String, Member>,
    next_seq: u64,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline for their second join.
    pending_members: HashMap<String, Instant>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    sync_deadline: Option<Instant>,
    /// PreparingRebalance completes at this time at the latest.
    join_deadline: Option<Instant>,
    /// `Some(remaining)` while in the first rebalance's initial delay (Kafka's InitialDelayedJoin).
    initial_delay_remaining: Option<Duration>,
    new_member_added: bool,
}

impl Group {
    pub fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            next_seq: 0,
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline: None,
            join_deadline: None,
            initial_delay_remaining: None,
            new_member_added: false,
        }
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        let mut v: Vec<&Member> = self.members.values().collect();
        v.sort_by_key(|m| m.seq);
        v.into_iter()
    }

    /// Largest rebalance timeout among members (Kafka's `GroupMetadata.rebalanceTimeoutMs`).
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn is_static_member_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty type/protocol list;
    /// otherwise the type must match and at least one protocol must be supported by everyone.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == GroupState::Empty || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Protocol supported by all members, chosen by each member's first preference (votes).
    fn select_protocol(&self) -> Option<String> {
        let mut ordered = self.members();
        let first = ordered.next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect();
        let set: HashSet<&str> = candidates.iter().copied().collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(v) = m.vote(&set) {
                *votes.entry(v).or_default() += 1;
            }
        }
        // Ties go to the earlier candidate in the oldest member's preference order.
        let mut best: Option<(&str, usize)> = None;
        for c in candidates {
            let n = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c.to_string())
    }

    fn generate_member_id(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    fn add_member(
        &mut self,
        p: &JoinParams,
        id: String,
        now: Instant,
    ) -> oneshot::Receiver<JoinOutcome> {
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let (tx, rx) = oneshot::channel();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(i) = &p.instance_id {
            self.static_members.insert(i.clone(), id.clone());
        }
        self.pending_members.remove(&id);
        self.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: p.instance_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                rebalance_timeout: p.rebalance_timeout,
                session_timeout: p.session_timeout,
                protocols: p.protocols.clone(),
                assignment: Bytes::new(),
                awaiting_join: Some(tx),
                awaiting_sync: None,
                session_deadline: now + p.session_timeout,
                seq,
            },
        );
        rx
    }

    /// Removes a member without side effects on the state (callers decide what follows).
    fn remove_member(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if let Some(i) = &m.instance_id {
            if self.static_members.get(i).is_some_and(|cur| cur == id) {
                self.static_members.remove(i);
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            let next = self.members().next().map(|m| m.id.clone());
            self.leader = next;
        }
        Some(m)
    }

    /// Kafka's `removeMemberAndUpdateGroup`: answer its parked requests, then rebalance or try to
    /// complete the ongoing one.
    fn remove_member_and_update(&mut self, id: &str, now: Instant, cfg: &GroupConfig) {
        let Some(mut m) = self.remove_member(id) else {
            return;
        };
        if let Some(tx) = m.awaiting_join.take() {
            let _ = tx.send(JoinOutcome::error(id, ResponseError::UnknownMemberId));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
        }
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant, cfg: &GroupConfig) {
        if self.can_rebalance() {
            self.prepare_rebalance(now, cfg);
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, cfg: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment must rejoin instead.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let delay = cfg.initial_rebalance_delay;
        if self.state == GroupState::Empty && !delay.is_zero() {
            self.initial_delay_remaining = Some(self.rebalance_timeout().saturating_sub(delay));
            self.new_member_added = false;
            self.join_deadline = Some(now + delay);
        } else {
            self.initial_delay_remaining = None;
            self.join_deadline = Some(now + self.rebalance_timeout());
        }
        self.state = GroupState::PreparingRebalance;
        self.try_complete_join(now);
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Kafka's DelayedJoin.tryComplete: done as soon as every known member rejoined (not during
    /// the initial delay, which only ends on its timer).
    fn try_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_remaining.is_none()
            && self.all_members_joined()
        {
            self.complete_join(now);
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, now: Instant) {
        let laggards: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in laggards {
            tracing::info!(group = %Quoted(&self.id), member = %Quoted(&id), "removing member that did not rejoin in time");
            self.remove_member(&id);
        }
        self.join_deadline = None;
        self.initial_delay_remaining = None;
        if !self.members.is_empty() && !self.elect_joined_leader() {
            // Only static members that have not rejoined remain: wait another round for them
            // (their session timeouts will eventually remove them).
            self.join_deadline = Some(now + self.rebalance_timeout());
            return;
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.state = GroupState::Empty;
            tracing::info!(group = %Quoted(&self.id), generation = self.generation, "group is now empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
            .collect();
        let leader = self.leader.clone().unwrap_or_default();
        let (gen, ptype, pname) = (
            self.generation,
            self.protocol_type.clone(),
            self.protocol_name.clone(),
        );
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.rebalance_timeout());
        tracing::info!(group = %Quoted(&self.id), generation = gen, members = all.len(), protocol = %Quoted(&protocol), "rebalance completed join phase");
        for m in self.members.values_mut() {
            m.session_deadline = now + m.session_timeout;
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(JoinOutcome {
                    error: 0,
                    generation_id: gen,
                    protocol_type: ptype.clone(),
                    protocol_name: pname.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    skip_assignment: false,
                    members: if m.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep the leader if it rejoined, else any rejoined one.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        let next = self
            .members()
            .find(|m| m.awaiting_join.is_some())
            .map(|m| m.id.clone());
        match next {
            Some(id) => {
                self.leader = Some(id);
                true
            }
            None => false,
        }
    }

    fn current_join_outcome(
        &self,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinOutcome {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinOutcome {
            error: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment,
            members: if with_members {
                self.members()
                    .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Updates a known member's subscription and parks its join (`updateMemberAndRebalance`).
    fn update_member_and_rebalance(
        &mut self,
        p: &JoinParams,
        id: &str,
        now: Instant,
        cfg: &GroupConfig,
    ) -> Pending<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            m.protocols = p.protocols.clone();
            m.rebalance_timeout = p.rebalance_timeout;
            m.session_timeout = p.session_timeout;
            m.client_id = p.client_id.clone();
            m.client_host = p.client_host.clone();
            // A superseded join (client retried) is told to go away; normally there is none.
            if let Some(old) = m.awaiting_join.replace(tx) {
                let _ = old.send(JoinOutcome::error(id, ResponseError::RebalanceInProgress));
            }
        }
        self.maybe_prepare_rebalance(now, cfg);
        self.try_complete_join(now);
        Pending::Wait(rx)
    }

    /// JoinGroup. `new_member_prefix` is the client id (dynamic) or instance id (static).
    pub fn join(&mut self, p: JoinParams, now: Instant, cfg: &GroupConfig) -> Pending<JoinOutcome> {
        if self.state == GroupState::Dead {
            return Pending::Now(JoinOutcome::error(
                p.member_id,
                ResponseError::CoordinatorNotAvailable,
            ));
        }
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Pending::Now(JoinOutcome::error(
                p.member_id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        let reply = if p.member_id.is_empty() {
            self.join_new_member(p, now, cfg)
        } else {
            self.join_current_member(p, now, cfg)
        };
        self.try_complete_join(now);
        reply
    }

    fn join_new_member(
        &mut self,
        p: JoinParams,
        now: Instant,
        cfg: &GroupConfig,
    ) -> Pending<JoinOutcome> {
        match p.instance_id.clone() {
            None => {
                let new_id = Self::generate_member_id(&p.client_id);
                if p.version >= 4 {
                    // Two-step join (KIP-394): hand out the id, expect a second join with it.
                    self.pending_members
                        .insert(new_id.clone(), now + p.session_timeout);
                    return Pending::Now(JoinOutcome::error(
                        new_id,
                        ResponseError::MemberIdRequired,
                    ));
                }
                self.add_member_and_rebalance(&p, new_id, now, cfg)
            }
            Some(instance) => {
                let new_id = Self::generate_member_id(&instance);
                match self.static_members.get(&instance).cloned() {
                    Some(old_id) => self.replace_static_member(&p, &old_id, new_id, now, cfg),
                    None => self.add_member_and_rebalance(&p, new_id, now, cfg),
                }
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        p: &JoinParams,
        id: String,
        now: Instant,
        cfg: &GroupConfig,
    ) -> Pending<JoinOutcome> {
        let rx = self.add_member(p, id, now);
        if self.state == GroupState::PreparingRebalance && self.initial_delay_remaining.is_some() {
            self.new_member_added = true;
        }
        self.maybe_prepare_rebalance(now, cfg);
        Pending::Wait(rx)
    }

    /// A known group.instance.id rejoined with an unknown member id: the new id takes the old
    /// member's place (Kafka's `updateStaticMemberAndRebalance`), fencing the old one.
    fn replace_static_member(
        &mut self,
        p: &JoinParams,
        old_id: &str,
        new_id: String,
        now: Instant,
        cfg: &GroupConfig,
    ) -> Pending<JoinOutcome> {
        let Some(mut m) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(p, new_id, now, cfg);
        };
        if let Some(tx) = m.awaiting_join.take() {
            let _ = tx.send(JoinOutcome::error(old_id, ResponseError::FencedInstanceId));
        }
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(SyncOutcome::error(ResponseError::FencedInstanceId));
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        let old_protocols = std::mem::replace(&mut m.protocols, p.protocols.clone());
        m.id = new_id.clone();
        m.client_id = p.client_id.clone();
        m.client_host = p.client_host.clone();
        m.rebalance_timeout = p.rebalance_timeout;
        m.session_timeout = p.session_timeout;
        m.session_deadline = now + p.session_timeout;
        let (tx, rx) = oneshot::channel();
        m.awaiting_join = Some(tx);
        self.members.insert(new_id.clone(), m);
        if let Some(i) = &p.instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                let unchanged =
                    old_protocols == p.protocols && self.select_protocol() == self.protocol_name;
                // A pre-v9 leader cannot be told to skip assignment, so it needs a real rebalance.
                if unchanged && (!was_leader || p.version >= 9) {
                    let outcome = self.current_join_outcome(&new_id, was_leader, was_leader);
                    if let Some(m) = self.members.get_mut(&new_id) {
                        m.awaiting_join = None;
                    }
                    return Pending::Now(outcome);
                }
                self.prepare_rebalance(now, cfg);
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(now, cfg),
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => self.maybe_prepare_rebalance(now, cfg),
        }
        Pending::Wait(rx)
    }

    fn join_current_member(
        &mut self,
        p: JoinParams,
        now: Instant,
        cfg: &GroupConfig,
    ) -> Pending<JoinOutcome> {
        let id = p.member_id.clone();
        if self.pending_members.contains_key(&id) {
            return self.add_member_and_rebalance(&p, id, now, cfg);
        }
        if self.is_static_member_fenced(&id, p.instance_id.as_deref()) {
            return Pending::Now(JoinOutcome::error(id, ResponseError::FencedInstanceId));
        }
        let instance_unknown = p
            .instance_id
            .as_ref()
            .is_some_and(|i| !self.static_members.contains_key(i));
        let Some(member) = self.members.get(&id) else {
            return Pending::Now(JoinOutcome::error(id, ResponseError::UnknownMemberId));
        };
        if instance_unknown {
            return Pending::Now(JoinOutcome::error(id, ResponseError::UnknownMemberId));
        }
        let matches = member.matches(&p.protocols);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(&p, &id, now, cfg),
            GroupState::CompletingRebalance => {
                if matches {
                    // Lost its join response: answer with the current generation again.
                    let leader = self.leader.as_deref() == Some(id.as_str());
                    Pending::Now(self.current_join_outcome(&id, leader, false))
                } else {
                    self.update_member_and_rebalance(&p, &id, now, cfg)
                }
            }
            GroupState::Stable => {
                let leader = self.leader.as_deref() == Some(id.as_str());
                if leader || !matches {
                    // The leader rejoining (e.g. metadata change it noticed) forces a rebalance.
                    self.update_member_and_rebalance(&p, &id, now, cfg)
                } else {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.session_deadline = now + m.session_timeout;
                    }
                    Pending::Now(self.current_join_outcome(&id, false, false))
                }
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Now(JoinOutcome::error(id, ResponseError::UnknownMemberId))
            }
        }
    }

    /// SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Pending<SyncOutcome> {
        use ResponseError as E;
        let err = |e: E| Pending::Now(SyncOutcome::error(e));
        if self.state == GroupState::Dead {
            return err(E::CoordinatorNotAvailable);
        }
        if self.is_static_member_fenced(member_id, instance_id) {
            return err(E::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return err(E::UnknownMemberId);
        }
        if generation != self.generation {
            return err(E::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| self.protocol_type.as_deref() != Some(t))
            || protocol_name.is_some_and(|n| self.protocol_name.as_deref() != Some(n))
        {
            return err(E::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty => err(E::UnknownMemberId),
            GroupState::PreparingRebalance => err(E::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.awaiting_sync = Some(tx);
                }
                self.pending_sync.remove(member_id);
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        // Members the leader left out get an empty assignment (as Kafka does).
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let (ptype, pname) = (self.protocol_type.clone(), self.protocol_name.clone());
                    for m in self.members.values_mut() {
                        if let Some(tx) = m.awaiting_sync.take() {
                            m.session_deadline = now + m.session_timeout;
                            let _ = tx.send(SyncOutcome {
                                error: 0,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    tracing::info!(group = %Quoted(&self.id), generation = self.generation, "group is stable");
                }
                Pending::Wait(rx)
            }
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let Some(m) = self.members.get_mut(member_id) else {
                    return err(E::UnknownMemberId);
                };
                m.session_deadline = now + m.session_timeout;
                Pending::Now(SyncOutcome {
                    error: 0,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
            GroupState::Dead => err(E::CoordinatorNotAvailable),
        }
    }

    /// Heartbeat; returns the error code.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        use ResponseError as E;
        if self.state == GroupState::Dead {
            return E::CoordinatorNotAvailable.code();
        }
        if self.is_static_member_fenced(member_id, instance_id) {
            return E::FencedInstanceId.code();
        }
        let state = self.state;
        let current_generation = self.generation;
        let Some(m) = self.members.get_mut(member_id) else {
            return E::UnknownMemberId.code();
        };
        if generation != current_generation {
            return E::IllegalGeneration.code();
        }
        match state {
            GroupState::Empty => E::UnknownMemberId.code(),
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline = now + m.session_timeout;
                0
            }
            GroupState::PreparingRebalance => {
                m.session_deadline = now + m.session_timeout;
                E::RebalanceInProgress.code()
            }
            GroupState::Dead => E::CoordinatorNotAvailable.code(),
        }
    }

    /// LeaveGroup for one identity (member id and/or instance id).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        cfg: &GroupConfig,
    ) -> LeaveResult {
        use ResponseError as E;
        if !member_id.is_empty() && self.is_static_member_fenced(member_id, instance_id) {
            return E::FencedInstanceId.code();
        }
        if self.pending_members.remove(member_id).is_some() {
            self.try_complete_join(now);
            return 0;
        }
        // Admin removal by instance id comes with an empty member id.
        let target = instance_id
            .and_then(|i| self.static_members.get(i).cloned())
            .unwrap_or_else(|| member_id.to_string());
        if !self.members.contains_key(&target) {
            return E::UnknownMemberId.code();
        }
        tracing::info!(group = %Quoted(&self.id), member = %Quoted(&target), "member left the group");
        self.remove_member_and_update(&target, now, cfg);
        0
    }

    /// OffsetCommit membership validation (Kafka's `validateOffsetCommit` + the state match).
    /// `Ok(())` means the commit may be written.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        use ResponseError as E;
        if self.state == GroupState::Dead {
            return Err(E::CoordinatorNotAvailable);
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if self.is_static_member_fenced(member_id, instance_id) {
                return Err(E::FencedInstanceId);
            }
            if !self.members.contains_key(member_id) {
                return Err(E::UnknownMemberId);
            }
            if generation != self.generation {
                return Err(E::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            // Only members may commit to a group with members.
            return Err(E::UnknownMemberId);
        }
        match self.state {
            GroupState::Empty => Ok(()),
            // Commits stay allowed while preparing; the heartbeat tells the member to rejoin.
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.session_deadline = now + m.session_timeout;
                }
                Ok(())
            }
            GroupState::CompletingRebalance => Err(E::RebalanceInProgress),
            GroupState::Dead => Err(E::CoordinatorNotAvailable),
        }
    }

    /// Fires expired deadlines; returns the next deadline, if any.
    pub fn on_timer(&mut self, now: Instant, cfg: &GroupConfig) -> Option<Instant> {
        if self.state == GroupState::Dead {
            return None;
        }
        // Rebalance (or initial delay) timeout.
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            match self.initial_delay_remaining {
                Some(remaining) if self.new_member_added && !remaining.is_zero() => {
                    // More members arrived during the delay: wait another (bounded) round.
                    self.new_member_added = false;
                    let delay = cfg.initial_rebalance_delay.min(remaining);
                    self.initial_delay_remaining = Some(remaining - delay);
                    self.join_deadline = Some(now + delay);
                }
                _ => self.complete_join(now),
            }
        }
        // Members of the new generation that never sent SyncGroup are dropped.
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline.is_some_and(|d| d <= now)
        {
            self.sync_deadline = None;
            if !self.pending_sync.is_empty() {
                let missing: Vec<String> = self.pending_sync.drain().collect();
                for id in &missing {
                    tracing::info!(group = %Quoted(&self.id), member = %Quoted(id), "removing member that did not sync in time");
                    if let Some(mut m) = self.remove_member(id) {
                        if let Some(tx) = m.awaiting_join.take() {
                            let _ = tx.send(JoinOutcome::error(
                                id.as_str(),
                                ResponseError::UnknownMemberId,
                            ));
                        }
                    }
                }
                self.prepare_rebalance(now, cfg);
            }
        }
        // Pending (two-step join) members that never came back.
        let before = self.pending_members.len();
        self.pending_members.retain(|_, d| *d > now);
        if self.pending_members.len() != before {
            self.try_complete_join(now);
        }
        // Session timeouts.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %Quoted(&self.id), member = %Quoted(&id), "member session expired");
            self.remove_member_and_update(&id, now, cfg);
        }
        self.next_deadline()
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |d: Instant| next = Some(next.map_or(d, |n| n.min(d)));
        if self.state == GroupState::PreparingRebalance {
            if let Some(d) = self.join_deadline {
                consider(d);
            }
        }
        if let Some(d) = self.sync_deadline {
            consider(d);
        }
        for d in self.pending_members.values() {
            consider(*d);
        }
        for m in self.members.values() {
            if m.awaiting_join.is_none() && m.awaiting_sync.is_none() {
                consider(m.session_deadline);
            }
        }
        next
    }

    /// Marks the group dead (deletion / shutdown) and answers every parked request.
    pub fn kill(&mut self, error: ResponseError) {
        self.state = GroupState::Dead;
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(JoinOutcome::error(m.id.as_str(), error));
            }
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(SyncOutcome::error(error));
            }
        }
    }

    /// Answers parked requests without changing state (coordinator shutdown).
    pub fn fail_waiters(&mut self, error: ResponseError) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(JoinOutcome::error(m.id.as_str(), error));
            }
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(SyncOutcome::error(error));
            }
        }
    }

    /// Member metadata for the group's protocol (DescribeGroups shows it only when Stable).
    pub fn member_metadata(&self, m: &Member) -> Bytes {
        m.metadata(self.protocol_name.as_deref().unwrap_or_default())
    }
}
