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

use std::collections::BTreeMap;
use std::io::{self, Write};

/// Pushes one event: `ev!(stream, time, type, source, who, "field" => value, ...)`.
/// Fields are written in the order given; a `None` value leaves its field out.
macro_rules! ev {
    ($s:expr, $t:expr, $ty:literal, $src:expr, $who:expr $(, $k:expr => $v:expr)* $(,)?) => {{
        let mut body = String::with_capacity(192);
        $( Field::put($v, $k, &mut body); )*
        $s.push($t, $ty, $src, $who, body)
    }};
}

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
    let mut s = Stream {
        evs: Vec::new(),
        seq: 0,
        floor: i64::MIN,
        seed: opts.seed,
        start: opts.start,
        out,
        buf: String::new(),
        count: 0,
    };
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
    s.flush(i64::MAX, &fleet.names)?;
    s.out.write_all(s.buf.as_bytes())?;
    s.out.flush()?;
    Ok(GenerateSummary {
        events: s.count,
        identities: opts.identities,
        violations,
    })
}

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
/// Share of identities seeded with one violation, per mille (5–10 % is the brief).
const SEEDED_PERMILLE: u64 = 75;
/// `who` of events that name no identity (`principal.*`, `vendor.*`).
const NOBODY: u32 = u32::MAX;
/// Scopes nobody is ever approved for, so exercising or granting one is always drift.
const UNAPPROVED: [&str; 3] = ["iam:admin", "secrets:read", "org:admin"];
/// Owners and custodians; the first `APPROVERS` also approve and never leave.
#[rustfmt::skip]
const PRINCIPALS: [&str; 24] = [
    "grace@corp.example", "heidi@corp.example", "ivan@corp.example", "alice@corp.example",
    "bob@corp.example", "carol@corp.example", "dave@corp.example", "erin@corp.example",
    "frank@corp.example", "judy@corp.example", "mallory@corp.example", "niaj@corp.example",
    "olivia@corp.example", "peggy@corp.example", "rupert@corp.example", "sybil@corp.example",
    "trent@corp.example", "victor@corp.example", "walter@corp.example", "wendy@corp.example",
    "yusuf@corp.example", "zoe@corp.example", "priya@corp.example", "kenji@corp.example",
];
const APPROVERS: usize = 3;
/// Partner platforms an API client may span.
#[rustfmt::skip]
const VENDORS: [&str; 6] = ["salesforce", "snowflake", "workday", "hubspot", "twilio", "docusign"];

/// An API operation or agent tool: (tool, scope exercised, sensitivity, vendor, drafting-safe).
type Op = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
);

/// Gateway operations of service accounts, API clients and workloads (no tools approved).
#[rustfmt::skip]
const API_OPS: [Op; 8] = [
    ("storage.get", "storage:read", "internal", None, false),
    ("storage.put", "storage:write", "internal", None, false),
    ("db.query", "db:read", "confidential", None, false),
    ("db.write", "db:write", "confidential", None, false),
    ("queue.publish", "queue:write", "internal", None, false),
    ("queue.consume", "queue:read", "internal", None, false),
    ("logs.write", "logs:write", "internal", None, false),
    ("metrics.push", "metrics:write", "internal", None, false),
];

/// Agent tools; the restricted ones are approved only to privileged agents (and NHI-PRIV-001).
#[rustfmt::skip]
const AGENT_TOOLS: [Op; 11] = [
    ("kb.search", "kb:read", "public", None, true),
    ("tickets.read", "tickets:read", "internal", Some("zendesk"), true),
    ("email.draft", "email:draft", "internal", None, true),
    ("repo.read", "repo:read", "internal", Some("github"), true),
    ("tickets.reply", "tickets:write", "internal", Some("zendesk"), false),
    ("repo.comment", "repo:write", "internal", Some("github"), false),
    ("chat.post", "chat:write", "internal", Some("slack"), false),
    ("crm.lookup", "crm:read", "confidential", Some("salesforce"), false),
    ("db.query", "db:read", "confidential", None, false),
    ("payments.refund", "payments:refund", "restricted", Some("stripe"), false),
    ("customers.export", "pii:export", "restricted", None, false),
];

/// The four kinds of non-human identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    ServiceAccount,
    ApiClient,
    Agent,
    Workload,
}

/// Workflow names per kind, in `Kind` order.
#[rustfmt::skip]
const WORKFLOWS: [[&str; 5]; 4] = [
    ["billing-export", "nightly-etl", "backup", "log-shipper", "invoice-sync"],
    ["crm-sync", "partner-portal", "mobile-backend", "webhook-relay", "hr-feed"],
    ["support-triage", "code-review", "sales-research", "incident-summary", "invoice-assistant"],
    ["payments-api", "checkout", "search-indexer", "notifier", "inventory"],
];

