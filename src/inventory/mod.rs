//! Inventory state (contract §2.1): identities, credentials, grants, baselines, owners,
//! vendors, departed principals, offboarded vendors and completed tasks.
//!
//! Events are applied in event-time order; each application marks the identities whose
//! rule inputs changed as *dirty*, so an evaluation snapshots only those (see
//! [`snapshot`]). Credential expiry changes state without an event, so expiries are
//! scheduled and make their identity dirty at the first evaluation at or after them.

mod apply;
pub mod credentials;
pub mod enrich;
mod forget;
mod moment;
mod name;
mod posture;
pub mod snapshot;
pub mod view;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::credentials::{CredentialState, Credentials, Slot};
pub use self::moment::Moment;
pub use self::name::Name;
use crate::engine::footprint::Fact;
use crate::event::{IdentityKind, Micros, Tier};
use crate::hashing::FastMap;

/// How applying a use or a tool call marks identities to judge again.
///
/// Eager judging marks the identity on every event. Incremental judging asks, for each
/// activity fact that grew from a known value, whether the change may wait: the identity's
/// pending findings on rules reading it can then only fall due later, and are judged again
/// when they fall due (see `pipeline::deferral`). A new identity and a new credential
/// always mark.
pub trait Judging {
    /// Whether every event marks its identity (today's eager evaluation).
    fn eager(&self) -> bool;
    /// Whether `identity`'s `fact` (of credential or scope `key`), grown to `at` — or set
    /// for the `first` time, to a value not before the fact's floor — may skip judging.
    fn defer(
        &mut self,
        identity: &str,
        fact: Fact,
        key: Option<&str>,
        at: Micros,
        first: bool,
    ) -> bool;
}

/// Eager judging: every event marks its identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Eager;

impl Judging for Eager {
    fn eager(&self) -> bool {
        true
    }

    fn defer(&mut self, _: &str, _: Fact, _: Option<&str>, _: Micros, _: bool) -> bool {
        false
    }
}

/// An owner role held by a principal since a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Shared with the principal index (`Inventory::by_principal`).
    pub principal: Name,
    pub since: Micros,
    /// Time of the newest assignment event of the role (an older one changes nothing).
    pub stamp: Micros,
}

/// A scope granted on the target platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub granted_at: Micros,
    /// When the scope last became outside the approved baseline; `None` while inside.
    pub outside_since: Moment,
}

/// Everything known about one identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityState {
    pub kind: Option<IdentityKind>,
    pub tier: Tier,
    pub registered_at: Micros,
    pub business_owner: Option<Assignment>,
    pub technical_custodian: Option<Assignment>,
    pub approved_at: Moment,
    pub certified_at: Moment,
    /// Approved scopes; `None` when the identity has no baseline.
    pub baseline_scopes: Option<Names>,
    /// Approved tools; `None` when tools are unchecked.
    pub baseline_tools: Option<Names>,
    pub offboarded_at: Moment,
    pub last_activity: Moment,
    /// Slots of the credentials owned, minus long-ended ones (pruned once they cannot
    /// matter).
    pub credentials: Vec<Slot>,
    pub grants: BTreeMap<String, Grant>,
    /// Merged spans of ended credentials and revoked grants that may still join the
    /// current holding period (ended credentials leave `credentials` for here).
    pub ended_spans: Vec<(Micros, Micros)>,
    pub last_exercised: FastMap<String, Micros>,
    /// Linked vendors and when.
    pub vendors: BTreeMap<String, Micros>,
    /// Time of the newest `identity.registered` (kind and tier are its values).
    pub registered_stamp: Moment,
    /// Time of the event that set the baseline (an approval or a recertification with
    /// scopes).
    pub baseline_at: Moment,
    /// Scopes revoked and when, so an older grant arriving late does not revive them.
    pub revoked_scopes: BTreeMap<String, Micros>,
}

impl IdentityState {
    fn new(registered_at: Micros) -> Self {
        IdentityState {
            kind: None,
            tier: Tier::ToolExecuting,
            registered_at,
            business_owner: None,
            technical_custodian: None,
            approved_at: Moment::NONE,
            certified_at: Moment::NONE,
            baseline_scopes: None,
            baseline_tools: None,
            offboarded_at: Moment::NONE,
            last_activity: Moment::NONE,
            credentials: Vec::new(),
            grants: BTreeMap::new(),
            ended_spans: Vec::new(),
            last_exercised: FastMap::default(),
            vendors: BTreeMap::new(),
            registered_stamp: Moment::NONE,
            baseline_at: Moment::NONE,
            revoked_scopes: BTreeMap::new(),
        }
    }

    /// Whether `scope` is inside the approved baseline (no baseline: nothing is).
    pub fn in_baseline(&self, scope: &str) -> bool {
        self.baseline_scopes
            .as_ref()
            .is_some_and(|s| s.contains(scope))
    }
}

/// A small set of names (approved scopes or tools): sorted and deduplicated in one
/// allocation, far smaller than a `BTreeSet` for the handful an approval lists.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Box<str>>")]
pub struct Names(Box<[Box<str>]>);

