//! The health state machine of one server, sans-io: no sockets, no clock, no
//! randomness of its own. Time comes in as `now`, jitter from a seed.
//!
//! It follows HAProxy's check model. A counter `health` runs from 0 to
//! `rise + fall - 1`; the server is UP while `health >= rise`.
//!
//! ```text
//!   fully DOWN   rising          UP (falling)       fully UP
//!   0 ───ok──▶ 1 … rise-1 ──ok──▶ rise … ◀──fail── rise+fall-1
//!   ▲  fail anywhere below rise, or at rise: back to 0
//! ```
//!
//! A success adds one (reaching `rise` jumps to fully UP); a failure above `rise`
//! takes one away, at or below `rise` it drops to 0 (DOWN). Checks run every
//! `interval` when fully UP, every `down_interval` when fully DOWN, and every
//! `fast_interval` in between or before the first check.
//!
//! Passive input (errors seen on live traffic) and the admin state (ready,
//! drain, maint) are kept apart from this counter: drain and maint never change
//! health, they change whether the server gets traffic.

use std::time::{Duration, Instant};

use halo_config::{Check, InitialState, Passive};

/// What an operator asked for, independent of health (HAProxy's admin states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminState {
    /// Normal: gets traffic while UP.
    Ready,
    /// No new load-balanced traffic; existing and persistent traffic continues,
    /// and health checks keep running.
    Drain,
    /// No traffic and no checks.
    Maint,
}

impl AdminState {
    /// The spelling used by the CLI, API and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maint => "maint",
        }
    }
}

impl std::str::FromStr for AdminState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ready" => Ok(Self::Ready),
            "drain" => Ok(Self::Drain),
            "maint" => Ok(Self::Maint),
            other => Err(format!(
                "unknown admin state \"{other}\"; write ready, drain or maint"
            )),
        }
    }
}

/// Why the state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// An active check's result, with its detail (e.g. `L7STS 500`).
    Check(String),
    /// `error_limit` consecutive errors on live traffic.
    Passive {
        /// The errors counted.
        errors: u32,
    },
    /// A passive ejection (no active check) ran out.
    EjectionEnded,
    /// The admin state was set.
    Admin,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Check(detail) => write!(f, "check: {detail}"),
            Self::Passive { errors } => write!(f, "{errors} consecutive errors on live traffic"),
            Self::EjectionEnded => f.write_str("passive ejection ended"),
            Self::Admin => f.write_str("admin state set"),
        }
    }
}

/// A change of health or admin state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// UP before.
    pub was_up: bool,
    /// UP now.
    pub up: bool,
    /// Admin state before.
    pub was_admin: AdminState,
    /// Admin state now.
    pub admin: AdminState,
    /// Why.
    pub reason: Reason,
}

/// The timing and thresholds the machine needs; from `[pool.check]` and
/// `[pool.passive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Active check timing; `None` = passive health only.
    pub active: Option<ActiveParams>,
    /// Passive outlier detection.
    pub passive: Passive,
}

/// The active part of [`Params`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveParams {
    /// See [`Check::interval`].
    pub interval: Duration,
    /// See [`Check::fast_interval`].
    pub fast_interval: Duration,
    /// See [`Check::down_interval`].
    pub down_interval: Duration,
    /// See [`Check::rise`].
    pub rise: u32,
    /// See [`Check::fall`].
    pub fall: u32,
    /// See [`Check::initial`].
    pub initial: InitialState,
    /// See [`Check::spread_percent`].
    pub spread_percent: u8,
}

impl Params {
    /// Params for a pool's (or endpoint's) check and passive settings.
    #[must_use]
    pub fn new(check: Option<&Check>, passive: Passive) -> Self {
        Self {
            active: check.map(|c| ActiveParams {
                interval: c.interval,
                fast_interval: c.fast_interval,
                down_interval: c.down_interval,
                rise: c.rise,
                fall: c.fall,
                initial: c.initial,
                spread_percent: c.spread_percent,
            }),
            passive,
        }
    }
}