impl Kind {
    #[rustfmt::skip]
    const ALL: [Kind; 4] = [Kind::ServiceAccount, Kind::ApiClient, Kind::Agent, Kind::Workload];

    fn name(self) -> &'static str {
        ["service_account", "api_client", "ai_agent", "workload"][self as usize]
    }

    fn prefix(self) -> &'static str {
        ["sa", "api", "agent", "wl"][self as usize]
    }

    /// The platform that registers the identity, grants its scopes and sees its traffic.
    fn platform(self) -> &'static str {
        ["aws", "okta", "agent-gateway", "kubernetes"][self as usize]
    }
}

/// The seeded violations, one per rule of CONTRACT.md §3, and how each is staged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    /// NHI-ROT-001: the primary static secret is never rotated.
    Rot001,
    /// NHI-ROT-002: an API client switches to an `oauth_token` issued without `expires`.
    Rot002,
    /// NHI-JIT-001: one task's `jit_token` (1 h expiry) is not revoked after the task.
    Jit001,
    /// NHI-STALE-001: a backup `api_key` is never used (rotated every 60–75 days).
    Stale001,
    /// NHI-STALE-002: a batch job stops; its grants are trimmed but the key stays.
    Stale002,
    /// NHI-SCOPE-001: one agent tool call also exercises a never-approved scope.
    Scope001,
    /// NHI-SCOPE-002: a never-approved scope is granted (and revoked 60–85 days later).
    Scope002,
    /// NHI-SCOPE-003: an extra approved scope is granted and never exercised.
    Scope003,
    /// NHI-ORPH-001: a contractor custodian departs and nobody is reassigned.
    Orph001,
    /// NHI-ORPH-002: a linked vendor is offboarded while the integration keeps its access.
    Orph002,
    /// NHI-OFF-001: a revoked key is still used by a straggler job.
    Off001,
    /// NHI-OFF-002: offboarding revokes the grants but forgets the static secret.
    Off002,
    /// NHI-GOV-001: the first batch job runs hours before the approval lands.
    Gov001,
    /// NHI-GOV-002: never recertified after the initial approval.
    Gov002,
    /// NHI-GOV-003: never assigned an owner or custodian.
    Gov003,
    /// NHI-PRIV-001: a restricted tool is called without a JIT token or approval.
    Priv001,
    /// NHI-SHARE-001: one key is used from three workloads within a minute.
    Share001,
    /// NHI-ENV-001: one secret is used in two environments within a minute.
    Env001,
}

impl Rule {
    #[rustfmt::skip]
    const ALL: [Rule; 18] = [
        Rule::Rot001, Rule::Rot002, Rule::Jit001, Rule::Stale001, Rule::Stale002, Rule::Scope001,
        Rule::Scope002, Rule::Scope003, Rule::Orph001, Rule::Orph002, Rule::Off001, Rule::Off002,
        Rule::Gov001, Rule::Gov002, Rule::Gov003, Rule::Priv001, Rule::Share001, Rule::Env001,
    ];

    #[rustfmt::skip]
    fn id(self) -> &'static str {
        [
            "NHI-ROT-001", "NHI-ROT-002", "NHI-JIT-001", "NHI-STALE-001", "NHI-STALE-002",
            "NHI-SCOPE-001", "NHI-SCOPE-002", "NHI-SCOPE-003", "NHI-ORPH-001", "NHI-ORPH-002",
            "NHI-OFF-001", "NHI-OFF-002", "NHI-GOV-001", "NHI-GOV-002", "NHI-GOV-003",
            "NHI-PRIV-001", "NHI-SHARE-001", "NHI-ENV-001",
        ][self as usize]
    }

    /// Kinds whose ordinary behaviour the violation can be grafted onto.
    fn kinds(self) -> &'static [Kind] {
        use Kind::*;
        match self {
            Rule::Rot001 | Rule::Off002 | Rule::Env001 => &[ServiceAccount, ApiClient],
            Rule::Rot002 => &[ApiClient],
            Rule::Jit001 | Rule::Scope001 | Rule::Priv001 => &[Agent],
            Rule::Stale001 | Rule::Stale002 | Rule::Off001 | Rule::Gov001 | Rule::Share001 => {
                &[ServiceAccount]
            }
            Rule::Orph002 => &[ApiClient, Agent],
            _ => &Kind::ALL,
        }
    }

    /// Time from the seeded cause until the condition holds (default thresholds, some slack).
    fn threshold(self) -> i64 {
        match self {
            Rule::Rot001 | Rule::Stale002 | Rule::Scope003 | Rule::Gov002 => 90 * DAY,
            Rule::Stale001 => 45 * DAY,
            Rule::Gov003 => 7 * DAY,
            Rule::Scope002 => DAY,
            Rule::Jit001 | Rule::Off002 => 2 * HOUR,
            _ => 0,
        }
    }

    /// The cause is the identity's own setup, so the period must cover setup + threshold.
    fn anchored(self) -> bool {
        matches!(
            self,
            Rule::Rot001
                | Rule::Stale001
                | Rule::Scope003
                | Rule::Gov001
                | Rule::Gov002
                | Rule::Gov003
        )
    }
}

