//! Ordinary traffic: batch jobs, token exchanges, agent tasks and workload runs.

use super::catalog::{DAY, HOUR, Kind, MINUTE, UNAPPROVED};
use super::nhi::{Nhi, Task};
use super::output::{At, Stream};
use super::rng::Rng;
use super::rule::Rule;

impl Nhi {
    /// Ordinary traffic of the day: batch jobs, token exchanges, agent tasks or a workload run.
    pub(super) fn activity(
        &mut self,
        ds: i64,
        de: i64,
        sparse: bool,
        s: &mut Stream,
        rng: &mut Rng,
    ) {
        let lo = ds.max(self.ready);
        let hi = match self.seeded {
            Some((Rule::Stale002, at)) => de.min(at),
            _ => de,
        };
        let slots = if sparse { 1 } else { self.slots.len() };
        let platform = self.kind.platform();
        match self.kind {
            Kind::ServiceAccount => {
                for j in 0..slots {
                    let (t0, len) = (
                        ds + self.slots[j] + rng.range(0, 10 * MINUTE),
                        rng.range(MINUTE, 15 * MINUTE),
                    );
                    if t0 < lo || t0 + len >= hi {
                        continue;
                    }
                    let w = rng.below(self.workloads.len() as u64) as usize;
                    let n = if sparse { 2 } else { 3 + rng.below(9) };
                    let mut times: Vec<i64> = (0..n).map(|_| t0 + rng.range(0, len)).collect();
                    times.sort_unstable();
                    for t in times {
                        if let Some(cred) = self.key_id(t) {
                            self.use_cred(s, t, &cred, w, platform);
                        }
                    }
                    let t = t0 + rng.range(0, len);
                    if let Some(cred) = self.key_id(t) {
                        self.api_call(s, t, &cred, w, rng);
                    }
                }
            }
            Kind::ApiClient => {
                for j in 0..slots {
                    let t0 = ds + self.slots[j] + rng.range(0, 30 * MINUTE);
                    if t0 < lo || t0 + 15 * MINUTE >= hi {
                        continue;
                    }
                    let token = match self.seeded {
                        Some((Rule::Rot002, at)) if t0 > at => self.legacy_token(),
                        _ => {
                            let Some(secret) = self.key_id(t0) else {
                                continue;
                            };
                            self.use_cred(s, t0, &secret, 0, "okta");
                            self.serial += 1;
                            let token = format!("oat-{:05}-{}", self.num, self.serial);
                            ev!(s, t0 + 1, "credential.issued", "okta", self.num,
                                "credential" => &token, "kind" => "oauth_token",
                                "expires" => At(t0 + 1 + HOUR), "scopes" => &self.scopes);
                            token
                        }
                    };
                    for _ in 0..if sparse { 1 } else { 2 + rng.below(5) } {
                        self.use_cred(s, t0 + rng.range(2, 10 * MINUTE), &token, 0, "api-gateway");
                    }
                    self.api_call(s, t0 + rng.range(2, 10 * MINUTE), &token, 0, rng);
                }
            }
            Kind::Agent => {
                // Agents keep office hours: a weekend day sees at most one task.
                let weekend = matches!((ds.div_euclid(DAY) + 4).rem_euclid(7), 0 | 6);
                let tasks = if weekend && !sparse {
                    usize::from(rng.chance(50))
                } else {
                    slots
                };
                for j in 0..tasks {
                    let t0 = ds + self.slots[j] + rng.range(0, 40 * MINUTE);
                    if t0 >= lo && t0 + 10 * MINUTE < hi {
                        self.task(t0, s, rng, Task::Normal);
                    }
                }
            }
            Kind::Workload => {
                let start = ds + self.slots[0] + rng.range(0, 20 * MINUTE);
                let len = if sparse {
                    20 * MINUTE
                } else {
                    self.run_len + rng.range(-30 * MINUTE, 30 * MINUTE)
                };
                let end = (start + len).min(hi - 10 * MINUTE);
                if start >= lo && end > start + MINUTE {
                    self.run(start, end, s, rng);
                }
            }
        }
    }

