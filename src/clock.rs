//! The event-time clock (contract §2): watermark, tumbling windows, lateness.

use crate::event::Micros;

/// Watermark = largest accepted event time − allowed lateness; windows are aligned to
/// the Unix epoch and close when the watermark reaches their end.
#[derive(Debug, Clone)]
pub struct Clock {
    window: Micros,
    lateness: Micros,
    max_time: Option<Micros>,
}

impl Clock {
    /// A clock with `window` size and `lateness` allowance (both > 0 / ≥ 0, checked by config).
    pub fn new(window: Micros, lateness: Micros) -> Self {
        Clock {
            window: window.max(1),
            lateness: lateness.max(0),
            max_time: None,
        }
    }

    /// The window `[start, end)` holding `t`.
    pub fn window_of(&self, t: Micros) -> (Micros, Micros) {
        let start = t.div_euclid(self.window) * self.window;
        (start, start.saturating_add(self.window))
    }

    /// The current watermark, once any event was seen.
    pub fn watermark(&self) -> Option<Micros> {
        self.max_time.map(|m| m.saturating_sub(self.lateness))
    }

    /// Largest accepted event time so far.
    pub fn max_time(&self) -> Option<Micros> {
        self.max_time
    }

    /// Whether an event at `t` is late: its window has already closed.
    pub fn is_late(&self, t: Micros) -> bool {
        self.watermark().is_some_and(|wm| self.window_of(t).1 <= wm)
    }

    /// Advances the clock with an accepted event's time.
    pub fn observe(&mut self, t: Micros) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
    }

    /// Restores the largest event time (from a checkpoint).
    pub fn restore(&mut self, max_time: Option<Micros>) {
        self.max_time = max_time;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Micros = 60_000_000;

    #[test]
    fn windows_align_and_lateness_is_by_closed_window() {
        let mut clock = Clock::new(MIN, 5 * MIN);
        assert_eq!(clock.window_of(90_000_000), (MIN, 2 * MIN));
        assert_eq!(clock.window_of(-1), (-MIN, 0));
        clock.observe(10 * MIN);
        assert_eq!(clock.watermark(), Some(5 * MIN));
        assert!(clock.is_late(4 * MIN + 59_000_000));
        assert!(!clock.is_late(5 * MIN));
        clock.observe(3 * MIN);
        assert_eq!(
            clock.watermark(),
            Some(5 * MIN),
            "watermark never moves back"
        );
    }
}