/// One server's health.
#[derive(Debug, Clone)]
pub struct Machine {
    params: Params,
    /// HAProxy's counter, `0..=rise+fall-1` (fixed at `max` without active checks).
    health: u32,
    admin: AdminState,
    /// When the next active check starts; `None` while one runs, in maint, or
    /// without active checks.
    next_check: Option<Instant>,
    /// Passive ejection (only without active checks): until when.
    ejected_until: Option<Instant>,
    /// Ejections in a row, for the doubling; reset after a quiet period.
    ejections: u32,
    last_return: Option<Instant>,
    rng: u64,
}

impl Machine {
    /// A machine in its initial state at `now`; `seed` drives the check jitter.
    #[must_use]
    pub fn new(params: Params, now: Instant, seed: u64) -> Self {
        let mut m = Self {
            params,
            health: 0,
            admin: AdminState::Ready,
            next_check: None,
            ejected_until: None,
            ejections: 0,
            last_return: None,
            // xorshift must not start at 0.
            rng: seed | 1,
        };
        m.reset(now);
        m
    }

    /// Applies the initial state and schedules the first check: at startup and
    /// when leaving maint (HAProxy re-applies `init-state` then too).
    fn reset(&mut self, now: Instant) {
        self.ejected_until = None;
        self.health = match self.params.active {
            None => 1,
            Some(a) => match a.initial {
                InitialState::FullyUp => a.rise + a.fall - 1,
                InitialState::Up => a.rise,
                InitialState::Down => a.rise - 1,
                InitialState::FullyDown => 0,
            },
        };
        // Spread the first checks of many servers over the first interval so
        // they do not fire in lockstep.
        self.next_check = self.params.active.map(|a| {
            let first = a.fast_interval.min(a.interval);
            now + first.mul_f64(self.unit_random())
        });
    }

    /// Whether the server is UP (health, not admin state).
    #[must_use]
    pub fn is_up(&self) -> bool {
        if self.ejected_until.is_some() {
            return false;
        }
        match self.params.active {
            None => true,
            Some(a) => self.health >= a.rise,
        }
    }

    /// The admin state.
    #[must_use]
    pub fn admin(&self) -> AdminState {
        self.admin
    }

    /// Whether new load-balanced traffic may go to the server.
    #[must_use]
    pub fn is_serving(&self) -> bool {
        self.admin == AdminState::Ready && self.is_up()
    }

    /// When [`Self::handle_timeout`] must next be called, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_check, self.ejected_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances timers. Returns whether an active check should start now, and
    /// any transition (an ejection running out).
    pub fn handle_timeout(&mut self, now: Instant) -> (bool, Option<Transition>) {
        let mut transition = None;
        if self.ejected_until.is_some_and(|t| t <= now) {
            let before = self.snapshot();
            self.ejected_until = None;
            self.last_return = Some(now);
            transition = self.transition(before, Reason::EjectionEnded);
        }
        let start = self.next_check.is_some_and(|t| t <= now);
        if start {
            // Nothing is scheduled while the check runs; the result reschedules.
            self.next_check = None;
        }
        (start, transition)
    }

    /// Feeds an active check's result. `detail` is kept for the reason.
    pub fn on_check_result(&mut self, ok: bool, detail: &str, now: Instant) -> Option<Transition> {
        let a = self.params.active?;
        if self.admin == AdminState::Maint {
            // A check that was running when maint was set: ignore it.
            return None;
        }
        let before = self.snapshot();
        let full = a.rise + a.fall - 1;
        if ok {
            if self.health < full {
                self.health += 1;
                if self.health >= a.rise {
                    self.health = full;
                }
            }
        } else if self.health > a.rise {
            self.health -= 1;
        } else {
            self.health = 0;
        }
        self.schedule(now);
        self.transition(before, Reason::Check(detail.to_owned()))
    }