impl Names {
    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| (**n).cmp(name)).is_ok()
    }
}

impl From<Vec<Box<str>>> for Names {
    fn from(mut names: Vec<Box<str>>) -> Self {
        names.sort_unstable();
        names.dedup();
        Names(names.into_boxed_slice())
    }
}

impl<'a> FromIterator<&'a String> for Names {
    fn from_iter<I: IntoIterator<Item = &'a String>>(names: I) -> Self {
        Names::from(
            names
                .into_iter()
                .map(|n| Box::from(n.as_str()))
                .collect::<Vec<_>>(),
        )
    }
}

/// A credential's status at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    Active,
    Revoked,
    Retired,
    Expired,
}

impl CredentialStatus {
    /// The value rules see.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialStatus::Active => "active",
            CredentialStatus::Revoked => "revoked",
            CredentialStatus::Retired => "retired",
            CredentialStatus::Expired => "expired",
        }
    }
}

impl CredentialState {
    /// Status at `now`.
    pub fn status_at(&self, now: Micros) -> CredentialStatus {
        if self.revoked_at.is_some_and(|t| t <= now) {
            CredentialStatus::Revoked
        } else if self.retired_at.is_some_and(|t| t <= now) {
            CredentialStatus::Retired
        } else if self.expires.is_some_and(|t| t <= now) {
            CredentialStatus::Expired
        } else {
            CredentialStatus::Active
        }
    }

    /// When it stops (or stopped) being active, if ever.
    pub fn end(&self) -> Option<Micros> {
        [self.revoked_at, self.retired_at, self.expires]
            .into_iter()
            .filter_map(Moment::get)
            .min()
    }
}

