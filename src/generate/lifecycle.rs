//! An identity's day: setup, handovers, rotations, recertifications and offboarding around
//! its seeded violation and ordinary activity.

use super::catalog::{APPROVERS, DAY, HOUR, Kind, MINUTE, PRINCIPALS};
use super::nhi::Nhi;
use super::output::Stream;
use super::rng::Rng;
use super::rule::Rule;

impl Nhi {
    /// Generates this identity's events of day `d`, which starts at `ds`.
    pub(super) fn day(&mut self, d: i64, ds: i64, s: &mut Stream) {
        let de = ds + DAY;
        if self.done || self.born >= de {
            return;
        }
        let mut rng = Rng::new(&[s.seed, 0xDA7, u64::from(self.num), d as u64]);
        if self.born >= ds {
            self.setup(s, &mut rng);
        }
        let offboard = self.offboard_at.filter(|t| (ds..de).contains(t));
        // Nothing scheduled may land after offboarding (a rotation would revive the key).
        let until = offboard.map_or(de, |t| (t - HOUR).max(ds));
        for i in 0..self.handovers.len() {
            let (at, is_custodian, to) = self.handovers[i];
            if (ds..until).contains(&at) {
                let (role, slot) = match is_custodian {
                    true => ("technical_custodian", &mut self.custodian),
                    false => ("business_owner", &mut self.owner),
                };
                *slot = Some(to.to_string());
                ev!(s, at, "identity.owner_assigned", "servicenow", self.num, role => to);
            }
        }
        self.maintain(ds, until, s, &mut rng);
        self.seeded_events(ds, de, s, &mut rng);
        self.key_today.sort_by_key(|c| c.0);
        // Before `start` only a weekly heartbeat keeps a legacy identity's clocks realistic.
        let sparse = ds < s.start;
        if offboard.is_none() && (!sparse || (d - (self.born - s.start).div_euclid(DAY)) % 7 == 0) {
            self.activity(ds, de, sparse, s, &mut rng);
        }
        if let Some(at) = offboard {
            self.offboard(at, ds, s);
        }
    }

    /// Registration, owners, approval, grants and the first static secret.
    fn setup(&mut self, s: &mut Stream, rng: &mut Rng) {
        let (b, who, rule) = (self.born, self.num, self.seeded.map(|r| r.0));
        let name = format!("{} ({})", self.workflow, self.kind.name().replace('_', " "));
        let vendors = Some(&self.vendors).filter(|v| !v.is_empty());
        ev!(s, b, "identity.registered", self.kind.platform(), who,
            "kind" => self.kind.name(), "tier" => self.tier, "name" => &name,
            "workflow" => self.workflow, "vendors" => vendors);
        if self.owner.is_some() || self.custodian.is_some() {
            ev!(s, b + rng.range(MINUTE, 10 * MINUTE), "identity.owner_assigned", "servicenow", who,
                "business_owner" => self.owner.as_ref(),
                "technical_custodian" => self.custodian.as_ref());
        }
        // NHI-GOV-001: the job goes live hours before its approval lands.
        let early = rule == Some(Rule::Gov001);
        let approved = b + if early {
            rng.range(4 * HOUR, 5 * HOUR)
        } else {
            rng.range(HOUR, 3 * HOUR)
        };
        let tools: Option<Vec<&str>> =
            (self.kind == Kind::Agent).then(|| self.ops.iter().map(|o| o.0).collect());
        ev!(s, approved, "identity.approved", "servicenow", who,
            "approver" => rng.pick(&PRINCIPALS[..APPROVERS]), "scopes" => &self.scopes,
            "tools" => tools.as_ref());
        for (i, scope) in self.scopes.iter().enumerate() {
            let t = approved + 5 * MINUTE + 7 * i as i64;
            ev!(s, t, "identity.scope_granted", self.kind.platform(), who, "scope" => *scope);
        }
        self.grants = self.scopes.clone();
        let issue = if early {
            b + 15 * MINUTE
        } else {
            approved + 20 * MINUTE
        };
        for (k, t) in [(&mut self.key, issue), (&mut self.backup, issue + MINUTE)] {
            if let Some(k) = k {
                ev!(s, t, "credential.issued", "vault", who,
                    "credential" => &k.id(0), "kind" => k.kind, "scopes" => &self.scopes);
                k.issued = t;
                k.next_rotation = if rule == Some(Rule::Rot001) && !k.base.ends_with("backup") {
                    i64::MAX
                } else {
                    t + k.period + rng.range(0, DAY)
                };
            }
        }
        self.ready = approved + 30 * MINUTE;
        self.next_recert = if rule == Some(Rule::Gov002) {
            i64::MAX
        } else {
            approved + rng.range(55 * DAY, 65 * DAY)
        };
        if let (true, Some(k)) = (early, &self.key) {
            for i in 0..3 {
                let t = b + 40 * MINUTE + i * rng.range(MINUTE, 20 * MINUTE);
                self.use_cred(s, t, &k.id(0), 0, self.kind.platform());
            }
        }
    }

