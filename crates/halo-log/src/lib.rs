//! What halo writes to its log about the network, made safe and bounded.
//!
//! * [`Escaped`]: a value that came from the network (a Host header, a path,
//!   a DNS name, a peer's word) as it may appear in a log line: control
//!   characters, bidirectional overrides and bytes that are not UTF-8 are
//!   written as escapes, and a value with a space, `=` or `"` is quoted, so
//!   no client can end a line, forge a field (`status=200 pool=admin`), or
//!   send terminal escape sequences to whoever reads the log. Used for the
//!   text and the JSON format alike (JSON escapes again; harmless).
//! * [`Spell`]: events that can repeat at network speed (malformed packets,
//!   failed accepts) are logged once when a spell of them starts, then at most
//!   once a minute with how many were folded, and once when it ends: one line
//!   per spell, not per packet. The counters say how many.
//!
//! Nothing here reads a clock: `now` is an argument.

#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

/// A network value for a log line; see the crate docs.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(&'a [u8]);

/// Wraps a network value (a `&str`, `String`, `&[u8]`, ...) for logging.
pub fn escaped<T: AsRef<[u8]> + ?Sized>(value: &T) -> Escaped<'_> {
    Escaped(value.as_ref())
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quote = self.0.is_empty() || self.0.iter().any(|b| matches!(b, b' ' | b'=' | b'"'));
        if quote {
            f.write_str("\"")?;
        }
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            let mut plain = 0;
            for (i, c) in valid.char_indices() {
                let escape: Option<&dyn fmt::Display> = match c {
                    '\\' => Some(&"\\\\"),
                    '"' if quote => Some(&"\\\""),
                    '\n' => Some(&"\\n"),
                    '\r' => Some(&"\\r"),
                    '\t' => Some(&"\\t"),
                    c if needs_escape(c) => Some(&c.escape_unicode()),
                    _ => None,
                };
                if let Some(e) = escape {
                    f.write_str(&valid[plain..i])?;
                    write!(f, "{e}")?;
                    plain = i + c.len_utf8();
                }
            }
            f.write_str(&valid[plain..])?;
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if quote {
            f.write_str("\"")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional formatting
/// characters that can make a terminal show text other than what is there.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A spell of repeated events; see the crate docs.
#[derive(Debug, Clone)]
pub struct Spell {
    quiet: Duration,
    every: Duration,
    open: bool,
    last_event: Option<Instant>,
    last_line: Option<Instant>,
    folded: u64,
}

/// What a caller logs for an event, when [`Spell::event`] says to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Events since the last line that were not logged (0 for the first
    /// event of a spell that follows a fully reported one).
    pub folded: u64,
    /// This event starts a new spell (else the spell goes on; this line
    /// is its periodic reminder).
    pub starts: bool,
}

impl Spell {
    /// A spell ends after `quiet` without an event; while it lasts, a line
    /// is written at most once per minute.
    #[must_use]
    pub const fn new(quiet: Duration) -> Self {
        Self {
            quiet,
            every: Duration::from_secs(60),
            open: false,
            last_event: None,
            last_line: None,
            folded: 0,
        }
    }

    /// One event at `now`: `Some` when it is to be logged.
    pub fn event(&mut self, now: Instant) -> Option<Line> {
        let quiet_since = self
            .last_event
            .is_none_or(|t| now.saturating_duration_since(t) >= self.quiet);
        self.last_event = Some(now);
        if !self.open || quiet_since {
            self.open = true;
            self.last_line = Some(now);
            return Some(Line {
                folded: std::mem::take(&mut self.folded),
                starts: true,
            });
        }
        if self
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every)
        {
            self.last_line = Some(now);
            return Some(Line {
                folded: std::mem::take(&mut self.folded),
                starts: false,
            });
        }
        self.folded += 1;
        None
    }

    /// The condition behind the events is over (an accept succeeded): the
    /// number of events the spell had that were not logged, if a spell was
    /// open. The next event starts a new spell.
    pub fn end(&mut self) -> Option<u64> {
        if !self.open {
            return None;
        }
        self.open = false;
        Some(std::mem::take(&mut self.folded))
    }
}

/// A [`Spell`] shared between threads and tasks: a `static`, or a field of
/// shared state.
#[derive(Debug)]
pub struct SharedSpell(std::sync::Mutex<Spell>);

impl SharedSpell {
    /// See [`Spell::new`].
    #[must_use]
    pub const fn new(quiet: Duration) -> Self {
        Self(std::sync::Mutex::new(Spell::new(quiet)))
    }

    /// See [`Spell::event`].
    pub fn event(&self, now: Instant) -> Option<Line> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .event(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_values_cannot_forge_lines_fields_or_escapes() {
        let cases: [(&[u8], &str); 10] = [
            (b"app.example.com", "app.example.com"),
            (b"/a/b?c=d", "\"/a/b?c=d\""),
            (b"x status=200 pool=admin", "\"x status=200 pool=admin\""),
            (b"line\nforged", "line\\nforged"),
            (b"\x1b[31mred", "\\u{1b}[31mred"),
            (b"a\"b c", "\"a\\\"b c\""),
            (b"back\\slash", "back\\\\slash"),
            (b"bad\xffutf8", "bad\\xffutf8"),
            ("rtl\u{202e}gnp.exe".as_bytes(), "rtl\\u{202e}gnp.exe"),
            (b"", "\"\""),
        ];
        for (raw, shown) in cases {
            assert_eq!(escaped(raw).to_string(), shown, "{raw:?}");
        }
        // Unicode that displays as itself stays.
        assert_eq!(escaped("café").to_string(), "café");
    }

    #[test]
    fn a_spell_is_one_line_then_a_reminder_a_minute_then_its_end() {
        #[allow(clippy::disallowed_methods, reason = "the base of a virtual clock")]
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = Spell::new(Duration::from_secs(10));
        assert_eq!(
            s.event(at(0)),
            Some(Line {
                folded: 0,
                starts: true
            })
        );
        // 1,199 more within the minute: none logged.
        for i in 1..1200 {
            assert_eq!(s.event(at(i * 50)), None);
        }
        // Past a minute from the first line: a reminder with the count.
        assert_eq!(
            s.event(at(60_001)),
            Some(Line {
                folded: 1199,
                starts: false
            })
        );
        assert_eq!(s.event(at(60_002)), None);
        assert_eq!(s.end(), Some(1));
        assert_eq!(s.end(), None);
        // After an end, the next event starts a spell again.
        assert!(s.event(at(60_003)).is_some_and(|l| l.starts));
        // Quiet for longer than `quiet`: a new spell, with what the old one
        // folded and never reported.
        assert_eq!(s.event(at(60_004)), None);
        assert_eq!(
            s.event(at(80_000)),
            Some(Line {
                folded: 1,
                starts: true
            })
        );
    }
}
