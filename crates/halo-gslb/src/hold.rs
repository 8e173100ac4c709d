//! Hold-down: an endpoint that went down is answered again only once it has
//! stayed up for its service's `hold_down`, so answers do not flap faster
//! than resolvers cache them (an app flapping every half second used to
//! change the answer on every flip). Going down takes effect at once: a
//! dead endpoint leaves the answers as fast as its health says so.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One endpoint's recent health.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its health as last judged (before the hold).
    up: bool,
    /// Since when it has been so.
    since: Instant,
    /// It came back after being down, and the hold is not over yet.
    returning: bool,
    /// Judged since the last [`Holds::end_round`].
    seen: bool,
}

/// The hold-down state of every endpoint, by service name and address (a
/// reload keeps it for the services it keeps).
#[derive(Debug, Clone, Default)]
pub struct Holds {
    entries: HashMap<(String, IpAddr), Entry>,
}

impl Holds {
    /// Whether to answer `address` of `service` now, given its health `up`
    /// and the service's `hold`. An endpoint seen up the first time is
    /// answered at once (nothing to hold it against).
    pub fn judge(
        &mut self,
        service: &str,
        address: IpAddr,
        up: bool,
        hold: Duration,
        now: Instant,
    ) -> bool {
        let e = self
            .entries
            .entry((service.to_owned(), address))
            .or_insert(Entry {
                up,
                since: now,
                returning: false,
                seen: true,
            });
        e.seen = true;
        if e.up != up {
            e.up = up;
            e.since = now;
            e.returning = up;
        }
        if e.returning && now.saturating_duration_since(e.since) >= hold {
            e.returning = false;
        }
        up && !e.returning
    }

    /// When the next held endpoint may be answered again (`hold` per
    /// service name), for the caller's timer.
    #[must_use]
    pub fn next_change(&self, hold: impl Fn(&str) -> Duration) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|(_, e)| e.up && e.returning)
            .map(|((service, _), e)| e.since + hold(service))
            .min()
    }

    /// Forgets the services no longer configured.
    pub fn retain_services(&mut self, services: &[String]) {
        self.entries.retain(|(s, _), _| services.contains(s));
    }

    /// Ends a round of judging every endpoint: an endpoint not judged in it
    /// is gone (a peer stopped publishing it), and so is its hold, which
    /// would otherwise fall due again and again.
    pub fn end_round(&mut self) {
        self.entries.retain(|_, e| std::mem::take(&mut e.seen));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_is_held_a_loss_is_not_and_flapping_is_one_change() {
        #[allow(clippy::disallowed_methods, reason = "the base of a virtual clock")]
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let hold = Duration::from_secs(5);
        let mut h = Holds::default();
        // (ms, health, answered)
        let script = [
            (0, true, true),       // first seen up: answered at once
            (1_000, false, false), // down: out at once
            (1_500, true, false),  // back: held
            (4_000, true, false),
            (6_499, true, false),
            (6_500, true, true), // up for 5 s: answered again
            (7_000, false, false),
        ];
        for (ms, up, answered) in script {
            assert_eq!(h.judge("svc", a, up, hold, at(ms)), answered, "at {ms} ms");
        }
        assert_eq!(h.next_change(|_| hold), None);
        // An app flapping every 500 ms for 10 s: out the whole time, so the
        // answer changed once (at 7 s above), not 20 times.
        let mut answered = Vec::new();
        for i in 0..20u64 {
            let ms = 7_500 + i * 500;
            answered.push(h.judge("svc", a, i % 2 == 0, hold, at(ms)));
        }
        assert!(answered.iter().all(|x| !x), "{answered:?}");
        assert_eq!(h.next_change(|_| hold), None); // last flip was down
        assert!(!h.judge("svc", a, true, hold, at(17_500)));
        assert_eq!(h.next_change(|_| hold), Some(at(22_500)));
        assert!(h.judge("svc", a, true, hold, at(22_500)));
        // No hold: answered as health says.
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!h.judge("svc", b, false, Duration::ZERO, at(0)));
        assert!(h.judge("svc", b, true, Duration::ZERO, at(1)));
        // An endpoint no longer judged (gone from the answers) is forgotten
        // at the end of the round, its pending hold with it.
        h.end_round();
        assert!(!h.judge("svc", a, false, hold, at(23_000)));
        assert!(!h.judge("svc", a, true, hold, at(23_500)));
        assert_eq!(h.next_change(|_| hold), Some(at(28_500)));
        h.end_round();
        h.end_round();
        assert_eq!(h.next_change(|_| hold), None);
        h.retain_services(&[]);
        assert_eq!(h.next_change(|_| hold), None);
        assert!(
            h.judge("svc", a, true, hold, at(30_000)),
            "forgotten: first seen"
        );
    }
}
