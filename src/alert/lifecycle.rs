//! Alert lifecycle (contract §3): state findings open while their condition holds and
//! resolve when it stops; window findings open once per dedup period with `occurrences`.
//!
//! A state rule's rows are *candidates*: the rule says from when (`opened_at`) its
//! condition holds given the identity's current state. A candidate is *due* at an
//! evaluation whose *now* has reached that moment (passed it, for strict thresholds).
//! Candidates change only when their identity is snapshotted again; due times are kept
//! in a queue so identities that did not change still open on time: at the end of the
//! window in which they fall due (contract v2: state is judged at every window end), even
//! when the batch has no evaluation there — between two evaluations of a batch no event
//! changed any identity, so the candidate found earlier is exactly what a judgement at
//! that window end would find.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{Alert, Owner, Status, alert_id};
use crate::engine::rule::Rule;
use crate::engine::{Finding, Rendered};
use crate::event::Micros;
use crate::hashing::FastMap;

/// Key fields of a finding besides identity, e.g. `[("credential", "k1")]`.
type KeyFields = Vec<(String, String)>;
/// Entity key of a finding within one identity: rule index and key fields.
type LocalKey = (usize, KeyFields);
/// A not-yet-due candidate: (due time, identity, rule index, key fields).
type DueEntry = (Micros, String, usize, KeyFields);
/// Entity key of a window finding: (rule index, identity, key fields).
type WindowKey = (usize, String, KeyFields);

/// One identity's fresh state-rule candidates from a snapshot.
#[derive(Debug)]
pub struct Snapshot {
    pub identity: String,
    pub owner: Owner,
    /// Candidates due by the batch's last evaluation.
    pub candidates: Vec<Finding>,
    /// The earliest due time of the candidates due after it, which were not made into
    /// findings: they can neither open nor keep an alert open in this batch, and only
    /// set when the identity is judged again.
    pub later: Option<Micros>,
}

/// One evaluation's findings: the closed window's (if any) and the state candidates of
/// the identities snapshotted at it.
#[derive(Debug)]
pub struct Evaluation<'a> {
    pub now: Micros,
    pub window_findings: Vec<Finding>,
    /// Owners of the identities active in the window.
    pub window_owners: &'a HashMap<String, Owner>,
    pub snapshots: Vec<Snapshot>,
    /// Whether state rules ran (not for a window closed only at the end of a replay).
    pub run_state: bool,
    /// Start of the window closed, if any: no later evaluation has a window finding
    /// opened before it.
    pub window_start: Option<Micros>,
}

/// What the lifecycle keeps between evaluations (and in checkpoints: everything but the
/// per-batch queues, which are empty between batches).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lifecycle {
    #[serde(skip)]
    dedup_period: Micros,
    /// The window size: due candidates open at the end of the window they fall due in.
    #[serde(skip)]
    window: Micros,
    /// Candidates of the identities snapshotted in the current batch (their latest
    /// snapshot's), and those identities' owners. Nothing reads them once the batch has
    /// ended: a candidate due later has set its identity's wake-up, and the identity is
    /// snapshotted afresh then. So they are not kept between batches.
    #[serde(skip)]
    candidates: FastMap<String, (Vec<Finding>, Option<Micros>)>,
    #[serde(skip)]
    owners: FastMap<String, Owner>,
    /// Open state alerts per identity, with the text they were opened with.
    #[serde(with = "open_pairs")]
    open: FastMap<String, BTreeMap<LocalKey, (Finding, Rendered)>>,
    #[serde(skip)]
    due: BTreeSet<DueEntry>,
    /// The last *now* of the current batch: only candidates due by then are queued.
    #[serde(skip)]
    horizon: Micros,
    /// Identities snapshotted in the current batch, for their wake-ups.
    #[serde(skip)]
    touched: BTreeSet<String>,
    /// Window findings: (rule, identity, key) → (opened_at of the last alert, suppressed since).
    #[serde(with = "crate::pairs")]
    windows: FastMap<WindowKey, (Micros, u64)>,
    /// Dedup entries after the last sweep of the passed ones.
    #[serde(skip)]
    windows_swept: usize,
    /// Open state alerts per rule index, kept with `open` (counted afresh on restore).
    #[serde(skip)]
    open_counts: Vec<usize>,
}

/// Counts one alert of `rule` opened (`true`) or resolved.
fn counted(counts: &mut Vec<usize>, rule: usize, opened: bool) {
    if counts.len() <= rule {
        counts.resize(rule + 1, 0);
    }
    if opened {
        counts[rule] += 1;
    } else {
        counts[rule] = counts[rule].saturating_sub(1);
    }
}

