//! The event-time clock (contract §2): watermark, tumbling windows, lateness.
//!
//! A replay reads one stream, and its watermark is exactly the contract's: the largest
//! accepted event time minus the allowed lateness. The Kafka service reads many streams
//! (one per partition) whose fetches interleave arbitrarily, so a partition that is read
//! ahead must not make a slower one's events late: while a stream still has records to
//! deliver, the watermark also stays at or below that stream's own largest time minus the
//! lateness. A stream that has caught up (nothing more to read) no longer holds it back.
//! An event is late when its window has closed, or when it is older than its own stream
//! allows — a rule about the stream alone, so the same input gives the same late events
//! however its partitions interleave.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Micros;

/// One input stream (a Kafka partition; a replay has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stream {
    /// Largest event time; `None` until the stream delivers an event.
    max_time: Option<Micros>,
    /// Whether the stream has delivered everything there is to read for now.
    #[serde(skip)]
    caught_up: bool,
}

/// Watermark = largest accepted event time − allowed lateness, held back by streams that
/// are behind; windows are aligned to the Unix epoch and close when the watermark reaches
/// their end. The watermark never moves back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    window: Micros,
    lateness: Micros,
    max_time: Option<Micros>,
    streams: BTreeMap<u32, Stream>,
    watermark: Option<Micros>,
}

impl Clock {
    /// A clock with `window` size and `lateness` allowance (both > 0 / ≥ 0, checked by config).
    pub fn new(window: Micros, lateness: Micros) -> Self {
        Clock {
            window: window.max(1),
            lateness: lateness.max(0),
            max_time: None,
            streams: BTreeMap::new(),
            watermark: None,
        }
    }

    /// The window size and the allowed lateness.
    pub fn settings(&self) -> (Micros, Micros) {
        (self.window, self.lateness)
    }

    /// The window `[start, end)` holding `t`.
    pub fn window_of(&self, t: Micros) -> (Micros, Micros) {
        let start = t.div_euclid(self.window) * self.window;
        (start, start.saturating_add(self.window))
    }

    /// The current watermark, once any event was seen.
    pub fn watermark(&self) -> Option<Micros> {
        self.watermark
    }

    /// Largest accepted event time so far.
    pub fn max_time(&self) -> Option<Micros> {
        self.max_time
    }

    /// Whether an event at `t` from `stream` is late: its window has closed, or its own
    /// stream's watermark has passed the window's end.
    pub fn is_late(&self, t: Micros, stream: u32) -> bool {
        self.late_by(t, stream).is_some()
    }

    /// When an event at `t` from `stream` is late (see [`Clock::is_late`]), how far it is
    /// behind the watermark that makes it late.
    pub fn late_by(&self, t: Micros, stream: u32) -> Option<Micros> {
        let own = self
            .streams
            .get(&stream)
            .and_then(|s| s.max_time)
            .map(|m| m.saturating_sub(self.lateness));
        let wm = self.watermark.max(own)?;
        (self.window_of(t).1 <= wm).then(|| wm.saturating_sub(t))
    }

