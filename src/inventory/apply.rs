//! Applying one event to the inventory (contract §1.2–§1.4 and §2.1).

use std::sync::Arc;

use super::forget::Forget;
use super::{
    Assignment, CredentialState, Eager, Grant, IdentityState, Inventory, Judging, Moment, Name,
    Names,
};
use crate::engine::footprint::Fact;
use crate::event::{Body, CredentialKind, Event, Micros};

impl Inventory {
    /// Applies one accepted event at its own time and marks every identity it touched.
    pub fn apply(&mut self, event: &Event) {
        self.apply_with(event, &mut Eager, false);
    }

    /// Applies one accepted event at its own time and marks what it changed, as `judging`
    /// decides for uses and tool calls. A `late` event (its window closed) names only what
    /// is known: it creates no identity but by its registration and no credential but by
    /// its issue, since what it names may have been forgotten — a late redelivery changes
    /// nothing (contract §2).
    pub fn apply_with(&mut self, event: &Event, judging: &mut dyn Judging, late: bool) {
        if late && !self.knows(event) {
            return;
        }
        // Only owner assignments and offboardings change whether a known identity lacks
        // an owner pair; any other event can only create the identity.
        let reassigns = matches!(
            event.body,
            Body::OwnerAssigned { .. } | Body::Offboarded { .. }
        );
        let name = event.identity.as_deref();
        let before = reassigns && name.is_some_and(|n| self.is_unpaired(n));
        let identities = self.identities.len();
        self.apply_body(event, judging);
        if let Some(name) = name
            && (reassigns || self.identities.len() != identities)
        {
            self.pairing_changed(name, before);
        }
        // The credentials whose end may have changed.
        let (first, second) = match &event.body {
            Body::CredentialIssued { credential, .. } | Body::CredentialRevoked { credential } => {
                (Some(credential), None)
            }
            Body::CredentialRotated {
                credential,
                new_credential,
                ..
            } => (Some(credential), new_credential.as_ref()),
            _ => (None, None),
        };
        for id in [first, second].into_iter().flatten() {
            if let Some(slot) = self.credentials.slot_of(id) {
                self.end_changed(slot);
            }
        }
    }

