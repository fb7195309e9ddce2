//! What the pipeline tells about its state when asked (contract §9): the moment its
//! inventory stands at, and its open findings. Read-only.

use super::{Options, Pipeline};
use crate::alert::Alert;
use crate::event::Micros;

impl Pipeline {
    /// The event time the inventory stands at: the last evaluation's *now*. Every event
    /// up to it is applied, none after it (events the watermark has not passed yet wait).
    pub fn as_of(&self) -> Option<Micros> {
        self.last_eval
    }

    /// The tumbling window holding `t`.
    pub fn window_at(&self, t: Micros) -> (Micros, Micros) {
        self.clock.window_of(t)
    }

    /// The open state alerts of `identity`, or of every identity (see
    /// [`crate::alert::lifecycle::Lifecycle::open_alerts`]).
    pub fn open_state_alerts(&self, identity: Option<&str>) -> Vec<Alert> {
        self.lifecycle.open_alerts(self.rules(), identity)
    }

    /// The settings it runs with.
    pub fn options(&self) -> &Options {
        &self.options
    }
}