/// The open alerts as `[identity, [[key, [finding, text]], …]]` lists.
mod open_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::LocalKey;
    use crate::engine::{Finding, Rendered};

    type Open = crate::hashing::FastMap<String, BTreeMap<LocalKey, (Finding, Rendered)>>;

    pub fn serialize<S: Serializer>(open: &Open, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            open.iter()
                .map(|(identity, alerts)| (identity, alerts.iter().collect::<Vec<_>>())),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Open, D::Error> {
        type Entry = (String, Vec<(LocalKey, (Finding, Rendered))>);
        Ok(Vec::<Entry>::deserialize(deserializer)?
            .into_iter()
            .map(|(identity, alerts)| (identity, alerts.into_iter().collect()))
            .collect())
    }
}

impl Lifecycle {
    /// A lifecycle suppressing window repeats within `dedup_period`, judging state at the
    /// ends of windows of size `window`.
    pub fn new(dedup_period: Micros, window: Micros) -> Self {
        Lifecycle {
            dedup_period,
            window: window.max(1),
            ..Default::default()
        }
    }

    /// Sets the dedup period and window size (after restoring a checkpoint, from config).
    pub fn set_settings(&mut self, dedup_period: Micros, window: Micros) {
        self.dedup_period = dedup_period;
        self.window = window.max(1);
        self.recount();
    }

    /// Counts the open alerts per rule afresh (after a restore or a renumbering).
    fn recount(&mut self) {
        self.open_counts.clear();
        for (rule, _) in self.open.values().flat_map(|m| m.keys()) {
            counted(&mut self.open_counts, *rule, true);
        }
    }

    /// The end of the window in which a candidate due at `at` is judged: the first window
    /// end at or after it.
    fn judged_at(&self, at: Micros) -> Micros {
        at.div_euclid(self.window)
            .saturating_add(i64::from(at.rem_euclid(self.window) != 0))
            .saturating_mul(self.window)
    }

    /// Renumbers rule indices after the rule set changed: `map[old]` is the new index, or
    /// `None` for a rule that is gone (its candidates, open alerts and dedup state go too).
    pub fn remap_rules(&mut self, map: &[Option<usize>]) {
        let new = |rule: usize| map.get(rule).copied().flatten();
        // Candidates live within a batch; remapping happens between batches.
        self.candidates.clear();
        for alerts in self.open.values_mut() {
            *alerts = std::mem::take(alerts)
                .into_iter()
                .filter_map(|((rule, key), (mut f, text))| {
                    let r = new(rule)?;
                    f.rule = r;
                    Some(((r, key), (f, text)))
                })
                .collect();
        }
        self.open.retain(|_, alerts| !alerts.is_empty());
        self.recount();
        self.windows = std::mem::take(&mut self.windows)
            .into_iter()
            .filter_map(|((rule, identity, key), v)| Some(((new(rule)?, identity, key), v)))
            .collect();
    }

    /// Whether `identity` has an open state alert of one of `rules`.
    pub fn has_open_on(&self, identity: &str, rules: &[usize]) -> bool {
        !rules.is_empty()
            && self
                .open
                .get(identity)
                .is_some_and(|open| open.keys().any(|(rule, _)| rules.contains(rule)))
    }

    /// Open state alerts per rule index.
    pub fn open_state_counts(&self, rules: usize) -> Vec<usize> {
        let mut counts = self.open_counts.clone();
        counts.resize(rules, 0);
        counts
    }

