//! Event-time values: microseconds since the Unix epoch, parsed from and written as RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Microseconds per second.
pub const SECOND: Micros = 1_000_000;

/// Parses an RFC 3339 timestamp (any offset) into UTC microseconds.
pub fn parse_rfc3339(text: &str) -> Option<Micros> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    Some(parsed.timestamp_micros())
}

/// Formats UTC microseconds as RFC 3339 with `Z`, with fractional digits only when needed.
pub fn format_rfc3339(micros: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        // Out of chrono's range: only reachable for absurd thresholds; keep it visible.
        None => format!("{micros}us"),
    }
}

/// Formats a duration in microseconds the way config writes it (`90d`, `1h`, `5m`, `30s`).
pub fn format_duration(micros: Micros) -> String {
    const UNITS: [(Micros, &str); 4] = [
        (86_400 * SECOND, "d"),
        (3_600 * SECOND, "h"),
        (60 * SECOND, "m"),
        (SECOND, "s"),
    ];
    for (size, unit) in UNITS {
        if micros != 0 && micros % size == 0 {
            return format!("{}{unit}", micros / size);
        }
    }
    if micros % 1_000 == 0 {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{micros}us")
    }
}

/// Formats a length of time approximately, for people: `2.5d`, `3.0h`, `12.0m`, `4.2s`.
pub fn format_approx(micros: Micros) -> String {
    const UNITS: [(Micros, &str); 3] = [
        (86_400 * SECOND, "d"),
        (3_600 * SECOND, "h"),
        (60 * SECOND, "m"),
    ];
    for (size, unit) in UNITS {
        if micros.abs() >= size {
            return format!("{:.1}{unit}", micros as f64 / size as f64);
        }
    }
    format!("{:.1}s", micros as f64 / SECOND as f64)
}

/// Parses a duration such as `90d`, `24h`, `5m`, `30s`, `250ms` or `1h30m` into microseconds.
pub fn parse_duration(text: &str) -> Option<Micros> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total: Micros = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: Micros = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "d" => 86_400 * SECOND,
            "h" => 3_600 * SECOND,
            "m" => 60 * SECOND,
            "s" => SECOND,
            "ms" => 1_000,
            "us" => 1,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, micros) in [
            ("90d", 90 * 86_400 * SECOND),
            ("1h30m", 5_400 * SECOND),
            ("5m", 300 * SECOND),
            ("250ms", 250_000),
        ] {
            assert_eq!(parse_duration(text), Some(micros), "{text}");
        }
        assert_eq!(format_duration(90 * 86_400 * SECOND), "90d");
        assert_eq!(format_duration(5_400 * SECOND), "90m");
        for bad in ["", "d", "5", "5x", "-5m", "5m3"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_normalise_to_utc() {
        let t = parse_rfc3339("2026-03-01T12:00:00+02:00").expect("valid");
        assert_eq!(format_rfc3339(t), "2026-03-01T10:00:00Z");
        assert_eq!(format_rfc3339(t + 1_500), "2026-03-01T10:00:00.001500Z");
        assert_eq!(parse_rfc3339("2026-03-01 12:00"), None);
    }
}