/// SplitMix64: tiny, fast and plenty for synthetic data; keeps `rand` out of the build.
struct Rng(u64);

impl Rng {
    /// A generator for one tuple of parts (seed, purpose, identity, day ...).
    fn new(parts: &[u64]) -> Rng {
        let mut r = Rng(0x243F_6A88_85A3_08D3);
        for p in parts {
            r.0 ^= *p;
            r.next();
        }
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift rather than a biased modulo.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.saturating_sub(lo).max(0) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A value that can be written as the JSON field `,"key":value`.
trait Field {
    fn put(self, key: &str, out: &mut String);
}

fn put_key(key: &str, out: &mut String) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

impl Field for &str {
    fn put(self, key: &str, out: &mut String) {
        put_key(key, out);
        push_json_str(out, self);
    }
}

impl Field for &String {
    fn put(self, key: &str, out: &mut String) {
        self.as_str().put(key, out);
    }
}

/// A timestamp field.
struct At(i64);

impl Field for At {
    fn put(self, key: &str, out: &mut String) {
        put_key(key, out);
        out.push('"');
        push_time(out, self.0);
        out.push('"');
    }
}

impl<S: AsRef<str>> Field for &[S] {
    fn put(self, key: &str, out: &mut String) {
        put_key(key, out);
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, v.as_ref());
        }
        out.push(']');
    }
}

impl<S: AsRef<str>> Field for &Vec<S> {
    fn put(self, key: &str, out: &mut String) {
        self.as_slice().put(key, out);
    }
}

impl<T: Field> Field for Option<T> {
    fn put(self, key: &str, out: &mut String) {
        if let Some(v) = self {
            v.put(key, out);
        }
    }
}

fn push_json_str(s: &mut String, v: &str) {
    s.push('"');
    // Generated values are plain ASCII; escaping is for the odd caller-supplied character.
    if v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        s.push_str(v);
    } else {
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if u32::from(c) < 0x20 => s.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => s.push(c),
            }
        }
    }
    s.push('"');
}

/// Decimal digits of `v`, zero-padded to `width`; avoids `fmt` machinery on the hot path.
fn push_num(s: &mut String, mut v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while v > 0 || i == tmp.len() {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    s.extend(std::iter::repeat_n(
        '0',
        width.saturating_sub(tmp.len() - i),
    ));
    s.extend(tmp[i..].iter().map(|&b| char::from(b)));
}

/// RFC 3339 UTC with second precision, e.g. `2026-01-01T00:00:00Z` (H. Hinnant's civil date).
fn push_time(s: &mut String, t: i64) {
    let z = t.div_euclid(DAY) + 719_468;
    let secs = t.rem_euclid(DAY) as u64;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_num(s, year.clamp(0, 9999) as u64, 4);
    for (sep, v) in [
        ('-', month as u64),
        ('-', day as u64),
        ('T', secs / 3600),
        (':', secs / 60 % 60),
        (':', secs % 60),
    ] {
        s.push(sep);
        push_num(s, v, 2);
    }
    s.push('Z');
}

/// One generated event waiting to be written; `seq` keeps equal times in generation order.
struct Ev {
    t: i64,
    seq: u64,
    ty: &'static str,
    source: &'static str,
    who: u32,
    body: String,
}

/// The day buffer and the output it drains into.
struct Stream<'a> {
    evs: Vec<Ev>,
    seq: u64,
    /// Start of the day being generated: everything earlier has been written already.
    floor: i64,
    seed: u64,
    start: i64,
    out: &'a mut dyn Write,
    buf: String,
    count: u64,
}