    /// One evaluation: window findings of the window that closed, then (when it ran state
    /// rules) the state candidates of the identities snapshotted at it.
    pub fn evaluate(
        &mut self,
        rules: &[Rule],
        evaluation: Evaluation<'_>,
        render: &dyn Fn(&Finding) -> Rendered,
    ) -> Vec<Alert> {
        let Evaluation {
            now,
            mut window_findings,
            window_owners,
            snapshots,
            run_state,
            window_start,
        } = evaluation;
        if let Some(start) = window_start {
            self.sweep_windows(start);
        }
        // Candidates that fell due at an earlier window end, where this batch has no
        // evaluation, open there.
        let mut alerts = Vec::new();
        while let Some(&(at, ..)) = self.due.first() {
            let judged = self.judged_at(at);
            if judged >= now {
                break;
            }
            let mut opened = Vec::new();
            self.open_due(rules, judged, &mut opened, render);
            sort_state_alerts(&mut opened);
            alerts.extend(opened);
        }
        window_findings.sort_by(|a, b| {
            (a.rule, &a.identity, &a.key, a.opened_at).cmp(&(
                b.rule,
                &b.identity,
                &b.key,
                b.opened_at,
            ))
        });
        for finding in window_findings {
            let key = (finding.rule, finding.identity.clone(), finding.key.clone());
            let occurrences = match self.windows.get_mut(&key) {
                Some((last, suppressed))
                    if finding.opened_at < last.saturating_add(self.dedup_period) =>
                {
                    *suppressed += 1;
                    continue;
                }
                Some((last, suppressed)) => {
                    let n = *suppressed;
                    *last = finding.opened_at;
                    *suppressed = 0;
                    n
                }
                None => {
                    self.windows.insert(key, (finding.opened_at, 0));
                    0
                }
            };
            let owner = window_owners
                .get(&finding.identity)
                .cloned()
                .unwrap_or_default();
            let mut alert =
                make_alert(rules, &finding, &render(&finding), Status::Open, now, owner);
            alert.occurrences = Some(occurrences);
            alerts.push(alert);
        }
        if !run_state {
            return alerts;
        }

        let mut state = Vec::new();
        for snapshot in snapshots {
            self.apply_snapshot(rules, now, snapshot, &mut state, render);
        }
        self.open_due(rules, now, &mut state, render);
        sort_state_alerts(&mut state);
        alerts.extend(state);
        alerts
    }

    /// Forgets window dedup entries whose period ended by `before` with no repeat
    /// suppressed (contract §2.2): every later finding opens at or after `before`, so it
    /// would open a fresh alert with `occurrences` 0 either way. Entries that suppressed
    /// repeats stay until the next alert reports them. Swept when the entries doubled, so
    /// the cost per evaluation stays constant.
    fn sweep_windows(&mut self, before: Micros) {
        if self.windows.len() < 2 * self.windows_swept.max(1024) {
            return;
        }
        let period = self.dedup_period;
        self.windows.retain(|_, (last, suppressed)| {
            *suppressed > 0 || last.saturating_add(period) > before
        });
        self.windows_swept = self.windows.len();
    }