    /// An active check could not run (this host is out of resources): no
    /// verdict, the next check comes after the usual interval.
    pub fn on_check_skipped(&mut self, now: Instant) {
        if self.params.active.is_some() && self.admin != AdminState::Maint {
            self.schedule(now);
        }
    }

    /// `error_limit` consecutive errors were seen on live traffic: mark the server
    /// DOWN. With active checks it stays DOWN until they bring it back (and the
    /// next check comes at `fast_interval`); without, it is ejected for a time
    /// that doubles with each ejection in a row, up to `max_ejection_time`.
    pub fn on_passive_limit(&mut self, errors: u32, now: Instant) -> Option<Transition> {
        if !self.is_up() || self.admin == AdminState::Maint {
            return None;
        }
        let before = self.snapshot();
        match self.params.active {
            Some(a) => {
                self.health = 0;
                if self.next_check.is_some() {
                    self.next_check = Some(now + self.jittered(a.fast_interval));
                }
            }
            None => {
                let p = self.params.passive;
                // A server that has served quietly for `max_ejection_time` since it
                // last came back starts again from the base ejection time.
                if self
                    .last_return
                    .is_some_and(|t| now.duration_since(t) >= p.max_ejection_time)
                {
                    self.ejections = 0;
                }
                let factor = 1u32 << self.ejections.min(16);
                let time = p
                    .ejection_time
                    .saturating_mul(factor)
                    .min(p.max_ejection_time);
                self.ejections = self.ejections.saturating_add(1);
                self.ejected_until = Some(now + time);
            }
        }
        self.transition(before, Reason::Passive { errors })
    }

    /// Sets the admin state. Maint stops checks; leaving maint re-applies the
    /// initial state with a check soon, as HAProxy does.
    pub fn set_admin(&mut self, admin: AdminState, now: Instant) -> Option<Transition> {
        if admin == self.admin {
            return None;
        }
        let before = self.snapshot();
        let leaving_maint = self.admin == AdminState::Maint;
        self.admin = admin;
        if admin == AdminState::Maint {
            self.next_check = None;
        } else if leaving_maint {
            self.reset(now);
            // The operator just put it back: find out now, not in an interval.
            if self.next_check.is_some() {
                self.next_check = Some(now);
            }
        }
        self.transition(before, Reason::Admin)
    }

    fn schedule(&mut self, now: Instant) {
        let Some(a) = self.params.active else { return };
        if self.admin == AdminState::Maint {
            return;
        }
        let full = a.rise + a.fall - 1;
        // The first check's timing is set by `reset`; this runs after a result.
        let base = if self.health == full {
            a.interval
        } else if self.health == 0 {
            a.down_interval
        } else {
            a.fast_interval
        };
        self.next_check = Some(now + self.jittered(base));
    }

    /// `base` moved randomly by up to ±`spread_percent`.
    fn jittered(&mut self, base: Duration) -> Duration {
        let spread = self.params.active.map_or(0, |a| a.spread_percent);
        if spread == 0 {
            return base;
        }
        let offset = (self.unit_random() * 2.0 - 1.0) * f64::from(spread) / 100.0;
        base.mul_f64(1.0 + offset)
    }

    /// Uniform in [0, 1), from xorshift64*.
    fn unit_random(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // The top 53 bits fill an f64 mantissa exactly.
        #[allow(clippy::cast_precision_loss)]
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }

    fn snapshot(&self) -> (bool, AdminState) {
        (self.is_up(), self.admin)
    }

    fn transition(
        &self,
        (was_up, was_admin): (bool, AdminState),
        reason: Reason,
    ) -> Option<Transition> {
        let (up, admin) = self.snapshot();
        (was_up != up || was_admin != admin).then_some(Transition {
            was_up,
            up,
            was_admin,
            admin,
            reason,
        })
    }
}

#[cfg(test)]
mod tests;
