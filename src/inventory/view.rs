//! One identity's inventory as the API and `nhi-drift inspect` show it (contract §9):
//! owners, approval and baseline, grants, credentials with their age and status, vendors,
//! all as of the state's event time. Built on demand from the live state; nothing here is
//! kept.

use serde::{Deserialize, Serialize};

use super::{Assignment, IdentityState, Inventory};
use crate::event::Micros;
use crate::event::time::format_rfc3339;

/// An identity's inventory at `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityInventory {
    pub identity: String,
    /// `service_account`, `api_client`, `ai_agent`, `workload`, or null when unknown.
    pub kind: Option<String>,
    pub tier: String,
    pub registered_at: String,
    pub business_owner: Option<OwnerView>,
    pub technical_custodian: Option<OwnerView>,
    /// Latest `identity.approved`.
    pub approved_at: Option<String>,
    /// Latest approval or recertification.
    pub certified_at: Option<String>,
    /// The approved baseline; null when the identity has none.
    pub baseline: Option<BaselineView>,
    pub offboarded_at: Option<String>,
    pub last_activity_at: Option<String>,
    pub grants: Vec<GrantView>,
    /// Approved scopes that are not granted (the baseline allows more than is held).
    pub approved_not_granted: Vec<String>,
    pub credentials: Vec<CredentialView>,
    pub vendors: Vec<VendorView>,
}

/// An owner role and who holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerView {
    pub principal: String,
    pub since: String,
    /// When the principal departed (not replaced since), or null.
    pub departed_at: Option<String>,
}

/// The approved baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineView {
    pub scopes: Vec<String>,
    /// Approved tools; null when tools are unchecked.
    pub tools: Option<Vec<String>>,
    /// The approval or recertification that set the scopes.
    pub set_at: Option<String>,
}

/// A granted scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantView {
    pub scope: String,
    pub granted_at: String,
    pub in_baseline: bool,
    /// Latest tool call exercising it, or null.
    pub last_exercised_at: Option<String>,
}

/// A credential of the identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialView {
    pub credential: String,
    pub kind: String,
    /// `active`, `revoked`, `retired` or `expired` at `as_of`.
    pub status: String,
    pub issued_at: String,
    pub rotated_at: Option<String>,
    /// Seconds since issue or the latest in-place rotation, at `as_of`.
    pub age_seconds: i64,
    pub expires: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    /// The JIT task it was issued for, and when that task completed.
    pub task: Option<String>,
    pub task_completed_at: Option<String>,
}

/// A linked vendor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VendorView {
    pub vendor: String,
    pub linked_at: String,
    /// When the vendor relationship ended, or null.
    pub offboarded_at: Option<String>,
}

fn time(t: Option<Micros>) -> Option<String> {
    t.map(format_rfc3339)
}

impl Inventory {
    /// `identity`'s inventory as of `as_of`, or `None` when the identity is not tracked.
    pub fn view(&self, identity: &str, as_of: Micros) -> Option<IdentityInventory> {
        let state = self.identities.get(identity)?;
        let owner = |a: &Option<Assignment>| {
            a.as_ref().map(|a| OwnerView {
                principal: a.principal.to_string(),
                since: format_rfc3339(a.since),
                departed_at: time(
                    self.departed
                        .get(a.principal.as_str())
                        .copied()
                        .filter(|&d| d >= a.since),
                ),
            })
        };
        let names = |n: &super::Names| n.0.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let baseline = state.baseline_scopes.as_ref().map(|scopes| BaselineView {
            scopes: names(scopes),
            tools: state.baseline_tools.as_ref().map(names),
            set_at: time(state.baseline_at.get()),
        });
        let approved_not_granted = state
            .baseline_scopes
            .as_ref()
            .map(|s| {
                names(s)
                    .into_iter()
                    .filter(|scope| !state.grants.contains_key(scope))
                    .collect()
            })
            .unwrap_or_default();
        Some(IdentityInventory {
            identity: identity.to_owned(),
            kind: state.kind.map(|k| k.as_str().to_owned()),
            tier: state.tier.as_str().to_owned(),
            registered_at: format_rfc3339(state.registered_at),
            business_owner: owner(&state.business_owner),
            technical_custodian: owner(&state.technical_custodian),
            approved_at: time(state.approved_at.get()),
            certified_at: time(state.certified_at.get()),
            baseline,
            offboarded_at: time(state.offboarded_at.get()),
            last_activity_at: time(state.last_activity.get()),
            grants: self.grant_views(state),
            approved_not_granted,
            credentials: self.credential_views(identity, state, as_of),
            vendors: state
                .vendors
                .iter()
                .map(|(vendor, &linked)| VendorView {
                    vendor: vendor.clone(),
                    linked_at: format_rfc3339(linked),
                    offboarded_at: time(self.vendors_offboarded.get(vendor).copied()),
                })
                .collect(),
        })
    }

    fn grant_views(&self, state: &IdentityState) -> Vec<GrantView> {
        state
            .grants
            .iter()
            .map(|(scope, grant)| GrantView {
                scope: scope.clone(),
                granted_at: format_rfc3339(grant.granted_at),
                in_baseline: state.in_baseline(scope),
                last_exercised_at: time(state.last_exercised.get(scope).copied()),
            })
            .collect()
    }

    fn credential_views(
        &self,
        identity: &str,
        state: &IdentityState,
        as_of: Micros,
    ) -> Vec<CredentialView> {
        // An identity lists the credentials that may still be active; the ended ones it
        // still remembers (until forgotten) are found by owner.
        let mut slots: Vec<_> = state.credentials.clone();
        slots.extend((0..self.credentials.slot_count()).filter(|&s| {
            self.credentials
                .at(s)
                .is_some_and(|c| &*c.identity == identity)
        }));
        slots.sort_unstable();
        slots.dedup();
        let mut out: Vec<CredentialView> = slots
            .iter()
            .filter_map(|&slot| self.credentials.at(slot))
            .map(|c| {
                let since = c.rotated_at.get().unwrap_or(c.issued_at);
                CredentialView {
                    credential: c.id.to_string(),
                    kind: c.kind.as_str().to_owned(),
                    status: c.status_at(as_of).as_str().to_owned(),
                    issued_at: format_rfc3339(c.issued_at),
                    rotated_at: time(c.rotated_at.get()),
                    age_seconds: as_of.saturating_sub(since).max(0) / 1_000_000,
                    expires: time(c.expires.get()),
                    revoked_at: time(c.revoked_at.get()),
                    last_used_at: time(c.last_used.get()),
                    task: c.task.as_deref().map(str::to_owned),
                    task_completed_at: time(
                        c.task
                            .as_deref()
                            .and_then(|task| self.task_completed(identity, task)),
                    ),
                }
            })
            .collect();
        out.sort_by(|a, b| a.credential.cmp(&b.credential));
        out
    }
}
