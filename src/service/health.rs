//! What `/healthz` and `/readyz` report: shared, lock-light service status.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a broker error keeps the service unready unless something succeeds after it.
const ERROR_HOLD: Duration = Duration::from_secs(30);

/// Service status shared between the poll thread, the pipeline task and HTTP.
#[derive(Debug)]
pub struct Health {
    /// Set on shutdown: the poll thread stops polling.
    pub stopping: Arc<AtomicBool>,
    assigned: AtomicUsize,
    restored: AtomicBool,
    idle: AtomicBool,
    /// Why the service refuses to consume (a setup error only an operator can fix).
    refused: Mutex<Option<String>>,
    /// Why task state cannot be kept (the state topics do not fit the input topics).
    state_topics: Mutex<Option<String>>,
    /// The latest broker or delivery problem, and the latest success after any problem.
    problem: Mutex<(Option<(Instant, String)>, Instant)>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            stopping: Arc::new(AtomicBool::new(false)),
            assigned: AtomicUsize::new(0),
            restored: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            refused: Mutex::new(None),
            state_topics: Mutex::new(None),
            problem: Mutex::new((None, Instant::now())),
        }
    }
}

impl Health {
    /// The shutdown flag, for the signal watcher.
    pub fn stopping_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stopping)
    }

    /// Partitions currently assigned.
    pub fn set_assigned(&self, n: usize) {
        self.assigned.store(n, Ordering::Relaxed);
    }

    /// State was restored (or there was nothing to restore).
    pub fn set_restored(&self) {
        self.restored.store(true, Ordering::Relaxed);
    }

    /// Whether the last poll found nothing to read.
    pub fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
        if !idle {
            self.ok();
        }
    }

    /// Whether the last poll found nothing to read.
    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// The service refuses to consume, and why (`None`: it no longer does).
    pub fn set_refused(&self, why: Option<String>) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused = why;
        }
    }

    /// The state topics do not fit the input topics, and why (`None`: they do).
    pub fn set_state_topics(&self, why: Option<String>) {
        if let Ok(mut problem) = self.state_topics.lock() {
            *problem = why;
        }
    }

    /// Whether the service refuses to consume.
    pub fn is_refused(&self) -> bool {
        self.refused.lock().is_ok_and(|r| r.is_some())
    }

    /// A broker or delivery problem.
    pub fn broker_error(&self, what: &str) {
        self.problem(format!("broker: {what}"));
    }

    /// No broker can be reached.
    pub fn broker_unreachable(&self, what: &str) {
        self.problem(format!("broker unreachable: {what}"));
    }

    fn problem(&self, text: String) {
        if let Ok(mut p) = self.problem.lock() {
            p.0 = Some((Instant::now(), text.chars().take(300).collect()));
        }
    }

    /// Something reached the broker and came back.
    pub fn ok(&self) {
        if let Ok(mut p) = self.problem.lock() {
            p.1 = Instant::now();
        }
    }

    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Some("shutting down".into());
        }
        if !self.restored.load(Ordering::Relaxed) {
            return Some("restoring state".into());
        }
        // A setup error stands however healthy the broker is.
        if let Ok(refused) = self.refused.lock()
            && let Some(why) = refused.as_ref()
        {
            return Some(why.clone());
        }
        if let Ok(problem) = self.state_topics.lock()
            && let Some(why) = problem.as_ref()
        {
            return Some(format!("state topics: {why}"));
        }
        // A broker problem explains missing partitions too, so it is named first.
        if let Ok(p) = self.problem.lock()
            && let Some((at, what)) = &p.0
            && *at >= p.1
            && at.elapsed() < ERROR_HOLD
        {
            return Some(what.clone());
        }
        if self.assigned.load(Ordering::Relaxed) == 0 {
            return Some("no partitions assigned".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_topics_that_do_not_fit_are_named_until_they_do() {
        let h = Health::default();
        h.set_restored();
        h.set_assigned(3);
        assert_eq!(h.not_ready(), None);
        h.set_state_topics(Some(
            "g.state has 2 partitions and the input topics 6".into(),
        ));
        assert_eq!(
            h.not_ready().as_deref(),
            Some("state topics: g.state has 2 partitions and the input topics 6")
        );
        h.set_state_topics(None);
        assert_eq!(h.not_ready(), None);
    }

    #[test]
    fn ready_needs_state_partitions_and_a_healthy_broker() {
        let h = Health::default();
        assert_eq!(h.not_ready().as_deref(), Some("restoring state"));
        h.set_restored();
        assert_eq!(h.not_ready().as_deref(), Some("no partitions assigned"));
        h.set_assigned(3);
        assert_eq!(h.not_ready(), None);
        h.broker_error("delivering to nhi.alerts: timed out");
        assert_eq!(
            h.not_ready().as_deref(),
            Some("broker: delivering to nhi.alerts: timed out")
        );
        std::thread::sleep(Duration::from_millis(2));
        h.ok();
        assert_eq!(h.not_ready(), None);
        h.set_assigned(0);
        h.broker_unreachable("1/1 brokers are down");
        assert_eq!(
            h.not_ready().as_deref(),
            Some("broker unreachable: 1/1 brokers are down"),
            "the broker is why no partitions are assigned"
        );
    }

    #[test]
    fn a_refusal_is_the_reason_until_it_is_lifted() {
        let h = Health::default();
        h.set_restored();
        h.set_assigned(3);
        h.set_refused(Some("input partition counts differ".into()));
        h.ok();
        assert_eq!(
            h.not_ready().as_deref(),
            Some("input partition counts differ")
        );
        h.set_refused(None);
        assert_eq!(h.not_ready(), None);
    }
}
