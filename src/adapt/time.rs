//! Timestamps as sources write them: RFC 3339 (with or without a zone), `YYYY-MM-DD
//! HH:MM:SS[.f]`, AWS's `Jul 10, 2023, 12:09:47 PM`, and epoch numbers in seconds,
//! milliseconds, microseconds or nanoseconds (also as strings, as OTLP JSON writes them).

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use crate::event::Micros;

/// Parses a timestamp value of any of the supported forms into UTC microseconds.
pub fn parse(value: &Value) -> Option<Micros> {
    match value {
        Value::String(s) => parse_str(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                epoch(i)
            } else {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e12)
                    .map(|f| (f * 1e6) as Micros)
            }
        }
        _ => None,
    }
}

/// Parses a timestamp string (see the module doc).
pub fn parse_str(text: &str) -> Option<Micros> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok().and_then(epoch);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    // ISO 8601 forms chrono's RFC 3339 parser refuses (`+0000`, no colon).
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_micros());
        }
    }
    let naive = text.strip_suffix(" UTC").unwrap_or(text);
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%b %d, %Y, %I:%M:%S %p",
        "%b %d, %Y %I:%M:%S %p",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// An epoch number by magnitude: seconds, milliseconds, microseconds or nanoseconds.
fn epoch(n: i64) -> Option<Micros> {
    let abs = n.unsigned_abs();
    let micros = if abs < 100_000_000_000 {
        n.checked_mul(1_000_000)?
    } else if abs < 100_000_000_000_000 {
        n.checked_mul(1_000)?
    } else if abs < 100_000_000_000_000_000 {
        n
    } else {
        n / 1_000
    };
    // Keep within what RFC 3339 can write (years 0..=9999).
    (-62_135_596_800_000_000..=253_402_300_799_000_000)
        .contains(&micros)
        .then_some(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::time::parse_rfc3339;

    fn at(text: &str) -> Micros {
        parse_rfc3339(text).expect("valid")
    }

    #[test]
    fn every_supported_form_parses() {
        let t = at("2023-07-10T12:09:47Z");
        assert_eq!(parse_str("2023-07-10T12:09:47Z"), Some(t));
        assert_eq!(parse_str("2023-07-10T12:09:47"), Some(t));
        assert_eq!(parse_str("2023-07-10 12:09:47"), Some(t));
        assert_eq!(parse_str("2023-07-10T12:09:47+00:00"), Some(t));
        assert_eq!(parse_str("2023-07-10T12:09:47+0000"), Some(t));
        assert_eq!(parse_str("Jul 10, 2023, 12:09:47 PM"), Some(t));
        assert_eq!(parse_str("Jul 10, 2023 12:09:47 PM"), Some(t));
        assert_eq!(parse(&Value::from(1_688_990_987)), Some(t));
        assert_eq!(parse(&Value::from(1_688_990_987_000_i64)), Some(t));
        assert_eq!(parse_str("1688990987000000000"), Some(t));
    }

    #[test]
    fn nonsense_is_none() {
        for text in ["", "yesterday", "N/A", "2023-13-40T00:00:00Z"] {
            assert_eq!(parse_str(text), None, "{text}");
        }
        assert_eq!(parse(&Value::Bool(true)), None);
        assert_eq!(parse(&Value::from(-1e300)), None);
    }
}
