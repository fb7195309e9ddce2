//! The seeded violations' own events, timed so each trips its rule and, where possible,
//! no other.

use super::catalog::{DAY, MINUTE, NOBODY, UNAPPROVED};
use super::nhi::{Nhi, Task};
use super::output::Stream;
use super::rng::Rng;
use super::rule::Rule;

impl Nhi {
    /// The seeded violation's own events, when its cause falls on this day.
    pub(super) fn seeded_events(&mut self, ds: i64, de: i64, s: &mut Stream, rng: &mut Rng) {
        let Some((rule, at)) = self
            .seeded
            .filter(|(r, at)| !r.anchored() && (ds..de).contains(at))
        else {
            return;
        };
        let (who, platform, w0) = (self.num, self.kind.platform(), self.workloads[0].clone());
        // Window rules count per aligned minute: the next one starts inside the day.
        let minute = at - at.rem_euclid(MINUTE) + MINUTE;
        match rule {
            Rule::Rot002 => {
                if let Some(secret) = self.key_id(at) {
                    self.use_cred(s, at, &secret, 0, "okta");
                }
                ev!(s, at + 1, "credential.issued", "okta", who,
                    "credential" => &self.legacy_token(), "kind" => "oauth_token",
                    "scopes" => &self.scopes);
            }
            Rule::Jit001 => {
                let done = self.task(at, s, rng, Task::NotRevoked);
                // The agent's next task keeps the detector evaluating while the token lingers.
                let next = done + rng.range(15 * MINUTE, 25 * MINUTE);
                self.task(next, s, rng, Task::Normal);
            }
            Rule::Scope001 => _ = self.task(at, s, rng, Task::UnapprovedScope),
            Rule::Priv001 => {
                if let Some(&(tool, scope, sensitivity, vendor, _)) =
                    self.ops.iter().find(|o| o.2 == "restricted")
                {
                    ev!(s, at, "tool.called", "agent-gateway", who,
                        "tool" => tool, "scopes" => &[scope][..], "sensitivity" => sensitivity,
                        "environment" => self.env, "workload" => &w0, "vendor" => vendor,
                        "outcome" => "success");
                }
            }
            Rule::Scope002 => {
                let scope = UNAPPROVED[who as usize % UNAPPROVED.len()];
                ev!(s, at, "identity.scope_granted", platform, who, "scope" => scope);
                self.grants.push(scope);
                self.revokes
                    .push((at + rng.range(60 * DAY, 85 * DAY), scope));
            }
            Rule::Stale002 => {
                // The job stopped; days later someone trims its grants but leaves the key.
                let cleanup = at + rng.range(DAY, 3 * DAY);
                self.revokes.extend(
                    self.grants
                        .iter()
                        .enumerate()
                        .map(|(i, g)| (cleanup + i as i64, *g)),
                );
            }
            Rule::Orph001 => {
                ev!(s, at, "principal.departed", "workday", NOBODY,
                    "principal" => self.custodian.as_ref())
            }
            Rule::Orph002 => {
                ev!(s, at, "vendor.offboarded", "servicenow", NOBODY,
                    "vendor" => self.vendors.last())
            }
            Rule::Off001 => {
                let Some(k) = self.key.as_mut() else { return };
                let (old, new) = (k.id(k.generation), k.id(k.generation + 1));
                let reissued = at + rng.range(2 * MINUTE, 8 * MINUTE);
                ev!(s, at, "credential.revoked", "vault", who, "credential" => &old);
                ev!(s, reissued, "credential.issued", "vault", who,
                    "credential" => &new, "kind" => k.kind, "scopes" => &self.scopes);
                k.generation += 1;
                k.next_rotation = reissued + k.period;
                self.key_today
                    .extend([(at, None), (reissued, Some(k.generation))]);
                // A straggler job still holds the revoked key.
                for i in 0..2 {
                    let t = at + 15 * MINUTE + i * rng.range(MINUTE, 30 * MINUTE);
                    self.use_cred(s, t, &old, 0, platform);
                }
            }
            Rule::Share001 => {
                let Some(cred) = self.key_id(minute) else {
                    return;
                };
                // The key was copied to an owner's laptop and a shared CI runner.
                let owner = self.owner.as_deref().unwrap_or("dev");
                let laptop = format!("laptop/{}", owner.split_once('@').map_or(owner, |o| o.0));
                let workloads = [w0.as_str(), laptop.as_str(), "ci-runner/shared-07"];
                for (dt, w) in [5, 20, 40].into_iter().zip(workloads) {
                    ev!(s, minute + dt, "credential.used", platform, who,
                        "credential" => &cred, "workload" => w, "environment" => self.env);
                }
            }
            Rule::Env001 => {
                let Some(cred) = self.key_id(minute) else {
                    return;
                };
                let other = if self.env == "prod" {
                    "staging"
                } else {
                    "prod"
                };
                for (dt, env) in [(10, self.env), (35, other)] {
                    ev!(s, minute + dt, "credential.used", platform, who,
                        "credential" => &cred, "workload" => &w0, "environment" => env);
                }
            }
            _ => {}
        }
    }
}