    fn apply_body(&mut self, event: &Event, judging: &mut dyn Judging) {
        let t = event.time;
        match &event.body {
            Body::PrincipalDeparted { principal } => {
                self.departed.entry(principal.clone()).or_insert(t);
                if let Some(affected) = self.by_principal.get(principal.as_str()) {
                    self.dirty.extend(affected.iter().cloned());
                }
                return;
            }
            Body::VendorOffboarded { vendor } => {
                self.vendors_offboarded.entry(vendor.clone()).or_insert(t);
                if let Some(affected) = self.by_vendor.get(vendor) {
                    let names: Vec<Name> = affected.iter().map(|n| self.shared(n)).collect();
                    self.dirty.extend(names);
                }
                return;
            }
            _ => {}
        }
        // Every other type names an identity (enforced by the decoder).
        let Some(name) = event.identity.as_deref() else {
            return;
        };
        if judging.eager() || !event.is_activity() || !self.identities.contains_key(name) {
            self.ensure_identity(name, t);
            self.mark(name);
        }
        match &event.body {
            Body::Registered {
                kind,
                tier,
                vendors,
                ..
            } => {
                let identity = self.identity_mut(name, t);
                if identity.registered_stamp.is_none_or(|s| t >= s) {
                    identity.registered_stamp = Moment::at(t);
                    identity.kind = *kind;
                    identity.tier = *tier;
                }
                for vendor in vendors {
                    self.link_vendor(name, vendor, t);
                }
            }
            Body::OwnerAssigned {
                business_owner,
                technical_custodian,
            } => {
                let shared = self.name_of(name, t);
                let [business, technical] = [business_owner, technical_custodian].map(|p| {
                    p.as_deref().map(|principal| {
                        let principal = self.principal_name(principal);
                        self.by_principal
                            .entry(principal.clone())
                            .or_default()
                            .insert(Name::from(Arc::clone(&shared)));
                        principal
                    })
                });
                let identity = self.identity_mut(name, t);
                assign(&mut identity.business_owner, business, t);
                assign(&mut identity.technical_custodian, technical, t);
            }
            Body::Approved { scopes, tools, .. } => {
                let identity = self.identity_mut(name, t);
                identity.certified_at = identity.certified_at.max_with(t);
                if identity.approved_at.is_none_or(|a| t >= a) {
                    identity.approved_at = Moment::at(t);
                    identity.baseline_tools = tools.as_ref().map(|t| t.iter().collect());
                }
                set_baseline(identity, scopes, t);
            }
            Body::Recertified { scopes, .. } => {
                let identity = self.identity_mut(name, t);
                identity.certified_at = identity.certified_at.max_with(t);
                if let Some(scopes) = scopes {
                    set_baseline(identity, scopes, t);
                }
            }
            Body::ScopeGranted { scope } => {
                let identity = self.identity_mut(name, t);
                let revoked_later = identity.revoked_scopes.get(scope).is_some_and(|r| *r > t);
                if !identity.grants.contains_key(scope) && !revoked_later {
                    identity.revoked_scopes.remove(scope);
                    let outside_since = (!identity.in_baseline(scope)).then_some(t).into();
                    identity.grants.insert(
                        scope.clone(),
                        Grant {
                            granted_at: t,
                            outside_since,
                        },
                    );
                }
            }
            Body::ScopeRevoked { scope } => {
                let identity = self.identity_mut(name, t);
                // An older revocation than the grant changes nothing.
                if identity
                    .grants
                    .get(scope)
                    .is_some_and(|g| g.granted_at <= t)
                    && let Some(grant) = identity.grants.remove(scope)
                {
                    identity.ended_spans.push((grant.granted_at, t));
                    identity.revoked_scopes.insert(scope.clone(), t);
                }
                if identity.offboarded_at.is_some() {
                    self.schedule_forget(t, Forget::Identity(name.to_owned()));
                }
            }
            Body::VendorLinked { vendor } => self.link_vendor(name, vendor, t),
            Body::Offboarded { .. } => {
                let identity = self.identity_mut(name, t);
                identity.offboarded_at.or_set(t);
                self.schedule_forget(t, Forget::Identity(name.to_owned()));
            }
            Body::CredentialIssued {
                credential,
                kind,
                expires,
                task,
                ..
            } => {
                // Only a newer issue replaces a credential (a redelivery changes nothing);
                // an issue older than a credential first seen in use fills in what it is.
                if let Some(existing) = self.credentials.get_mut(credential) {
                    if existing.kind == CredentialKind::Unknown && t < existing.issued_at {
                        existing.kind = *kind;
                        existing.issued_at = t;
                        existing.expires = (*expires).into();
                        existing.task = task.as_deref().map(Box::from);
                        let owner = existing.identity.clone();
                        if let Some(at) = *expires {
                            self.schedule_expiry(at, &owner);
                            self.schedule_forget(at, Forget::Credential(credential.clone()));
                        }
                        return;
                    }
                    if t <= existing.issued_at {
                        return;
                    }
                }
                let state = CredentialState {
                    id: credential.as_str().into(),
                    identity: self.name_of(name, t),
                    kind: *kind,
                    issued_at: t,
                    rotated_at: Moment::NONE,
                    expires: (*expires).into(),
                    revoked_at: Moment::NONE,
                    retired_at: Moment::NONE,
                    task: task.as_deref().map(Box::from),
                    last_used: Moment::NONE,
                };
                self.insert_credential(state);
            }
            Body::CredentialRotated {
                credential,
                new_credential,
                expires,
            } => {
                self.ensure_credential(credential, name, t);
                match new_credential {
                    Some(new_id) => {
                        // The credential it created already exists: a redelivery.
                        if self.credentials.contains(new_id) {
                            return;
                        }
                        let Some(old) = self.credentials.get_mut(credential) else {
                            return;
                        };
                        old.retired_at.or_set(t);
                        let retired = old.end().unwrap_or(t);
                        let state = CredentialState {
                            id: new_id.as_str().into(),
                            identity: old.identity.clone(),
                            kind: old.kind,
                            issued_at: t,
                            rotated_at: Moment::NONE,
                            expires: (*expires).into(),
                            revoked_at: Moment::NONE,
                            retired_at: Moment::NONE,
                            task: old.task.clone(),
                            last_used: Moment::NONE,
                        };
                        let owner = state.identity.clone();
                        self.mark(&owner);
                        self.schedule_forget(retired, Forget::Credential(credential.clone()));
                        self.insert_credential(state);
                    }
                    None => {
                        let Some(cred) = self.credentials.get_mut(credential) else {
                            return;
                        };
                        // An older rotation than the newest changes nothing.
                        if cred.rotated_at.is_some_and(|r| t < r) || t < cred.issued_at {
                            return;
                        }
                        cred.rotated_at = Moment::at(t);
                        if expires.is_some() {
                            cred.expires = (*expires).into();
                        }
                        let (owner, expiry) = (cred.identity.clone(), cred.expires);
                        self.mark(&owner);
                        if let Some(at) = expiry.get() {
                            self.schedule_expiry(at, &owner);
                            self.schedule_forget(at, Forget::Credential(credential.clone()));
                        }
                        // A rotation may revive a credential pruned from the list as expired.
                        if let Some(slot) = self.credentials.slot_of(credential) {
                            self.list_credential(&owner, slot, t);
                        }
                    }
                }
            }
            Body::CredentialRevoked { credential } => {
                self.ensure_credential(credential, name, t);
                if let Some(cred) = self.credentials.get_mut(credential) {
                    cred.revoked_at.or_set(t);
                    let (owner, ended) = (cred.identity.clone(), cred.end().unwrap_or(t));
                    self.mark(&owner);
                    self.schedule_forget(ended, Forget::Credential(credential.clone()));
                }
            }
            Body::CredentialUsed(used) => {
                self.record_use(name, &used.credential, t, judging);
            }
            Body::ToolCalled(call) => {
                if let Some(credential) = &call.credential {
                    self.record_use(name, credential, t, judging);
                } else {
                    let identity = self.identity_mut(name, t);
                    let (old, floor) = (identity.last_activity, identity.registered_at);
                    identity.last_activity = old.max_with(t);
                    self.grown(name, Fact::LastActivity, None, (old, floor), t, judging);
                }
                for scope in &call.scopes {
                    let identity = self.identity_mut(name, t);
                    let old = identity.last_exercised.get(scope).copied();
                    if old.is_none_or(|old| old < t) {
                        identity.last_exercised.insert(scope.clone(), t);
                    }
                    // Rules see the last exercise of granted scopes only.
                    let Some(granted) = identity.grants.get(scope).map(|g| g.granted_at) else {
                        continue;
                    };
                    self.grown(
                        name,
                        Fact::LastExercised,
                        Some(scope),
                        (old.into(), granted),
                        t,
                        judging,
                    );
                }
            }
            Body::TaskCompleted { task } => {
                self.tasks_completed
                    .entry(name.to_owned())
                    .or_default()
                    .entry(task.clone())
                    .or_insert(t);
                self.schedule_forget(t, Forget::Task(name.to_owned(), task.clone()));
            }
            Body::PrincipalDeparted { .. } | Body::VendorOffboarded { .. } => {}
        }
    }