/// The whole inventory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Inventory {
    /// Identities by name; credentials share the name (`CredentialState::identity`).
    #[serde(with = "by_name")]
    /// (Boxed: the map's slots stay small, however large an identity's state.)
    pub(crate) identities: FastMap<Arc<str>, Box<IdentityState>>,
    pub(crate) credentials: Credentials,
    pub(crate) departed: FastMap<String, Micros>,
    pub(crate) vendors_offboarded: FastMap<String, Micros>,
    /// Principal → identities it was ever assigned to (to re-check on departure).
    /// (Its keys are the principals' names every assignment shares.)
    pub(crate) by_principal: FastMap<Name, BTreeSet<Name>>,
    /// Vendor → identities linked to it.
    pub(crate) by_vendor: FastMap<String, BTreeSet<String>>,
    /// Identity → task → completion time.
    pub(crate) tasks_completed: FastMap<String, BTreeMap<String, Micros>>,
    /// Scheduled credential expiries: (time, identity).
    expiries: BinaryHeap<Reverse<(Micros, Name)>>,
    /// When each identity must be snapshotted again because a finding becomes due.
    wakeups: BinaryHeap<Reverse<(Micros, Name)>>,
    /// The latest wake-up per identity; earlier heap entries for it are stale.
    wake_at: FastMap<Name, Micros>,
    /// Identities to snapshot at the next evaluation, sorted for deterministic output.
    dirty: BTreeSet<Name>,
    /// What ended, by the time it is forgotten (contract §2.2).
    forget: BinaryHeap<Reverse<(Micros, forget::Forget)>>,
    /// Scratch space of [`Inventory::holding_since`].
    #[serde(skip)]
    spans: Vec<(Micros, Micros)>,
    /// `inventory.forget_after`; `None` keeps everything.
    #[serde(skip)]
    forget_after: Option<Micros>,
    /// Counts for the metrics, kept as things change (counted afresh on restore).
    #[serde(skip)]
    posture: posture::Posture,
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    /// When `identity`'s `task` completed, if it did.
    pub fn task_completed(&self, identity: &str, task: &str) -> Option<Micros> {
        self.tasks_completed.get(identity)?.get(task).copied()
    }

    /// Makes every credential share its identity's name again (after reading a
    /// checkpoint, where each was read as a copy).
    pub fn share_names(&mut self) {
        let identities = &self.identities;
        for cred in self.credentials.values_mut() {
            if let Some((name, _)) = identities.get_key_value(&*cred.identity) {
                cred.identity = Arc::clone(name);
            }
        }
        let by_principal = std::mem::take(&mut self.by_principal);
        self.by_principal = by_principal
            .into_iter()
            .map(|(principal, set)| (principal, set.iter().map(|n| self.shared(n)).collect()))
            .collect();
        let by_principal = &self.by_principal;
        for identity in self.identities.values_mut() {
            for a in [
                &mut identity.business_owner,
                &mut identity.technical_custodian,
            ]
            .into_iter()
            .flatten()
            {
                if let Some((p, _)) = by_principal.get_key_value(a.principal.as_str()) {
                    a.principal = p.clone();
                }
            }
        }
        let wake_at = std::mem::take(&mut self.wake_at);
        self.wake_at = wake_at
            .into_iter()
            .map(|(n, at)| (self.shared(&n), at))
            .collect();
        let wakeups = std::mem::take(&mut self.wakeups);
        self.wakeups = wakeups
            .into_iter()
            .map(|Reverse((at, n))| Reverse((at, self.shared(&n))))
            .collect();
        let expiries = std::mem::take(&mut self.expiries);
        self.expiries = expiries
            .into_iter()
            .map(|Reverse((at, n))| Reverse((at, self.shared(&n))))
            .collect();
        let dirty = std::mem::take(&mut self.dirty);
        self.dirty = dirty.iter().map(|n| self.shared(n)).collect();
    }

    /// Number of identities tracked.
    pub fn identity_count(&self) -> usize {
        self.identities.len()
    }

    /// Number of credentials tracked.
    pub fn credential_count(&self) -> usize {
        self.credentials.len()
    }

    /// Every identity's state.
    pub fn identities(&self) -> impl Iterator<Item = &IdentityState> {
        self.identities.values().map(|i| &**i)
    }

    /// Every credential's state.
    pub fn credentials(&self) -> impl Iterator<Item = &CredentialState> {
        self.credentials.values()
    }

    /// One identity's state.
    pub fn identity(&self, name: &str) -> Option<&IdentityState> {
        self.identities.get(name).map(|i| &**i)
    }

    /// One credential's state.
    pub fn credential(&self, id: &str) -> Option<&CredentialState> {
        self.credentials.get(id)
    }

    /// Takes the identities to snapshot at an evaluation at `now`: those changed by
    /// events plus those with a credential expiry at or before `now`.
    pub fn take_dirty(&mut self, now: Micros) -> BTreeSet<Name> {
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, identity))) = self.expiries.pop() {
                self.dirty.insert(identity);
            }
        }
        while let Some(Reverse((at, _))) = self.wakeups.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((at, identity))) = self.wakeups.pop()
                && self.wake_at.get(&identity) == Some(&at)
            {
                self.wake_at.remove(&identity);
                self.dirty.insert(identity);
            }
        }
        std::mem::take(&mut self.dirty)
    }

    /// The earliest time at which an identity must be judged again without an event: a
    /// credential expiry or a finding falling due.
    pub fn next_timer(&mut self) -> Option<Micros> {
        // Wake-ups replaced by a later one are stale: drop them here.
        while let Some(Reverse((at, identity))) = self.wakeups.peek() {
            if self.wake_at.get(identity) == Some(at) {
                break;
            }
            self.wakeups.pop();
        }
        let expiry = self.expiries.peek().map(|Reverse((at, _))| *at);
        let wake = self.wakeups.peek().map(|Reverse((at, _))| *at);
        expiry.into_iter().chain(wake).min()
    }

    /// Snapshots `identity` again at the first evaluation at or after `at`, when a
    /// finding found earlier becomes due; replaces any earlier wake-up of it.
    pub fn schedule_wake(&mut self, at: Micros, identity: &str) {
        let name = self.shared(identity);
        self.wake_at.insert(name.clone(), at);
        self.wakeups.push(Reverse((at, name)));
        // A replaced wake-up stays in the queue until its time comes; when those stale
        // entries outnumber the live ones, the queue is rebuilt from the live ones, so
        // it is bounded by the identities waiting, not by how often they were judged.
        if self.wakeups.len() > 2 * self.wake_at.len() + 1024 {
            self.wakeups = self
                .wake_at
                .iter()
                .map(|(name, &at)| Reverse((at, name.clone())))
                .collect();
        }
    }

    /// Marks `identity` to be snapshotted at the next evaluation.
    pub(crate) fn mark(&mut self, identity: &str) {
        if !self.dirty.contains(identity) {
            let name = self.shared(identity);
            self.dirty.insert(name);
        }
    }

    fn schedule_expiry(&mut self, at: Micros, identity: &str) {
        let name = self.shared(identity);
        self.expiries.push(Reverse((at, name)));
    }

    /// `identity`'s name, shared with the identity map's key when it is tracked.
    fn shared(&self, identity: &str) -> Name {
        match self.identities.get_key_value(identity) {
            Some((name, _)) => Name::from(Arc::clone(name)),
            None => Name::from(identity),
        }
    }

    /// `principal`'s name, shared with the principal index's key when it is indexed.
    fn principal_name(&self, principal: &str) -> Name {
        match self.by_principal.get_key_value(principal) {
            Some((name, _)) => name.clone(),
            None => Name::from(principal),
        }
    }
}

/// The identities map written as `[name, state]` pairs.
mod by_name {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::IdentityState;
    use crate::hashing::FastMap;

    type Map = FastMap<Arc<str>, Box<IdentityState>>;

    pub fn serialize<S: Serializer>(map: &Map, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter().map(|(k, v)| (&**k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Map, D::Error> {
        let plain = Vec::<(String, Box<IdentityState>)>::deserialize(deserializer)?;
        Ok(plain.into_iter().map(|(k, v)| (Arc::from(k), v)).collect())
    }
}

#[cfg(test)]
mod tests;
