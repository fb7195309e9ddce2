//! `nhi-drift generate`: a deterministic synthetic event stream for load tests and demos.
//!
//! # Model
//! A fleet of `identities` non-human identities lives through `days` days from `start`:
//! - service accounts: a static `api_key` or `client_secret` used by cron-like batch jobs;
//! - API clients: a `client_secret` exchanged a few times a day for a one-hour `oauth_token`;
//! - AI agents: per task a `jit_token`, a session of tool calls within a minute or two,
//!   then `task.completed` and `credential.revoked` (weekdays busier than weekends);
//! - workloads: a daily run holding a one-hour `workload_svid`, renewed every 45 minutes
//!   by `credential.rotated` with `new_credential`.
//!
//! Every identity is registered, gets a business owner and a technical custodian, is
//! approved for a few scopes (agents also for tools), is granted exactly those scopes and
//! exercises them in turn, each with a stable workload and environment. Static secrets
//! rotate every 20–40 days and recertification comes every ~60 days, so a healthy identity
//! trips no rule. Most of the fleet registers in the first hours; some identities join
//! later, a few are offboarded cleanly, and a few owners leave after handing theirs over.
//!
//! About 7.5 % of the identities carry exactly one seeded violation, round-robin over the
//! 18 rules of CONTRACT.md §3 (`Rule` says how each is staged), timed so the condition
//! becomes true inside the period and, where possible, trips no other rule. When the
//! period is shorter than a rule's threshold (90 days without rotation, say) the identity
//! is "legacy": registered before `start`, with its pre-history written first and kept
//! sparse (a weekly heartbeat job plus its rotations and recertifications).
//!
//! Randomness is SplitMix64 seeded per (seed, identity, day), so no identity-day depends on
//! another's draws. Events are generated a day at a time into a buffer that is sorted by
//! (time, generation order) and written out, so memory is bounded by about a day of traffic.
//!
//! # Layout
//! - `catalog`: time units, principals, vendors, operations and the kinds of identity.
//! - `rule`: the seeded violations and how each is staged.
//! - `rng`: the SplitMix64 generator.
//! - `plan`: the fleet — seeded identities, departures, each identity's traits and schedule.
//! - `nhi`: one identity's state and its static secrets.
//! - `lifecycle`: an identity's day — setup, rotations, recertifications, offboarding.
//! - `seeded`: the events of each seeded violation.
//! - `activity`: ordinary traffic — batch jobs, token exchanges, agent tasks, workload runs.
//! - `output`: JSON field encoding and the day buffer that orders and writes events.

use std::collections::BTreeMap;
use std::io::{self, Write};

use catalog::{DAY, NOBODY};
use output::Stream;
use plan::Fleet;
use rule::Rule;

/// Pushes one event: `ev!(stream, time, type, source, who, "field" => value, ...)`.
/// Fields are written in the order given; a `None` value leaves its field out.
macro_rules! ev {
    ($s:expr, $t:expr, $ty:literal, $src:expr, $who:expr $(, $k:expr => $v:expr)* $(,)?) => {{
        let mut body = String::with_capacity(192);
        $( $crate::generate::output::Field::put($v, $k, &mut body); )*
        $s.push($t, $ty, $src, $who, body)
    }};
}

mod activity;
mod catalog;
mod lifecycle;
mod nhi;
mod output;
mod plan;
mod rng;
mod rule;
mod seeded;
#[cfg(test)]
mod tests;

/// Options of `nhi-drift generate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Number of identities in the fleet.
    pub identities: u32,
    /// Length of the period in days.
    pub days: u32,
    /// Seed of the pseudo-random generator; equal options give byte-identical output.
    pub seed: u64,
    /// Unix seconds of the first day, UTC.
    pub start: i64,
}

/// What was generated (for the CLI's summary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Number of events written.
    pub events: u64,
    /// Number of identities in the fleet.
    pub identities: u32,
    /// Rule id -> number of identities seeded with that violation (every rule is listed).
    pub violations: BTreeMap<&'static str, u64>,
}

/// Writes the stream as JSON lines to `out`, in non-decreasing event-time order.
pub fn generate(opts: &GenerateOptions, out: &mut dyn Write) -> io::Result<GenerateSummary> {
    let mut violations: BTreeMap<_, _> = Rule::ALL.iter().map(|r| (r.id(), 0)).collect();
    if opts.identities == 0 || opts.days == 0 {
        return Ok(GenerateSummary {
            events: 0,
            identities: opts.identities,
            violations,
        });
    }
    let mut fleet = Fleet::plan(opts);
    for (rule, _) in fleet.nhis.iter().filter_map(|n| n.seeded) {
        *violations.entry(rule.id()).or_default() += 1;
    }
    let mut s = Stream::new(opts.seed, opts.start, out);
    for d in fleet.first_day..i64::from(opts.days) {
        let ds = opts.start + d * DAY;
        s.floor = ds;
        for &(t, who) in fleet
            .departures
            .iter()
            .filter(|(t, _)| (ds..ds + DAY).contains(t))
        {
            ev!(s, t, "principal.departed", "workday", NOBODY, "principal" => who);
        }
        for nhi in &mut fleet.nhis {
            nhi.day(d, ds, &mut s);
        }
        s.flush(ds + DAY, &fleet.names)?;
    }
    let events = s.finish(&fleet.names)?;
    Ok(GenerateSummary {
        events,
        identities: opts.identities,
        violations,
    })
}
