//! One identity: its traits, its static secrets and the state carried from day to day.

use super::catalog::{Kind, Op};
use super::output::Stream;
use super::rule::Rule;

/// A static secret (`api_key` / `client_secret`) and its rotation schedule.
pub(super) struct Key {
    pub(super) kind: &'static str,
    /// Credential id without the generation suffix.
    pub(super) base: String,
    pub(super) generation: u32,
    pub(super) issued: i64,
    pub(super) next_rotation: i64,
    pub(super) period: i64,
}

impl Key {
    /// A key not yet issued: `setup` sets the issue time and the first rotation.
    pub(super) fn new(kind: &'static str, base: String, period: i64) -> Key {
        Key {
            kind,
            base,
            generation: 0,
            issued: i64::MAX,
            next_rotation: i64::MAX,
            period,
        }
    }

    /// The credential id of one generation; a rotation moves to the next one.
    pub(super) fn id(&self, generation: u32) -> String {
        format!("{}-{generation}", self.base)
    }
}

/// How an agent task departs from the norm.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Task {
    Normal,
    NotRevoked,
    UnapprovedScope,
}

/// One identity: fixed traits, its schedule and the state carried from day to day.
pub(super) struct Nhi {
    pub(super) num: u32,
    pub(super) kind: Kind,
    pub(super) tier: &'static str,
    pub(super) workflow: &'static str,
    pub(super) env: &'static str,
    pub(super) workloads: Vec<String>,
    pub(super) vendors: Vec<String>,
    pub(super) owner: Option<String>,
    pub(super) custodian: Option<String>,
    /// Operations done in turn (agents: the approved tools).
    pub(super) ops: Vec<Op>,
    /// Approved scopes: the ops' scopes, plus a never-exercised one for NHI-SCOPE-003.
    pub(super) scopes: Vec<&'static str>,
    pub(super) grants: Vec<&'static str>,
    pub(super) key: Option<Key>,
    /// The primary key's generation in force from each time of the current day (`None`: revoked).
    pub(super) key_today: Vec<(i64, Option<u32>)>,
    pub(super) backup: Option<Key>,
    /// Seconds into the day of each batch job, token exchange, task or run.
    pub(super) slots: Vec<i64>,
    pub(super) run_len: i64,
    pub(super) born: i64,
    /// Setup done: ordinary traffic may start.
    pub(super) ready: i64,
    pub(super) next_recert: i64,
    pub(super) offboard_at: Option<i64>,
    /// (time, is custodian, successor) ahead of a principal's departure.
    pub(super) handovers: Vec<(i64, bool, &'static str)>,
    pub(super) revokes: Vec<(i64, &'static str)>,
    pub(super) seeded: Option<(Rule, i64)>,
    /// Round-robin position over `ops`, so every granted scope is exercised every few days.
    pub(super) turn: usize,
    /// Counter behind credential, task and run ids.
    pub(super) serial: u32,
    pub(super) done: bool,
}

impl Nhi {
    /// A `credential.used` event from workload `w`, in the identity's environment.
    pub(super) fn use_cred(
        &self,
        s: &mut Stream,
        t: i64,
        cred: &str,
        w: usize,
        source: &'static str,
    ) {
        ev!(s, t, "credential.used", source, self.num,
            "credential" => cred, "workload" => &self.workloads[w], "environment" => self.env);
    }

    /// The next operation in turn, so every approved scope is exercised in a few days.
    pub(super) fn next_op(&mut self) -> Op {
        self.turn += 1;
        self.ops[(self.turn - 1) % self.ops.len()]
    }

    /// The id of the primary secret usable at `t`, if any.
    pub(super) fn key_id(&self, t: i64) -> Option<String> {
        let generation = self.key_today.iter().rev().find(|c| c.0 <= t)?.1?;
        self.key.as_ref().map(|k| k.id(generation))
    }

    /// The non-expiring token of NHI-ROT-002, one per identity.
    pub(super) fn legacy_token(&self) -> String {
        format!("oat-{:05}-legacy", self.num)
    }
}