impl Stream<'_> {
    fn push(&mut self, t: i64, ty: &'static str, source: &'static str, who: u32, body: String) {
        debug_assert!(
            t >= self.floor,
            "{ty} at {t} is before the day start {}",
            self.floor
        );
        self.seq += 1;
        self.evs.push(Ev {
            t: t.max(self.floor),
            seq: self.seq,
            ty,
            source,
            who,
            body,
        });
    }

    /// Writes every buffered event earlier than `cutoff` in (time, sequence) order.
    fn flush(&mut self, cutoff: i64, names: &[String]) -> io::Result<()> {
        self.evs.sort_unstable_by_key(|e| (e.t, e.seq));
        let n = self.evs.partition_point(|e| e.t < cutoff);
        for e in self.evs.drain(..n) {
            let b = &mut self.buf;
            b.push_str("{\"id\":\"evt-");
            push_num(b, self.seed, 1);
            b.push('-');
            push_num(b, self.count, 1);
            b.push_str("\",\"type\":\"");
            b.push_str(e.ty);
            b.push_str("\",\"time\":\"");
            push_time(b, e.t);
            b.push_str("\",\"source\":\"");
            b.push_str(e.source);
            b.push('"');
            if let Some(name) = names.get(e.who as usize) {
                b.push_str(",\"identity\":");
                push_json_str(b, name);
            }
            b.push_str(&e.body);
            b.push_str("}\n");
            self.count += 1;
            if b.len() >= 1 << 16 {
                self.out.write_all(b.as_bytes())?;
                b.clear();
            }
        }
        Ok(())
    }
}

/// A static secret (`api_key` / `client_secret`) and its rotation schedule.
struct Key {
    kind: &'static str,
    /// Credential id without the generation suffix.
    base: String,
    generation: u32,
    issued: i64,
    next_rotation: i64,
    period: i64,
}

impl Key {
    fn new(kind: &'static str, base: String, period: i64) -> Key {
        Key {
            kind,
            base,
            generation: 0,
            issued: i64::MAX,
            next_rotation: i64::MAX,
            period,
        }
    }

    fn id(&self, generation: u32) -> String {
        format!("{}-{generation}", self.base)
    }
}

/// How an agent task departs from the norm.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Task {
    Normal,
    NotRevoked,
    UnapprovedScope,
}

