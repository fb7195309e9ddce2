//! Rate-limited logging: a condition that repeats (a broker that stays unreachable, a
//! burst of late events) is logged when it first happens, then at most once per period
//! with a count of the occurrences folded into that line, so an hour-long outage writes
//! tens of lines, not a hundred thousand.

use std::time::{Duration, Instant};

/// The throttle of one kind of log line.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// At most one line per `period`.
    pub const fn new(period: Duration) -> Self {
        Throttle {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// Records one occurrence at `now`. Returns `Some(n)` when this one should be logged,
    /// `n` being the occurrences suppressed since the last logged one; `None` when it is
    /// folded into the next line.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Occurrences suppressed since the last logged one, taken (for a closing summary,
    /// e.g. when the condition ends).
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_period_with_the_count() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(0));
        for s in 1..10 {
            assert_eq!(t.hit(start + Duration::from_secs(s)), None);
        }
        assert_eq!(t.hit(start + Duration::from_secs(10)), Some(9));
        assert_eq!(t.hit(start + Duration::from_secs(11)), None);
        assert_eq!(t.take_suppressed(), 1);
        assert_eq!(t.take_suppressed(), 0);
    }
}
