//! Planning before the first event: which identities carry which violation, which owners
//! leave when, and each identity's traits and schedule.

use super::GenerateOptions;
use super::catalog::{
    AGENT_TOOLS, API_OPS, APPROVERS, DAY, HOUR, Kind, MINUTE, Op, PRINCIPALS, SEEDED_PERMILLE,
    VENDORS, WORKFLOWS,
};
use super::nhi::{Key, Nhi};
use super::rng::Rng;
use super::rule::Rule;

/// The planned fleet.
pub(super) struct Fleet {
    /// The identities, in the order their events are generated each day.
    pub(super) nhis: Vec<Nhi>,
    /// Identity names by `who`, resolved only when events are written.
    pub(super) names: Vec<String>,
    /// (time, principal) of every owner who leaves during the period.
    pub(super) departures: Vec<(i64, &'static str)>,
    /// Day index of the earliest registration: negative with legacy identities.
    pub(super) first_day: i64,
}

impl Fleet {
    /// Draws the whole fleet up front from the seed, before any event is generated.
    pub(super) fn plan(opts: &GenerateOptions) -> Fleet {
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
