//! Prometheus metrics (contract §6): every name, help text and label in one place, on an
//! explicit registry. Labels are bounded (topic, reason, rule, severity, status); known
//! label values start at zero so dashboards see every series from the first scrape.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::alert::{Alert, Status};
use crate::engine::rule::{Posture, Rule};
use crate::event::Reason;
use crate::pipeline::{Pipeline, Stats};

/// Buckets of rule and evaluation durations: 100 µs to 10 s.
const DURATION_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];
/// Buckets of checkpoint durations: 1 ms to 60 s.
const CHECKPOINT_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0];

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    pub events_consumed: IntCounterVec,
    /// Records of `[[sources]]` topics, per format and outcome (`adapted`, a skip reason,
    /// or `rejected`).
    pub adapter_records: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub events_late: IntCounter,
    pub events_duplicate: IntCounter,
    pub consumer_lag: IntGaugeVec,
    pub watermark: Gauge,
    pub last_event: Gauge,
    pub evaluations: IntCounter,
    pub evaluation_duration: Histogram,
    pub rule_duration: HistogramVec,
    pub alerts_emitted: IntCounterVec,
    pub producer_errors: IntCounter,
    pub checkpoint_duration: Histogram,
    pub checkpoint_size: IntGauge,
    pub checkpoint_age: Gauge,
    pub ready: IntGauge,
    pub tasks_assigned: IntGauge,
    pub task_restore: Histogram,
    pub rebalances: IntCounterVec,
    pub state_written: IntCounter,
    pub state_write_errors: IntCounter,
    pub transactions: IntCounterVec,
    pub identities: IntGauge,
    pub credentials: IntGauge,
    pub credentials_active: IntGauge,
    pub open_alerts: IntGaugeVec,
    pub rotation_overdue: IntGauge,
    pub rotation_overdue_ratio: Gauge,
    pub without_owner_pair: IntGauge,
    pub recertification_overdue: IntGauge,
}