    /// Advances the clock with an accepted event's time from `stream`.
    pub fn observe(&mut self, t: Micros, stream: u32) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        let s = self.streams.entry(stream).or_insert(Stream {
            max_time: None,
            caught_up: false,
        });
        s.max_time = Some(s.max_time.map_or(t, |m| m.max(t)));
        s.caught_up = false;
        self.recompute();
    }

    /// Announces a stream that has records to deliver: until it delivers the first one
    /// (or catches up), it holds the watermark where it is.
    pub fn register(&mut self, stream: u32) {
        self.streams
            .entry(stream)
            .or_insert(Stream {
                max_time: None,
                caught_up: false,
            })
            .caught_up = false;
    }

    /// Forgets a stream this instance no longer reads (its partition was revoked).
    pub fn forget(&mut self, stream: u32) {
        if self.streams.remove(&stream).is_some() {
            self.recompute();
        }
    }

    /// Marks `stream` as caught up (or not): a caught-up stream does not hold the watermark.
    pub fn set_caught_up(&mut self, stream: u32, caught_up: bool) {
        if let Some(s) = self.streams.get_mut(&stream)
            && s.caught_up != caught_up
        {
            s.caught_up = caught_up;
            self.recompute();
        }
    }

    /// Whether there are streams and every one has caught up (nothing more to read).
    pub fn all_caught_up(&self) -> bool {
        !self.streams.is_empty() && self.streams.values().all(|s| s.caught_up)
    }

    /// Moves the largest event time to at least `t`, read on streams of another task: the
    /// watermark follows it as far as this clock's own streams that are behind allow.
    pub fn follow(&mut self, t: Micros) {
        if self.max_time.is_some_and(|m| m >= t) {
            return;
        }
        self.max_time = Some(t);
        self.recompute();
    }

    /// Moves event time to at least `t` without an event (the idle-advance policy).
    pub fn advance(&mut self, t: Micros) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        for s in self.streams.values_mut() {
            s.caught_up = true;
        }
        self.recompute();
    }

    fn recompute(&mut self) {
        let Some(max) = self.max_time else {
            return;
        };
        let mut bound = max;
        for s in self.streams.values().filter(|s| !s.caught_up) {
            match s.max_time {
                Some(t) => bound = bound.min(t),
                // A stream behind that has not delivered yet: nothing is known to be over.
                None => return,
            }
        }
        let candidate = bound.saturating_sub(self.lateness);
        self.watermark = Some(self.watermark.map_or(candidate, |w| w.max(candidate)));
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
        clock.observe(10 * MIN, 0);
        assert_eq!(clock.watermark(), Some(5 * MIN));
        assert!(clock.is_late(4 * MIN + 59_000_000, 0));
        assert!(!clock.is_late(5 * MIN, 0));
        clock.observe(3 * MIN, 0);
        assert_eq!(
            clock.watermark(),
            Some(5 * MIN),
            "watermark never moves back"
        );
    }

    #[test]
    fn a_stream_behind_holds_the_watermark_until_it_catches_up() {
        let mut clock = Clock::new(MIN, 5 * MIN);
        clock.observe(10 * MIN, 0);
        clock.observe(100 * MIN, 1);
        assert_eq!(clock.watermark(), Some(5 * MIN), "stream 0 is behind");
        // Stream 0's next event is on time for stream 0, whatever stream 1 did.
        assert!(!clock.is_late(9 * MIN, 0));
        // Stream 1's own lateness applies to stream 1.
        assert!(clock.is_late(90 * MIN, 1));
        clock.set_caught_up(0, true);
        assert_eq!(clock.watermark(), Some(95 * MIN));
        // A new record on stream 0 is behind again but the watermark never moves back.
        clock.observe(11 * MIN, 0);
        assert_eq!(clock.watermark(), Some(95 * MIN));
        assert!(clock.is_late(11 * MIN, 0), "its window has closed");
    }

    #[test]
    fn a_stream_that_has_not_delivered_yet_holds_the_watermark() {
        let mut clock = Clock::new(MIN, 5 * MIN);
        clock.register(1);
        clock.observe(100 * MIN, 0);
        assert_eq!(clock.watermark(), None);
        assert!(!clock.is_late(10 * MIN, 1));
        clock.set_caught_up(1, true);
        assert_eq!(clock.watermark(), Some(95 * MIN));
        clock.forget(0);
        assert_eq!(clock.watermark(), Some(95 * MIN), "never moves back");
    }

    #[test]
    fn another_tasks_time_moves_the_watermark_as_far_as_own_streams_allow() {
        let mut clock = Clock::new(MIN, 5 * MIN);
        clock.observe(10 * MIN, 0);
        clock.follow(50 * MIN);
        assert_eq!(clock.watermark(), Some(5 * MIN), "stream 0 is behind");
        clock.set_caught_up(0, true);
        assert_eq!(clock.watermark(), Some(45 * MIN));
        clock.follow(20 * MIN);
        assert_eq!(clock.max_time(), Some(50 * MIN), "never moves back");
    }

    #[test]
    fn advancing_without_events_moves_the_watermark() {
        let mut clock = Clock::new(MIN, 5 * MIN);
        clock.observe(10 * MIN, 0);
        clock.advance(20 * MIN);
        assert_eq!(clock.watermark(), Some(15 * MIN));
        assert_eq!(clock.max_time(), Some(20 * MIN));
    }
}