    /// The open state alerts of `identity`, or of every identity, as they opened (the
    /// owner and the moment they were detected are not kept: `detected_at` is their
    /// `opened_at`), in output order.
    pub fn open_alerts(&self, rules: &[Rule], identity: Option<&str>) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let chosen: Vec<&BTreeMap<LocalKey, (Finding, Rendered)>> = match identity {
            Some(identity) => self.open.get(identity).into_iter().collect(),
            None => self.open.values().collect(),
        };
        for (finding, text) in chosen.into_iter().flat_map(BTreeMap::values) {
            alerts.push(make_alert(
                rules,
                finding,
                text,
                Status::Open,
                finding.opened_at,
                Owner::default(),
            ));
        }
        sort_state_alerts(&mut alerts);
        alerts
    }

    /// Window dedup entries held (for tests and metrics).
    pub fn window_entries(&self) -> usize {
        self.windows.len()
    }

    /// Opens the queued candidates due by `now`, detected at `now`.
    fn open_due(
        &mut self,
        rules: &[Rule],
        now: Micros,
        out: &mut Vec<Alert>,
        render: &dyn Fn(&Finding) -> Rendered,
    ) {
        while let Some(first) = self.due.first() {
            if first.0 > now {
                break;
            }
            let Some((at, identity, rule, key)) = self.due.pop_first() else {
                break;
            };
            let current = self.candidates.get(&identity).and_then(|(list, _)| {
                list.iter()
                    .find(|f| f.rule == rule && f.key == key && f.due_at() == at)
            });
            let Some(finding) = current.cloned() else {
                continue;
            };
            let open = self.open.entry(identity.clone()).or_default();
            if open.contains_key(&(rule, key.clone())) {
                continue;
            }
            let owner = self.owners.get(&identity).cloned().unwrap_or_default();
            let text = render(&finding);
            out.push(make_alert(rules, &finding, &text, Status::Open, now, owner));
            open.insert((rule, key), (finding, text));
            counted(&mut self.open_counts, rule, true);
        }
    }

    /// Starts a batch whose last evaluation is at `horizon`.
    pub fn begin_batch(&mut self, horizon: Micros) {
        self.horizon = horizon;
    }

    /// Ends a batch: for each identity snapshotted in it that holds candidates due after
    /// the batch, the earliest due time. Those rows' text is not kept; the identity is
    /// snapshotted again then, and the fresh row opens the alert.
    pub fn end_batch(&mut self) -> Vec<(String, Micros)> {
        self.due.clear();
        let mut wake = Vec::new();
        for identity in std::mem::take(&mut self.touched) {
            let open = self.open.get(&identity);
            let next = self.candidates.get(&identity).and_then(|(list, later)| {
                list.iter()
                    .filter(|f| f.due_at() > self.horizon)
                    .filter(|f| !open.is_some_and(|o| o.contains_key(&(f.rule, f.key.clone()))))
                    .map(Finding::due_at)
                    .chain(*later)
                    .min()
            });
            if let Some(at) = next {
                wake.push((identity, at));
            }
        }
        self.candidates.clear();
        self.owners.clear();
        #[cfg(debug_assertions)]
        {
            let kept = self.open_counts.clone();
            self.recount();
            let trim = |c: &[usize]| c.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
            debug_assert_eq!(
                kept[..trim(&kept)],
                self.open_counts[..trim(&self.open_counts)]
            );
        }
        wake
    }

    fn apply_snapshot(
        &mut self,
        rules: &[Rule],
        now: Micros,
        snapshot: Snapshot,
        out: &mut Vec<Alert>,
        render: &dyn Fn(&Finding) -> Rendered,
    ) {
        let Snapshot {
            identity,
            owner,
            candidates,
            later,
        } = snapshot;
        self.owners.insert(identity.clone(), owner.clone());
        if !self.touched.contains(&identity) {
            self.touched.insert(identity.clone());
        }
        let open = self.open.entry(identity.clone()).or_default();
        let counts = &mut self.open_counts;
        if let Some((old, _)) = self.candidates.remove(&identity) {
            for f in old {
                // Only candidates due within the batch were queued.
                if f.due_at() <= self.horizon && !open.contains_key(&(f.rule, f.key.clone())) {
                    self.due
                        .remove(&(f.due_at(), identity.clone(), f.rule, f.key.clone()));
                }
            }
        }
        open.retain(|(rule, key), (opened, text)| {
            let holds = candidates.iter().any(|f| {
                f.rule == *rule
                    && &f.key == key
                    && f.opened_at == opened.opened_at
                    && f.due_at() <= now
            });
            if !holds {
                out.push(make_alert(
                    rules,
                    opened,
                    text,
                    Status::Resolved,
                    now,
                    owner.clone(),
                ));
                counted(counts, *rule, false);
            }
            holds
        });
        for finding in &candidates {
            let local = (finding.rule, finding.key.clone());
            if open.contains_key(&local) {
                continue;
            }
            if finding.due_at() <= now {
                let text = render(finding);
                out.push(make_alert(
                    rules,
                    finding,
                    &text,
                    Status::Open,
                    now,
                    owner.clone(),
                ));
                open.insert(local, (finding.clone(), text));
                counted(counts, finding.rule, true);
            } else if finding.due_at() <= self.horizon {
                self.due.insert((
                    finding.due_at(),
                    identity.clone(),
                    finding.rule,
                    finding.key.clone(),
                ));
            }
        }
        if open.is_empty() {
            self.open.remove(&identity);
        }
        if candidates.is_empty() && later.is_none() {
            self.candidates.remove(&identity);
        } else {
            self.candidates.insert(identity, (candidates, later));
        }
    }
}

/// One evaluation's state alerts in output order: per rule and entity key, a resolved
/// alert before the open one replacing it.
fn sort_state_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        (a.rule_index, &a.identity, &a.key, a.status == Status::Open).cmp(&(
            b.rule_index,
            &b.identity,
            &b.key,
            b.status == Status::Open,
        ))
    });
}

fn make_alert(
    rules: &[Rule],
    finding: &Finding,
    text: &Rendered,
    status: Status,
    now: Micros,
    owner: Owner,
) -> Alert {
    let rule = &rules[finding.rule];
    Alert {
        alert_id: alert_id(&rule.id, &finding.identity, &finding.key, finding.opened_at),
        rule_index: finding.rule,
        rule_id: rule.id.clone(),
        rule: rule.name.clone(),
        status,
        severity: rule.severity,
        identity: finding.identity.clone(),
        key: finding.key.clone(),
        opened_at: finding.opened_at,
        detected_at: now,
        window: finding.window,
        occurrences: None,
        summary: text.summary.clone(),
        evidence: text.evidence.clone(),
        owner,
        frameworks: rule.frameworks.clone(),
        remediation: rule.remediation.clone(),
    }
}