    /// Rotations, recertifications and grant revocations due before `until`; resets `key_today`.
    fn maintain(&mut self, ds: i64, until: i64, s: &mut Stream, rng: &mut Rng) {
        let who = self.num;
        self.key_today.clear();
        if let Some(k) = self.key.as_mut() {
            if matches!(self.seeded, Some((Rule::Off001, at)) if (ds..ds + DAY).contains(&at)) {
                // NHI-OFF-001 replaces the key by hand today; the scheduled rotation waits.
                k.next_rotation = k.next_rotation.max(ds + 2 * DAY);
            }
            if k.issued < ds + DAY {
                self.key_today.push((k.issued, Some(k.generation)));
            }
        }
        for (primary, k) in [(true, self.key.as_mut()), (false, self.backup.as_mut())] {
            let Some(k) = k else { continue };
            while k.next_rotation < until {
                let r = k.next_rotation.max(ds);
                ev!(s, r, "credential.rotated", "vault", who,
                    "credential" => &k.id(k.generation),
                    "new_credential" => &k.id(k.generation + 1));
                k.generation += 1;
                k.next_rotation = r + k.period + rng.range(0, DAY);
                if primary {
                    self.key_today.push((r, Some(k.generation)));
                }
            }
        }
        while self.next_recert < until {
            let t = self.next_recert.max(ds);
            let reviewer = self
                .owner
                .clone()
                .unwrap_or_else(|| PRINCIPALS[0].to_string());
            ev!(s, t, "identity.recertified", "servicenow", who,
                "reviewer" => &reviewer, "scopes" => &self.scopes);
            self.next_recert = t + rng.range(55 * DAY, 65 * DAY);
        }
        let (due, later) = self.revokes.drain(..).partition(|(t, _)| *t < until);
        self.revokes = later;
        for (t, scope) in due {
            ev!(s, t.max(ds), "identity.scope_revoked", self.kind.platform(), who,
                "scope" => scope);
            self.grants.retain(|g| *g != scope);
        }
    }

    /// Retires the identity: secrets and grants revoked first (NHI-OFF-002 forgets the key).
    fn offboard(&mut self, at: i64, ds: i64, s: &mut Stream) {
        let (who, mut t) = (self.num, (at - 30 * MINUTE).max(ds));
        let keep_key = matches!(self.seeded, Some((Rule::Off002, _)));
        let keys = [
            self.key.as_ref().filter(|_| !keep_key),
            self.backup.as_ref(),
        ];
        for k in keys.into_iter().flatten() {
            ev!(s, t, "credential.revoked", "vault", who, "credential" => &k.id(k.generation));
            t += 1;
        }
        for scope in self.grants.drain(..) {
            ev!(s, t, "identity.scope_revoked", self.kind.platform(), who, "scope" => scope);
            t += 7;
        }
        ev!(s, at.max(t), "identity.offboarded", "servicenow", who, "reason" => "workflow retired");
        self.done = true;
    }
}