/// Registers `metric` (built from valid, unique names: a failure is a bug here).
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    registered(
        registry,
        IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    registered(
        registry,
        Gauge::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    registered(
        registry,
        IntGauge::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn int_gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    registered(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric"),
    )
}

impl Metrics {
    /// All metrics, with every known label value (input topics, reject reasons, rules ×
    /// severity × status) at zero.
    pub fn new(input_topics: &[String], rules: &[Rule]) -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            events_consumed: counter_vec(
                &r,
                "nhi_drift_events_consumed_total",
                "Records read from each input topic, accepted or not.",
                &["topic"],
            ),
            adapter_records: counter_vec(
                &r,
                "nhi_drift_adapter_records_total",
                "Records of adapted source topics ([[sources]]), per format and outcome: adapted, a skip reason, or rejected.",
                &["format", "outcome"],
            ),
            events_rejected: counter_vec(
                &r,
                "nhi_drift_events_rejected_total",
                "Records rejected to the dead-letter topic, by reason code.",
                &["reason"],
            ),
            events_late: counter(
                &r,
                "nhi_drift_events_late_total",
                "Events whose window had already closed: applied to the inventory, in no window.",
            ),
            events_duplicate: counter(
                &r,
                "nhi_drift_events_duplicate_total",
                "Redelivered events ignored because their id was seen before.",
            ),
            consumer_lag: int_gauge_vec(
                &r,
                "nhi_drift_consumer_lag_records",
                "Records in each input topic not yet read (end offsets as last fetched).",
                &["topic"],
            ),
            watermark: gauge(
                &r,
                "nhi_drift_watermark_timestamp_seconds",
                "The event-time watermark, as Unix time.",
            ),
            last_event: gauge(
                &r,
                "nhi_drift_last_event_timestamp_seconds",
                "The largest accepted event time, as Unix time.",
            ),
            evaluations: counter(
                &r,
                "nhi_drift_evaluations_total",
                "Evaluations run: window closes (window and state rules) and state-only ones.",
            ),
            evaluation_duration: histogram(
                &r,
                "nhi_drift_evaluation_duration_seconds",
                "Time to run all rules over one evaluation batch (one or more closed windows).",
                &DURATION_BUCKETS,
            ),
            rule_duration: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "nhi_drift_rule_evaluation_duration_seconds",
                        "Time one rule's query took over one evaluation batch.",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["rule"],
                )
                .expect("valid metric"),
            ),
            alerts_emitted: counter_vec(
                &r,
                "nhi_drift_alerts_emitted_total",
                "Alerts emitted, by rule id, severity and status (open or resolved).",
                &["rule", "severity", "status"],
            ),
            producer_errors: counter(
                &r,
                "nhi_drift_producer_errors_total",
                "Alert or dead-letter records the broker did not acknowledge (each is sent again).",
            ),
            checkpoint_duration: histogram(
                &r,
                "nhi_drift_checkpoint_duration_seconds",
                "Time to take a checkpoint: settle deliveries, write state, commit offsets.",
                &CHECKPOINT_BUCKETS,
            ),
            checkpoint_size: int_gauge(
                &r,
                "nhi_drift_checkpoint_size_bytes",
                "Size of the last checkpoint written.",
            ),
            checkpoint_age: gauge(
                &r,
                "nhi_drift_checkpoint_age_seconds",
                "Seconds since the last checkpoint was written (or since start).",
            ),
            ready: int_gauge(
                &r,
                "nhi_drift_ready",
                "1 while /readyz answers ready, else 0.",
            ),
            tasks_assigned: int_gauge(
                &r,
                "nhi_drift_tasks_assigned",
                "Tasks (partition p of the input topics) this instance runs.",
            ),
            task_restore: histogram(
                &r,
                "nhi_drift_task_restore_duration_seconds",
                "Time an assignment took to restore its tasks' state (from the state topic, \
                 or held here) before reading resumed.",
                &CHECKPOINT_BUCKETS,
            ),
            rebalances: counter_vec(
                &r,
                "nhi_drift_rebalances_total",
                "Consumer group rebalances seen, by kind (assigned, revoked).",
                &["kind"],
            ),
            state_written: counter(
                &r,
                "nhi_drift_state_written_bytes_total",
                "Bytes of task state written to the state topic.",
            ),
            state_write_errors: counter(
                &r,
                "nhi_drift_state_write_errors_total",
                "Checkpoints whose task state the state topic did not take (retried at the \
                 next checkpoint; offsets are not committed meanwhile).",
            ),
            transactions: counter_vec(
                &r,
                "nhi_drift_transactions_total",
                "Kafka transactions ended with kafka.exactly_once, by outcome (committed, or \
                 aborted and sent again).",
                &["outcome"],
            ),
            identities: int_gauge(
                &r,
                "nhi_drift_identities_tracked",
                "Non-human identities in the inventory.",
            ),
            credentials: int_gauge(
                &r,
                "nhi_drift_credentials_tracked",
                "Credentials in the inventory, whatever their status.",
            ),
            credentials_active: int_gauge(
                &r,
                "nhi_drift_credentials_active",
                "Credentials active at the watermark.",
            ),
            open_alerts: int_gauge_vec(
                &r,
                "nhi_drift_open_alerts",
                "Open state findings, by rule id and severity.",
                &["rule", "severity"],
            ),
            rotation_overdue: int_gauge(
                &r,
                "nhi_drift_credentials_rotation_overdue",
                "Active credentials overdue for rotation (open NHI-ROT-001 findings).",
            ),
            rotation_overdue_ratio: gauge(
                &r,
                "nhi_drift_credentials_rotation_overdue_ratio",
                "Credentials overdue for rotation over active credentials (0 when none are active).",
            ),
            without_owner_pair: int_gauge(
                &r,
                "nhi_drift_identities_without_owner_pair",
                "Identities not offboarded that lack a business owner or a technical custodian.",
            ),
            recertification_overdue: int_gauge(
                &r,
                "nhi_drift_identities_recertification_overdue",
                "Identities past their recertification cadence (open NHI-GOV-002 findings).",
            ),
            registry: r,
        };
        let build = int_gauge_vec(
            &m.registry,
            "nhi_drift_build_info",
            "Always 1; the version that is running.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for format in crate::adapt::Format::ADAPTED {
            m.adapter_records
                .with_label_values(&[format.as_str(), "adapted"])
                .reset();
        }
        for topic in input_topics {
            m.events_consumed.with_label_values(&[topic]).reset();
            m.consumer_lag.with_label_values(&[topic]).set(0);
        }
        for kind in ["assigned", "revoked"] {
            m.rebalances.with_label_values(&[kind]).reset();
        }
        for outcome in ["committed", "aborted"] {
            m.transactions.with_label_values(&[outcome]).reset();
        }
        for reason in Reason::ALL {
            m.events_rejected
                .with_label_values(&[reason.as_str()])
                .reset();
        }
        for rule in rules {
            let severity = rule.severity.as_str();
            m.open_alerts
                .with_label_values(&[&rule.id, severity])
                .set(0);
            m.rule_duration.with_label_values(&[&rule.id]);
            for status in Status::ALL {
                m.alerts_emitted
                    .with_label_values(&[&rule.id, severity, status.as_str()])
                    .reset();
            }
        }
        m
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Names, types and help of every metric family, for `docs/metrics.md`.
    pub fn describe(&self) -> Vec<(String, String, String, Vec<String>)> {
        self.registry
            .gather()
            .iter()
            .map(|family| {
                let labels = family
                    .get_metric()
                    .first()
                    .map(|m| m.get_label().iter().map(|l| l.name().to_owned()).collect())
                    .unwrap_or_default();
                (
                    family.name().to_owned(),
                    format!("{:?}", family.get_field_type()).to_lowercase(),
                    family.help().to_owned(),
                    labels,
                )
            })
            .collect()
    }

    /// Counts a Kafka transaction ended with `outcome` (`committed` or `aborted`).
    pub fn transaction(&self, outcome: &str) {
        self.transactions.with_label_values(&[outcome]).inc();
    }

    /// Counts an alert sent.
    pub fn alert(&self, alert: &Alert) {
        self.alerts_emitted
            .with_label_values(&[
                &alert.rule_id,
                alert.severity.as_str(),
                alert.status.as_str(),
            ])
            .inc();
    }

    /// Observes one evaluation batch: its total time and each rule's.
    pub fn evaluation(&self, took: Duration, rules: &BTreeMap<String, Duration>) {
        self.evaluation_duration.observe(took.as_secs_f64());
        for (rule, t) in rules {
            self.rule_duration
                .with_label_values(&[rule])
                .observe(t.as_secs_f64());
        }
    }

    /// Advances the counters by the pipeline's counts since they were last taken
    /// ([`Pipeline::take_counts`]).
    pub fn count(&self, counts: &Stats) {
        for (reason, n) in &counts.rejected {
            self.events_rejected
                .with_label_values(&[reason.as_str()])
                .inc_by(*n);
        }
        self.events_late.inc_by(counts.late);
        self.events_duplicate.inc_by(counts.duplicates);
        self.evaluations.inc_by(counts.evaluations);
    }

    /// Brings the gauges up to date from the pipelines of every task (their sums; event
    /// time is the slowest task's).
    pub fn sync(&self, pipelines: &[&Pipeline]) {
        let seconds = |t: i64| t as f64 / 1e6;
        // The instance's event time is its slowest task's.
        if let Some(w) = pipelines.iter().filter_map(|p| p.watermark()).min() {
            self.watermark.set(seconds(w));
        }
        if let Some(t) = pipelines.iter().filter_map(|p| p.max_event_time()).max() {
            self.last_event.set(seconds(t));
        }
        // Every gauge is kept up to date by the pipelines: reading them costs nothing,
        // however large the inventory.
        let sum = |f: &dyn Fn(&crate::inventory::Inventory) -> usize| {
            pipelines.iter().map(|p| f(p.inventory())).sum::<usize>() as i64
        };
        self.identities.set(sum(&|i| i.identity_count()));
        self.credentials.set(sum(&|i| i.credential_count()));
        let active = sum(&|i| i.active_credentials());
        self.credentials_active.set(active);
        self.without_owner_pair
            .set(sum(&|i| i.identities_without_owner_pair()));
        let (mut overdue, mut recertification) = (0, 0);
        let mut open: Vec<usize> = Vec::new();
        for pipeline in pipelines {
            for (i, (_, count)) in pipeline.open_alerts().into_iter().enumerate() {
                if open.len() <= i {
                    open.resize(i + 1, 0);
                }
                open[i] += count;
            }
        }
        for (meta, open) in pipelines
            .first()
            .map_or(&[][..], |p| p.rules())
            .iter()
            .zip(open)
        {
            self.open_alerts
                .with_label_values(&[&meta.id, meta.severity.as_str()])
                .set(open as i64);
            match meta.posture {
                Some(Posture::RotationOverdue) => overdue += open as i64,
                Some(Posture::RecertificationOverdue) => recertification += open as i64,
                None => {}
            }
        }
        self.recertification_overdue.set(recertification);
        self.rotation_overdue.set(overdue);
        self.rotation_overdue_ratio.set(if active > 0 {
            overdue as f64 / active as f64
        } else {
            0.0
        });
    }
}