/// One identity: fixed traits, its schedule and the state carried from day to day.
struct Nhi {
    num: u32,
    kind: Kind,
    tier: &'static str,
    workflow: &'static str,
    env: &'static str,
    workloads: Vec<String>,
    vendors: Vec<String>,
    owner: Option<String>,
    custodian: Option<String>,
    /// Operations done in turn (agents: the approved tools).
    ops: Vec<Op>,
    /// Approved scopes: the ops' scopes, plus a never-exercised one for NHI-SCOPE-003.
    scopes: Vec<&'static str>,
    grants: Vec<&'static str>,
    key: Option<Key>,
    /// The primary key's generation in force from each time of the current day (`None`: revoked).
    key_today: Vec<(i64, Option<u32>)>,
    backup: Option<Key>,
    /// Seconds into the day of each batch job, token exchange, task or run.
    slots: Vec<i64>,
    run_len: i64,
    born: i64,
    /// Setup done: ordinary traffic may start.
    ready: i64,
    next_recert: i64,
    offboard_at: Option<i64>,
    /// (time, is custodian, successor) ahead of a principal's departure.
    handovers: Vec<(i64, bool, &'static str)>,
    revokes: Vec<(i64, &'static str)>,
    seeded: Option<(Rule, i64)>,
    /// Round-robin position over `ops`, so every granted scope is exercised every few days.
    turn: usize,
    /// Counter behind credential, task and run ids.
    serial: u32,
    done: bool,
}

/// The planned fleet.
struct Fleet {
    nhis: Vec<Nhi>,
    names: Vec<String>,
    departures: Vec<(i64, &'static str)>,
    first_day: i64,
}

impl Fleet {
    fn plan(opts: &GenerateOptions) -> Fleet {
        let (start, n) = (opts.start, opts.identities as usize);
        let end = start + i64::from(opts.days) * DAY;
        let mut rng = Rng::new(&[opts.seed, 0x5EED]);
        // A partial Fisher-Yates shuffle picks the seeded identities; rules go round-robin.
        let seeded = ((n as u64 * SEEDED_PERMILLE + 500) / 1000) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..seeded {
            order.swap(i, i + rng.below((n - i) as u64) as usize);
        }
        let offset = rng.below(Rule::ALL.len() as u64) as usize;
        let mut rules = vec![None; n];
        for (k, &i) in order[..seeded].iter().enumerate() {
            rules[i] = Some(Rule::ALL[(k + offset) % Rule::ALL.len()]);
        }
        // About one owner every two months leaves; their identities are handed over first.
        let mut departures = Vec::new();
        let mut pool = PRINCIPALS[APPROVERS..].to_vec();
        let leavers = if opts.days >= 3 {
            opts.days.div_ceil(60)
        } else {
            0
        };
        for _ in 0..leavers {
            let who = pool.remove(rng.below(pool.len() as u64) as usize);
            departures.push((rng.range(start + (end - start) / 5, end - DAY), who));
        }
        let nhis: Vec<Nhi> = (0..n)
            .map(|i| Nhi::plan(opts, i as u32, rules[i], &departures))
            .collect();
        let names = nhis
            .iter()
            .map(|x| format!("{}-{}-{:05}", x.kind.prefix(), x.workflow, x.num))
            .collect();
        let first = nhis.iter().map(|x| x.born).min().unwrap_or(start);
        Fleet {
            nhis,
            names,
            departures,
            first_day: (first - start).div_euclid(DAY).min(0),
        }
    }
}

impl Nhi {
    /// Draws one identity's traits and schedule; `rule` is its seeded violation, if any.
    fn plan(
        opts: &GenerateOptions,
        num: u32,
        rule: Option<Rule>,
        departures: &[(i64, &'static str)],
    ) -> Nhi {
        let mut rng = Rng::new(&[opts.seed, 0x1D, u64::from(num)]);
        let kind = match (rule, rng.below(100)) {
            (Some(r), _) => rng.pick(r.kinds()),
            (None, 0..35) => Kind::ServiceAccount,
            (None, 35..55) => Kind::ApiClient,
            (None, 55..75) => Kind::Agent,
            _ => Kind::Workload,
        };
        let workflow = rng.pick(&WORKFLOWS[kind as usize]);
        let tier = match (kind, rng.below(100), rule) {
            (_, _, Some(Rule::Priv001)) | (Kind::Agent, 30..80, _) => "tool_executing",
            (Kind::Agent, 0..30, _) => "draft_only",
            (Kind::Agent, _, _) => "privileged",
            _ => "tool_executing",
        };
        let env = match rng.below(100) {
            0..70 => "prod",
            70..92 => "staging",
            _ => "dev",
        };
        let (ops, scopes) = pick_ops(kind, tier, rule, &mut rng);
        let (born, seeded) = seed_timing(opts, rule, &mut rng);

        let mut vendors: Vec<String> = Vec::new();
        for v in ops.iter().filter_map(|o| o.3) {
            if !vendors.iter().any(|x| x == v) {
                vendors.push(v.to_string());
            }
        }
        if kind == Kind::ApiClient && rng.chance(60) {
            vendors.push(rng.pick(&VENDORS).to_string());
        }
        if rule == Some(Rule::Orph002) {
            vendors.push(format!("acme-analytics-{num:05}"));
        }
        let runner = rng.pick(&["airflow", "jenkins", "cron", "lambda"]);
        let mut workloads = vec![match kind {
            Kind::ServiceAccount => format!("{runner}/{workflow}"),
            Kind::ApiClient => format!("{workflow}.partner.example"),
            Kind::Agent => format!("agent-runtime/{workflow}"),
            Kind::Workload => format!("k8s/{env}/{workflow}"),
        }];
        if kind == Kind::ServiceAccount && rng.chance(30) {
            workloads.push(format!("{runner}/{workflow}-replica"));
        }

        // Owners: never a leaver who departs before a handover fits; then plan the handovers.
        let born_plus_day = born + DAY;
        let (mut owner, mut custodian) = (
            Some(draw(&mut rng, departures, born_plus_day)),
            Some(draw(&mut rng, departures, born_plus_day)),
        );
        match rule {
            Some(Rule::Gov003) => (owner, custodian) = (None, None),
            Some(Rule::Orph001) => custodian = None,
            _ => {}
        }
        let mut handovers = Vec::new();
        for (is_custodian, p) in [(false, owner), (true, custodian)] {
            if let Some(&(at, _)) = departures.iter().find(|&&(_, who)| Some(who) == p) {
                let to = draw(&mut rng, departures, i64::MAX);
                handovers.push((
                    (at - rng.range(2 * HOUR, 3 * DAY)).max(born + HOUR),
                    is_custodian,
                    to,
                ));
            }
        }

        let key = match kind {
            Kind::ServiceAccount if rng.chance(70) => Some(("api_key", "ak")),
            Kind::ServiceAccount | Kind::ApiClient => Some(("client_secret", "cs")),
            _ => None,
        };
        let key = key.map(|(k, prefix)| {
            Key::new(
                k,
                format!("{prefix}-{num:05}"),
                rng.range(20 * DAY, 40 * DAY),
            )
        });
        let backup = (rule == Some(Rule::Stale001)).then(|| {
            Key::new(
                "api_key",
                format!("ak-{num:05}-backup"),
                rng.range(60 * DAY, 75 * DAY),
            )
        });
        let (count, from, to) = match kind {
            Kind::ServiceAccount => (1 + rng.below(3), 0, 22 * HOUR),
            Kind::ApiClient => (1 + rng.below(4), 6 * HOUR, 22 * HOUR),
            Kind::Agent => (1 + rng.below(4), 7 * HOUR, 20 * HOUR),
            Kind::Workload => (1, 0, 12 * HOUR),
        };
        // Cron-like: batch jobs start on a quarter hour.
        let slots = (0..count)
            .map(|_| rng.range(from, to) / (15 * MINUTE) * (15 * MINUTE))
            .collect();
        let end = opts.start + i64::from(opts.days) * DAY;
        let offboard_at = match rule {
            Some(Rule::Off002) => seeded.map(|(_, at)| at),
            None if rng.chance(2) && born + 7 * DAY < end - 2 * HOUR => {
                Some(rng.range(born + 7 * DAY, end - 2 * HOUR))
            }
            _ => None,
        };
        Nhi {
            num,
            kind,
            tier,
            workflow,
            env,
            workloads,
            vendors,
            owner: owner.map(str::to_string),
            custodian: custodian.map(str::to_string).or_else(|| {
                (rule == Some(Rule::Orph001)).then(|| format!("contractor-{num:05}@corp.example"))
            }),
            ops,
            scopes,
            grants: Vec::new(),
            key,
            key_today: Vec::new(),
            backup,
            slots,
            run_len: rng.range(4 * HOUR, 11 * HOUR),
            born,
            ready: i64::MAX,
            next_recert: i64::MAX,
            offboard_at,
            handovers,
            revokes: Vec::new(),
            seeded,
            turn: 0,
            serial: 0,
            done: false,
        }
    }

    /// Generates this identity's events of day `d`, which starts at `ds`.
    fn day(&mut self, d: i64, ds: i64, s: &mut Stream) {
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

    /// The seeded violation's own events, when its cause falls on this day.
    fn seeded_events(&mut self, ds: i64, de: i64, s: &mut Stream, rng: &mut Rng) {
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

    /// Ordinary traffic of the day: batch jobs, token exchanges, agent tasks or a workload run.
    fn activity(&mut self, ds: i64, de: i64, sparse: bool, s: &mut Stream, rng: &mut Rng) {
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
    fn task(&mut self, t0: i64, s: &mut Stream, rng: &mut Rng, flavor: Task) -> i64 {
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

    /// A gateway call of a service account, API client or workload, exercising its next scope.
    fn api_call(&mut self, s: &mut Stream, t: i64, cred: &str, w: usize, rng: &mut Rng) {
        let (tool, scope, sensitivity, _, _) = self.next_op();
        ev!(s, t, "tool.called", "api-gateway", self.num,
            "tool" => tool, "credential" => cred, "scopes" => &[scope][..],
            "sensitivity" => sensitivity, "environment" => self.env,
            "workload" => &self.workloads[w], "outcome" => outcome(rng));
    }

    fn use_cred(&self, s: &mut Stream, t: i64, cred: &str, w: usize, source: &'static str) {
        ev!(s, t, "credential.used", source, self.num,
            "credential" => cred, "workload" => &self.workloads[w], "environment" => self.env);
    }

    fn next_op(&mut self) -> Op {
        self.turn += 1;
        self.ops[(self.turn - 1) % self.ops.len()]
    }

    /// The id of the primary secret usable at `t`, if any.
    fn key_id(&self, t: i64) -> Option<String> {
        let generation = self.key_today.iter().rev().find(|c| c.0 <= t)?.1?;
        self.key.as_ref().map(|k| k.id(generation))
    }

    fn legacy_token(&self) -> String {
        format!("oat-{:05}-legacy", self.num)
    }
}

/// A principal who does not leave before `leaving_before`.
fn draw(rng: &mut Rng, departures: &[(i64, &'static str)], leaving_before: i64) -> &'static str {
    loop {
        let p = rng.pick(&PRINCIPALS);
        if !departures
            .iter()
            .any(|&(at, who)| who == p && at < leaving_before)
        {
            return p;
        }
    }
}

/// The identity's operations and approved scopes, fitting its kind and tier.
fn pick_ops(
    kind: Kind,
    tier: &str,
    rule: Option<Rule>,
    rng: &mut Rng,
) -> (Vec<Op>, Vec<&'static str>) {
    let catalogue: Vec<Op> = match (kind, tier) {
        (Kind::Agent, "draft_only") => AGENT_TOOLS.iter().copied().filter(|o| o.4).collect(),
        (Kind::Agent, _) => AGENT_TOOLS
            .iter()
            .copied()
            .filter(|o| o.2 != "restricted")
            .collect(),
        _ => API_OPS.to_vec(),
    };
    let mut ops = Vec::new();
    for _ in 0..2 + rng.below(3) {
        let o = rng.pick(&catalogue);
        if !ops.contains(&o) {
            ops.push(o);
        }
    }
    if (tier == "privileged" && rng.chance(60)) || rule == Some(Rule::Priv001) {
        ops.push(AGENT_TOOLS[9 + rng.below(2) as usize]);
    }
    let mut scopes: Vec<&'static str> = ops.iter().map(|o| o.1).collect();
    if rule == Some(Rule::Scope003) {
        scopes.extend(
            catalogue
                .iter()
                .chain(&API_OPS)
                .map(|o| o.1)
                .find(|sc| !scopes.contains(sc)),
        );
    }
    (ops, scopes)
}

/// Registration time and seeded cause `(rule, at)`. A rule whose threshold does not fit in
/// the period gets a legacy identity, born early enough that the condition holds mid-period.
fn seed_timing(
    opts: &GenerateOptions,
    rule: Option<Rule>,
    rng: &mut Rng,
) -> (i64, Option<(Rule, i64)>) {
    let (start, end) = (opts.start, opts.start + i64::from(opts.days) * DAY);
    let mut born = start + rng.range(0, 6 * HOUR);
    let Some(r) = rule else {
        if opts.days >= 4 && rng.chance(12) {
            born = rng.range(start + DAY, end - 2 * DAY);
        }
        return (born, None);
    };
    let th = r.threshold();
    let legacy_onset = start + (end - start) * (30 + rng.below(50) as i64) / 100;
    if r.anchored() {
        // Setup takes at most ~3.5 h, so the condition holds by `born + th + 4 h`.
        let latest = end - th - 8 * HOUR;
        born = if latest > start {
            rng.range(start, latest)
        } else {
            legacy_onset - th - 4 * HOUR
        };
        return (born, Some((r, born)));
    }
    let lead = if r == Rule::Stale002 {
        14 * DAY
    } else {
        6 * HOUR
    };
    let hi = end - th - 2 * HOUR;
    // NHI-OFF-002 comes late so the forgotten key is not also dormant (45 d) in the period.
    let lo = if r == Rule::Off002 {
        (born + lead).max(hi - 40 * DAY)
    } else {
        born + lead
    };
    let at = if hi > lo {
        rng.range(lo, hi)
    } else {
        legacy_onset - th
    };
    (born.min(at - lead), Some((r, at)))
}

fn outcome(rng: &mut Rng) -> &'static str {
    match rng.below(100) {
        0..95 => "success",
        95..98 => "error",
        _ => "denied",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    /// 2026-01-01T00:00:00Z.
    const START: i64 = 1_767_225_600;

    fn run(identities: u32, days: u32, seed: u64) -> (GenerateSummary, String) {
        run_from(START, identities, days, seed)
    }

    fn run_from(start: i64, identities: u32, days: u32, seed: u64) -> (GenerateSummary, String) {
        let opts = GenerateOptions {
            identities,
            days,
            seed,
            start,
        };
        let mut out = Vec::new();
        let summary = generate(&opts, &mut out).expect("writing to a Vec cannot fail");
        (summary, String::from_utf8(out).expect("UTF-8 output"))
    }

    /// Fields CONTRACT.md §1 requires per type, besides the envelope.
    fn required(ty: &str) -> &'static [&'static str] {
        match ty {
            "identity.registered" => &["identity", "kind"],
            "identity.owner_assigned" | "identity.offboarded" => &["identity"],
            "identity.approved" => &["identity", "approver", "scopes"],
            "identity.recertified" => &["identity", "reviewer"],
            "identity.scope_granted" | "identity.scope_revoked" => &["identity", "scope"],
            "principal.departed" => &["principal"],
            "vendor.offboarded" => &["vendor"],
            "credential.issued" => &["identity", "credential", "kind"],
            "credential.rotated" | "credential.revoked" | "credential.used" => {
                &["identity", "credential"]
            }
            "tool.called" => &["identity", "tool"],
            "task.completed" => &["identity", "task"],
            other => panic!("unknown event type {other}"),
        }
    }

    #[test]
    fn same_options_give_identical_output() {
        let (a, out_a) = run(80, 20, 7);
        let (b, out_b) = run(80, 20, 7);
        assert_eq!(a, b);
        assert!(out_a == out_b, "two runs differ");
        assert!(
            run(80, 20, 8).1 != out_a,
            "another seed gives another stream"
        );
    }

    #[test]
    fn lines_are_ordered_contract_events_with_unique_ids() {
        // Five days force the long-threshold violations onto legacy identities with pre-history;
        // a start off the minute checks that nothing lands before its day is written.
        let (summary, out) = run_from(START + 1_234, 300, 5, 3);
        let (mut ids, mut last, mut before_start) = (HashSet::new(), String::new(), 0);
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).expect("every line is JSON");
            let obj = v.as_object().expect("every line is an object");
            let text = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("no {k}: {line}"))
            };
            assert!(ids.insert(text("id").to_string()), "duplicate id: {line}");
            for k in required(text("type")) {
                assert!(obj.contains_key(*k), "no {k}: {line}");
            }
            let time = text("time");
            assert!(
                time.len() == 20 && time.ends_with('Z'),
                "not RFC 3339 UTC: {time}"
            );
            assert!(time >= last.as_str(), "{time} comes after {last}");
            before_start += usize::from(time < "2026-01-01");
            last = time.to_string();
            for k in ["secret", "token", "password", "value"] {
                assert!(!obj.contains_key(k), "secret-named field: {line}");
            }
        }
        assert_eq!(ids.len() as u64, summary.events);
        assert!(
            before_start > 0,
            "legacy identities bring their pre-history"
        );
    }

    #[test]
    fn size_scales_with_identities_and_days() {
        let (summary, out) = run(200, 20, 11);
        let per_identity_day = summary.events as f64 / (200.0 * 20.0);
        assert!(
            (13.0..21.0).contains(&per_identity_day),
            "{per_identity_day} events per identity-day"
        );
        assert_eq!(out.lines().count() as u64, summary.events);
    }

    #[test]
    fn every_rule_is_seeded_whatever_the_period() {
        for days in [120, 30, 1] {
            let opts = GenerateOptions {
                identities: 300,
                days,
                seed: 5,
                start: START,
            };
            let summary = generate(&opts, &mut io::sink()).expect("a sink cannot fail");
            assert_eq!(summary.violations.len(), Rule::ALL.len());
            assert!(
                summary.violations.values().all(|&n| n >= 1),
                "{days} d: {:?}",
                summary.violations
            );
            let seeded: u64 = summary.violations.values().sum();
            assert!(
                (15..=30).contains(&seeded),
                "{seeded} of 300 seeded, want 5-10 %"
            );
        }
    }

    #[test]
    fn window_violations_appear_only_where_seeded() {
        let (summary, out) = run(300, 30, 9);
        let mut approved: HashMap<String, Vec<Value>> = HashMap::new();
        let mut dead = HashSet::new();
        let (mut off_scope, mut after_revoke) = (HashSet::new(), HashSet::new());
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).expect("JSON");
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let scopes = v["scopes"].as_array().cloned().unwrap_or_default();
            match v["type"].as_str().unwrap_or_default() {
                "identity.approved" => _ = approved.insert(text("identity"), scopes),
                "credential.revoked" => _ = dead.insert(text("credential")),
                "credential.rotated" if v.get("new_credential").is_some() => {
                    _ = dead.insert(text("credential"))
                }
                ty @ ("credential.used" | "tool.called") => {
                    if dead.contains(&text("credential")) {
                        after_revoke.insert(text("identity"));
                    }
                    let baseline = approved.get(&text("identity"));
                    if ty == "tool.called"
                        && !baseline.is_some_and(|b| scopes.iter().all(|s| b.contains(s)))
                    {
                        off_scope.insert(text("identity"));
                    }
                }
                _ => {}
            }
        }
        assert_eq!(off_scope.len() as u64, summary.violations["NHI-SCOPE-001"]);
        assert_eq!(after_revoke.len() as u64, summary.violations["NHI-OFF-001"]);
    }

    #[test]
    fn empty_fleet_or_period_writes_nothing() {
        for (identities, days) in [(0, 30), (30, 0)] {
            let (summary, out) = run(identities, days, 1);
            assert_eq!((summary.events, out.as_str()), (0, ""));
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        for (t, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (START, "2026-01-01T00:00:00Z"),
            (1_709_210_096, "2024-02-29T12:34:56Z"),
            (-400 * DAY + 3_725, "1968-11-27T01:02:05Z"),
        ] {
            let mut s = String::new();
            push_time(&mut s, t);
            assert_eq!(s, want);
        }
    }
}