    /// Whether a late event names only a known identity and credential (or creates them
    /// explicitly).
    fn knows(&self, event: &Event) -> bool {
        let Some(name) = event.identity.as_deref() else {
            return true;
        };
        let registers = matches!(event.body, Body::Registered { .. });
        if !registers && !self.identities.contains_key(name) {
            return false;
        }
        let credential = match &event.body {
            Body::CredentialUsed(used) => Some(&used.credential),
            Body::ToolCalled(call) => call.credential.as_ref(),
            Body::CredentialRotated { credential, .. } | Body::CredentialRevoked { credential } => {
                Some(credential)
            }
            _ => None,
        };
        credential.is_none_or(|c| self.credentials.contains(c))
    }

    fn ensure_identity(&mut self, name: &str, t: Micros) {
        if !self.identities.contains_key(name) {
            self.identities
                .insert(name.into(), Box::new(IdentityState::new(t)));
        }
    }

    /// Identity `name`, created at `t` when unknown.
    fn identity_mut(&mut self, name: &str, t: Micros) -> &mut IdentityState {
        self.ensure_identity(name, t);
        self.identities
            .get_mut(name)
            .expect("the identity was just ensured")
    }

    /// The shared name of identity `name`, created at `t` when unknown.
    fn name_of(&mut self, name: &str, t: Micros) -> Arc<str> {
        self.ensure_identity(name, t);
        self.identities
            .get_key_value(name)
            .map(|(name, _)| Arc::clone(name))
            .expect("the identity was just ensured")
    }