    /// A workload run: an SVID at start, renewed every 45 minutes, used in between.
    fn run(&mut self, start: i64, end: i64, s: &mut Stream, rng: &mut Rng) {
        self.serial += 1;
        let (who, run) = (self.num, self.serial);
        let svid = |k: u32| format!("svid-{who:05}-{run}-{k}");
        ev!(s, start, "credential.issued", "spire", who,
            "credential" => &svid(0), "kind" => "workload_svid", "expires" => At(start + HOUR),
            "scopes" => &self.scopes);
        let (mut k, mut seg) = (0, start);
        loop {
            let seg_end = (seg + 45 * MINUTE).min(end);
            for _ in 0..if rng.chance(70) { 1 + rng.below(2) } else { 0 } {
                let t = seg + rng.range(1, seg_end - seg);
                self.use_cred(s, t, &svid(k), 0, "kubernetes");
            }
            if k == 0 {
                self.api_call(s, seg + rng.range(1, seg_end - seg), &svid(0), 0, rng);
            }
            if seg_end >= end {
                break;
            }
            ev!(s, seg_end, "credential.rotated", "spire", who,
                "credential" => &svid(k), "new_credential" => &svid(k + 1),
                "expires" => At(seg_end + HOUR));
            (k, seg) = (k + 1, seg_end);
        }
    }

    /// An agent task: JIT token, a session of tool calls, completion, revocation.
    /// Returns the completion time.
    pub(super) fn task(&mut self, t0: i64, s: &mut Stream, rng: &mut Rng, flavor: Task) -> i64 {
        self.serial += 1;
        let (who, n) = (self.num, self.serial);
        let (jit, task, session) = (
            format!("jit-{who:05}-{n}"),
            format!("task-{who:05}-{n}"),
            format!("sess-{who:05}-{n}"),
        );
        let calls = 3 + rng.below(6) as usize;
        let mut tools = vec![self.next_op()];
        while tools.len() < calls {
            // Mostly internal: a more sensitive pick is drawn again half of the time.
            let o = rng.pick(&self.ops);
            tools.push(if o.2 != "internal" && rng.chance(50) {
                rng.pick(&self.ops)
            } else {
                o
            });
        }
        let mut scopes: Vec<&str> = Vec::new();
        for o in &tools {
            if !scopes.contains(&o.1) {
                scopes.push(o.1);
            }
        }
        let ttl = if flavor == Task::NotRevoked {
            HOUR
        } else {
            30 * MINUTE
        };
        ev!(s, t0, "credential.issued", "agent-gateway", who,
            "credential" => &jit, "kind" => "jit_token", "expires" => At(t0 + ttl),
            "scopes" => &scopes, "task" => &task);
        let mut t = t0 + rng.range(2, 10);
        for (i, &(tool, scope, sensitivity, vendor, _)) in tools.iter().enumerate() {
            let odd = UNAPPROVED[n as usize % UNAPPROVED.len()];
            let exercised = if flavor == Task::UnapprovedScope && i == calls / 2 {
                vec![scope, odd]
            } else {
                vec![scope]
            };
            let approval = (sensitivity == "restricted" && rng.chance(50))
                .then(|| format!("apr-{who:05}-{n}"));
            ev!(s, t, "tool.called", "agent-gateway", who,
                "tool" => tool, "credential" => &jit, "scopes" => &exercised,
                "sensitivity" => sensitivity, "environment" => self.env,
                "workload" => &self.workloads[0], "task" => &task, "session" => &session,
                "vendor" => vendor, "approval" => approval.as_ref(), "outcome" => outcome(rng));
            t += rng.range(3, 25);
        }
        let done = t + rng.range(5, 30);
        ev!(s, done, "task.completed", "agent-gateway", who, "task" => &task);
        if flavor != Task::NotRevoked {
            ev!(s, done + rng.range(5, 90), "credential.revoked", "agent-gateway", who,
                "credential" => &jit);
        }
        done
    }

    /// A gateway call of a service account, API client or workload, exercising its next scope.
    fn api_call(&mut self, s: &mut Stream, t: i64, cred: &str, w: usize, rng: &mut Rng) {
        let (tool, scope, sensitivity, _, _) = self.next_op();
        ev!(s, t, "tool.called", "api-gateway", self.num,
            "tool" => tool, "credential" => cred, "scopes" => &[scope][..],
            "sensitivity" => sensitivity, "environment" => self.env,
            "workload" => &self.workloads[w], "outcome" => outcome(rng));
    }
}

fn outcome(rng: &mut Rng) -> &'static str {
    match rng.below(100) {
        0..95 => "success",
        95..98 => "error",
        _ => "denied",
    }
}
