//! JSON line writing: hand-rolled field encoding and the day buffer that orders events.
//!
//! Events are buffered a day at a time and written in (time, generation order), so the
//! output is sorted while memory stays bounded by about a day of traffic.

use std::io::{self, Write};

use super::catalog::DAY;

/// A value that can be written as the JSON field `,"key":value`.
pub(super) trait Field {
    fn put(self, key: &str, out: &mut String);
}

fn put_key(key: &str, out: &mut String) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
}

impl Field for &str {
    fn put(self, key: &str, out: &mut String) {
        put_key(key, out);
        push_json_str(out, self);
    }
}

impl Field for &String {
    fn put(self, key: &str, out: &mut String) {
        self.as_str().put(key, out);
    }
}

/// A timestamp field.
pub(super) struct At(pub(super) i64);

impl Field for At {
    fn put(self, key: &str, out: &mut String) {
        put_key(key, out);
        out.push('"');
        push_time(out, self.0);
        out.push('"');
    }
}

impl<S: AsRef<str>> Field for &[S] {
    fn put(self, key: &str, out: &mut String) {
        put_key(key, out);
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, v.as_ref());
        }
        out.push(']');
    }
}

impl<S: AsRef<str>> Field for &Vec<S> {
    fn put(self, key: &str, out: &mut String) {
        self.as_slice().put(key, out);
    }
}

impl<T: Field> Field for Option<T> {
    fn put(self, key: &str, out: &mut String) {
        if let Some(v) = self {
            v.put(key, out);
        }
    }
}

fn push_json_str(s: &mut String, v: &str) {
    s.push('"');
    // Generated values are plain ASCII; escaping is for the odd caller-supplied character.
    if v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        s.push_str(v);
    } else {
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if u32::from(c) < 0x20 => s.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => s.push(c),
            }
        }
    }
    s.push('"');
}

/// Decimal digits of `v`, zero-padded to `width`; avoids `fmt` machinery on the hot path.
fn push_num(s: &mut String, mut v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while v > 0 || i == tmp.len() {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    s.extend(std::iter::repeat_n(
        '0',
        width.saturating_sub(tmp.len() - i),
    ));
    s.extend(tmp[i..].iter().map(|&b| char::from(b)));
}

/// RFC 3339 UTC with second precision, e.g. `2026-01-01T00:00:00Z` (H. Hinnant's civil date).
pub(super) fn push_time(s: &mut String, t: i64) {
    let z = t.div_euclid(DAY) + 719_468;
    let secs = t.rem_euclid(DAY) as u64;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_num(s, year.clamp(0, 9999) as u64, 4);
    for (sep, v) in [
        ('-', month as u64),
        ('-', day as u64),
        ('T', secs / 3600),
        (':', secs / 60 % 60),
        (':', secs % 60),
    ] {
        s.push(sep);
        push_num(s, v, 2);
    }
    s.push('Z');
}

/// One generated event waiting to be written; `seq` keeps equal times in generation order.
struct Ev {
    t: i64,
    seq: u64,
    ty: &'static str,
    source: &'static str,
    who: u32,
    body: String,
}

/// The day buffer and the output it drains into.
pub(super) struct Stream<'a> {
    evs: Vec<Ev>,
    seq: u64,
    /// Start of the day being generated: everything earlier has been written already.
    pub(super) floor: i64,
    /// Seed of the run, which event ids carry and per-day generators are seeded from.
    pub(super) seed: u64,
    /// Unix seconds of the first day; days before it are a legacy identity's pre-history.
    pub(super) start: i64,
    out: &'a mut dyn Write,
    buf: String,
    count: u64,
}

impl<'a> Stream<'a> {
    /// An empty stream into `out`; nothing is written before the first `flush`.
    pub(super) fn new(seed: u64, start: i64, out: &'a mut dyn Write) -> Stream<'a> {
        Stream {
            evs: Vec::new(),
            seq: 0,
            floor: i64::MIN,
            seed,
            start,
            out,
            buf: String::new(),
            count: 0,
        }
    }

    /// Buffers one event; equal times keep push order, and none may precede the day start.
    pub(super) fn push(
        &mut self,
        t: i64,
        ty: &'static str,
        source: &'static str,
        who: u32,
        body: String,
    ) {
        debug_assert!(
            t >= self.floor,
            "{ty} at {t} is before the day start {}",
            self.floor
        );
        self.seq += 1;
        self.evs.push(Ev {
            t: t.max(self.floor),
            seq: self.seq,
            ty,
            source,
            who,
            body,
        });
    }

    /// Writes every buffered event earlier than `cutoff` in (time, sequence) order.
    pub(super) fn flush(&mut self, cutoff: i64, names: &[String]) -> io::Result<()> {
        self.evs.sort_unstable_by_key(|e| (e.t, e.seq));
        let n = self.evs.partition_point(|e| e.t < cutoff);
        for e in self.evs.drain(..n) {
            let b = &mut self.buf;
            b.push_str("{\"id\":\"evt-");
            push_num(b, self.seed, 1);
            b.push('-');
            push_num(b, self.count, 1);
            b.push_str("\",\"type\":\"");
            b.push_str(e.ty);
            b.push_str("\",\"time\":\"");
            push_time(b, e.t);
            b.push_str("\",\"source\":\"");
            b.push_str(e.source);
            b.push('"');
            if let Some(name) = names.get(e.who as usize) {
                b.push_str(",\"identity\":");
                push_json_str(b, name);
            }
            b.push_str(&e.body);
            b.push_str("}\n");
            self.count += 1;
            if b.len() >= 1 << 16 {
                self.out.write_all(b.as_bytes())?;
                b.clear();
            }
        }
        Ok(())
    }

    /// Writes everything still buffered and returns the number of events written.
    pub(super) fn finish(&mut self, names: &[String]) -> io::Result<u64> {
        self.flush(i64::MAX, names)?;
        self.out.write_all(self.buf.as_bytes())?;
        self.out.flush()?;
        Ok(self.count)
    }
}