    fn link_vendor(&mut self, identity: &str, vendor: &str, t: Micros) {
        self.by_vendor
            .entry(vendor.to_owned())
            .or_default()
            .insert(identity.to_owned());
        self.identity_mut(identity, t)
            .vendors
            .entry(vendor.to_owned())
            .or_insert(t);
    }

    fn insert_credential(&mut self, state: CredentialState) {
        let owner = state.identity.clone();
        if let Some(at) = state.expires.get() {
            self.schedule_expiry(at, &owner);
            self.schedule_forget(at, Forget::Credential(state.id.to_string()));
        }
        let t = state.issued_at;
        let slot = self.credentials.insert(state);
        self.list_credential(&owner, slot, t);
    }

    fn list_credential(&mut self, owner: &str, slot: super::Slot, t: Micros) {
        let identity = self.identity_mut(owner, t);
        if !identity.credentials.contains(&slot) {
            identity.credentials.push(slot);
        }
    }

    /// A credential first seen in a use, rotation, revocation or tool call exists
    /// implicitly from then, kind `unknown`, owned by the identity that named it.
    fn ensure_credential(&mut self, id: &str, identity: &str, t: Micros) {
        if self.credentials.contains(id) {
            return;
        }
        let state = CredentialState {
            id: id.into(),
            identity: self.name_of(identity, t),
            kind: CredentialKind::Unknown,
            issued_at: t,
            rotated_at: Moment::NONE,
            expires: Moment::NONE,
            revoked_at: Moment::NONE,
            retired_at: Moment::NONE,
            task: None,
            last_used: Moment::NONE,
        };
        self.insert_credential(state);
    }

    fn record_use(
        &mut self,
        identity: &str,
        credential: &str,
        t: Micros,
        judging: &mut dyn Judging,
    ) {
        if !self.credentials.contains(credential) {
            self.ensure_credential(credential, identity, t);
            self.mark(identity);
        }
        if let Some(cred) = self.credentials.get_mut(credential) {
            let (old, floor) = (cred.last_used, cred.issued_at);
            cred.last_used = old.max_with(t);
            let owner = cred.identity.clone();
            if judging.eager() {
                if &*owner != identity {
                    self.mark(&owner);
                }
            } else {
                self.grown(
                    &owner,
                    Fact::LastUsed,
                    Some(credential),
                    (old, floor),
                    t,
                    judging,
                );
            }
        }
        let state = self.identity_mut(identity, t);
        let (old, floor) = (state.last_activity, state.registered_at);
        state.last_activity = old.max_with(t);
        self.grown(identity, Fact::LastActivity, None, (old, floor), t, judging);
    }

    /// After an activity fact of `identity` went from `old` (with its floor, the value
    /// rules count from while it is unknown) to at least `t`: marks the identity unless
    /// the value did not grow or `judging` lets the change wait. Eager judging has marked
    /// it already.
    fn grown(
        &mut self,
        identity: &str,
        fact: Fact,
        key: Option<&str>,
        (old, floor): (Moment, Micros),
        t: Micros,
        judging: &mut dyn Judging,
    ) {
        if judging.eager() {
            return;
        }
        let deferred = match old.get() {
            Some(old) => t <= old || judging.defer(identity, fact, key, t, false),
            None => t >= floor && judging.defer(identity, fact, key, t, true),
        };
        if !deferred {
            self.mark(identity);
        }
    }
}

/// Assigns a role from an event at `t`, unless a newer assignment of it was applied.
fn assign(slot: &mut Option<Assignment>, principal: Option<Name>, t: Micros) {
    let Some(principal) = principal else { return };
    match slot {
        Some(a) if t < a.stamp => {}
        Some(a) if a.principal == principal => a.stamp = t,
        _ => {
            *slot = Some(Assignment {
                principal,
                since: t,
                stamp: t,
            })
        }
    }
}

/// Replaces the approved scopes and records when each grant left or re-entered them,
/// unless a newer event set the baseline.
fn set_baseline(identity: &mut IdentityState, scopes: &[String], t: Micros) {
    if identity.baseline_at.is_some_and(|b| t < b) {
        return;
    }
    identity.baseline_at = Moment::at(t);
    let baseline: Names = scopes.iter().collect();
    for (scope, grant) in identity.grants.iter_mut() {
        if baseline.contains(scope) {
            grant.outside_since = Moment::NONE;
        } else if grant.outside_since.is_none() {
            grant.outside_since = Moment::at(t);
        }
    }
    identity.baseline_scopes = Some(baseline);
}
