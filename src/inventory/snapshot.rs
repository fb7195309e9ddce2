//! Writing one identity's state at an evaluation's *now* into the state tables.

use super::{CredentialStatus, Inventory};
use crate::engine::tables::StateBuilders;
use crate::event::Micros;

impl Inventory {
    /// Appends the snapshot of `name` at `now` under snapshot id `sid`; returns false when
    /// the identity is unknown. Also prunes history that can no longer matter.
    pub fn snapshot(&mut self, name: &str, now: Micros, sid: u64, out: &mut StateBuilders) -> bool {
        let holding_since = self.holding_since(name, now);
        let Some(identity) = self.identities.get(name) else {
            return false;
        };

        let t = &mut out.identities;
        t.sid.append_value(sid);
        t.identity.append_value(name);
        t.kind.append_option(identity.kind.map(|k| k.as_str()));
        t.tier.append_value(identity.tier.as_str());
        t.registered_at.append_value(identity.registered_at);
        t.business_owner.append_option(
            identity
                .business_owner
                .as_ref()
                .map(|a| a.principal.as_str()),
        );
        t.technical_custodian.append_option(
            identity
                .technical_custodian
                .as_ref()
                .map(|a| a.principal.as_str()),
        );
        t.approved_at.append_option(identity.approved_at.get());
        t.certified_at.append_option(identity.certified_at.get());
        t.has_baseline
            .append_value(identity.baseline_scopes.is_some());
        t.offboarded_at.append_option(identity.offboarded_at.get());
        t.last_activity_at
            .append_option(identity.last_activity.get());
        t.holding_since.append_option(holding_since);

        for (role, assignment) in [
            ("business_owner", &identity.business_owner),
            ("technical_custodian", &identity.technical_custodian),
        ] {
            let Some(assignment) = assignment else {
                continue;
            };
            let o = &mut out.owners;
            o.sid.append_value(sid);
            o.identity.append_value(name);
            o.role.append_value(role);
            o.principal.append_value(&assignment.principal);
            o.assigned_at.append_value(assignment.since);
            o.departed_at
                .append_option(self.departed.get(assignment.principal.as_str()).copied());
        }

        for &slot in &identity.credentials {
            let Some(cred) = self.credentials.at(slot) else {
                continue;
            };
            if cred.status_at(now) != CredentialStatus::Active {
                continue;
            }
            let c = &mut out.credentials;
            c.sid.append_value(sid);
            c.identity.append_value(name);
            c.credential.append_value(&cred.id);
            c.kind.append_value(cred.kind.as_str());
            c.issued_at.append_value(cred.issued_at);
            c.rotated_at.append_option(cred.rotated_at.get());
            c.expires.append_option(cred.expires.get());
            c.task.append_option(cred.task.as_deref());
            let completed = cred
                .task
                .as_deref()
                .and_then(|task| self.task_completed(name, task));
            c.task_completed_at.append_option(completed);
            c.last_used_at.append_option(cred.last_used.get());
        }

        for (scope, grant) in &identity.grants {
            let g = &mut out.grants;
            g.sid.append_value(sid);
            g.identity.append_value(name);
            g.scope.append_value(scope);
            g.granted_at.append_value(grant.granted_at);
            g.in_baseline.append_value(grant.outside_since.is_none());
            g.outside_baseline_since
                .append_option(grant.outside_since.get());
            g.last_exercised_at
                .append_option(identity.last_exercised.get(scope).copied());
        }

        for (vendor, linked_at) in &identity.vendors {
            let v = &mut out.vendors;
            v.sid.append_value(sid);
            v.identity.append_value(name);
            v.vendor.append_value(vendor);
            v.linked_at.append_value(*linked_at);
            v.offboarded_at
                .append_option(self.vendors_offboarded.get(vendor).copied());
        }
        true
    }

    /// Start of the unbroken period, containing `now`, in which the identity held at least
    /// one active credential or grant; `None` when it holds none at `now`.
    ///
    /// Credentials that ended by `now` move from the identity's list into its merged
    /// `ended_spans`, so the work per snapshot stays proportional to what is active plus
    /// the gaps, not to the identity's whole credential history. Spans that ended before
    /// the current period can never join a later one (events arrive in time order) and
    /// are dropped.
    pub(crate) fn holding_since(&mut self, name: &str, now: Micros) -> Option<Micros> {
        let credentials = &self.credentials;
        let spans = &mut self.spans;
        let identity = self.identities.get_mut(name)?;
        let ended = &mut identity.ended_spans;
        spans.clear();
        spans.extend(ended.iter().copied());
        identity.credentials.retain(|&slot| {
            let Some(cred) = credentials.at(slot) else {
                return false;
            };
            let end = cred.end().unwrap_or(Micros::MAX);
            if end > cred.issued_at {
                spans.push((cred.issued_at, end));
                if end <= now {
                    ended.push((cred.issued_at, end));
                }
            }
            // Keep credentials that may still be active (or revived by a rotation).
            end > now
        });
        spans.extend(
            identity
                .grants
                .values()
                .map(|g| (g.granted_at, Micros::MAX)),
        );
        spans.retain(|(start, _)| *start <= now);
        spans.sort_unstable();

        // Merge touching spans; keep the start of the merged span that contains `now`.
        let mut current: Option<(Micros, Micros)> = None;
        let mut holding = None;
        for &(start, end) in spans.iter() {
            current = match current {
                Some((s, e)) if start <= e => Some((s, e.max(end))),
                _ => Some((start, end)),
            };
            if let Some((s, e)) = current
                && s <= now
                && now < e
            {
                holding = Some(s);
            }
        }

        let horizon = holding.unwrap_or(now);
        ended.retain(|(_, end)| *end >= horizon);
        ended.sort_unstable();
        let mut merged: usize = 0;
        for i in 0..ended.len() {
            let (start, end) = ended[i];
            match merged.checked_sub(1).map(|last| &mut ended[last]) {
                Some((_, e)) if start <= *e => *e = (*e).max(end),
                _ => {
                    ended[merged] = (start, end);
                    merged += 1;
                }
            }
        }
        ended.truncate(merged);
        holding
    }
}
