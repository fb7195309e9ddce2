//! [`Moment`]: an optional event time in eight bytes.
//!
//! The inventory holds several optional times per credential and per identity. As
//! `Option<i64>` each takes sixteen bytes; a moment takes eight, with `i64::MIN` (never a
//! decoded event time, which lies within years 0000 to 9999) standing for "none". It is
//! written exactly as an `Option<i64>` would be, so checkpoints do not change.

use serde::{Deserialize, Serialize};

use crate::event::Micros;

/// An event time, or none.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Option<Micros>", into = "Option<Micros>")]
pub struct Moment(Micros);

impl Moment {
    /// No time.
    pub const NONE: Moment = Moment(Micros::MIN);

    /// The time `t`.
    pub fn at(t: Micros) -> Moment {
        debug_assert!(t != Micros::MIN, "i64::MIN is not an event time");
        Moment(t)
    }

    /// The time, if any.
    pub fn get(self) -> Option<Micros> {
        (self.0 != Micros::MIN).then_some(self.0)
    }

    pub fn is_some(self) -> bool {
        self.0 != Micros::MIN
    }

    pub fn is_none(self) -> bool {
        self.0 == Micros::MIN
    }

    /// Whether there is a time and `f` holds for it.
    pub fn is_some_and(self, f: impl FnOnce(Micros) -> bool) -> bool {
        self.get().is_some_and(f)
    }

    /// Whether there is no time or `f` holds for it.
    pub fn is_none_or(self, f: impl FnOnce(Micros) -> bool) -> bool {
        self.get().is_none_or(f)
    }

    /// Sets the time to `t` unless one is set (`Option::get_or_insert`).
    pub fn or_set(&mut self, t: Micros) {
        if self.is_none() {
            *self = Moment::at(t);
        }
    }

    /// The later of the time and `t` (`t` when there is none).
    pub fn max_with(self, t: Micros) -> Moment {
        Moment::at(self.get().map_or(t, |c| c.max(t)))
    }
}

impl Default for Moment {
    fn default() -> Self {
        Moment::NONE
    }
}

impl From<Option<Micros>> for Moment {
    fn from(t: Option<Micros>) -> Self {
        t.map_or(Moment::NONE, Moment::at)
    }
}

impl From<Moment> for Option<Micros> {
    fn from(m: Moment) -> Self {
        m.get()
    }
}

impl std::fmt::Debug for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_round_trips_like_the_option_it_stands_for() {
        for t in [
            None,
            Some(0),
            Some(-1),
            Some(1_767_225_600_000_000),
            Some(i64::MAX),
        ] {
            let m = Moment::from(t);
            assert_eq!(m.get(), t);
            assert_eq!(m.is_some(), t.is_some());
            let bytes = postcard::to_allocvec(&m).unwrap();
            assert_eq!(bytes, postcard::to_allocvec(&t).unwrap());
            assert_eq!(postcard::from_bytes::<Moment>(&bytes).unwrap(), m);
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                serde_json::to_string(&t).unwrap()
            );
        }
        assert_eq!(std::mem::size_of::<Moment>(), 8);
        let mut m = Moment::NONE;
        m.or_set(5);
        m.or_set(7);
        assert_eq!(m.get(), Some(5));
        assert_eq!(m.max_with(3).get(), Some(5));
        assert_eq!(Moment::NONE.max_with(3).get(), Some(3));
    }
}
