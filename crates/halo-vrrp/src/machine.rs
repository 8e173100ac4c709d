//! One virtual router's state machine (RFC 9568 §6.4, with keepalived's
//! `preempt_delay` and a FAULT state for tracking), driven by
//! [`Router::handle`]: inputs and the time in, [`Action`]s out.
//!
//! The caller sends what [`Action::Send`] asks on the wire, adds or removes
//! the addresses, and calls `handle(Input::Tick, now)` at
//! [`Router::next_deadline`].

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::packet::Version;

/// What does not change while the router runs (a reload makes a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Protocol version (version 2 intervals are whole seconds).
    pub version: Version,
    /// Priority as configured, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Advertisement_Interval.
    pub interval: Duration,
    /// Take over from a lower-priority master.
    pub preempt: bool,
    /// Wait this long after first hearing a lower-priority master before
    /// taking over from it (keepalived's `preempt_delay`).
    pub preempt_delay: Duration,
    /// This router's primary address: the tie-break between equal priorities
    /// (the higher address wins, compared as an unsigned number).
    pub primary: IpAddr,
    /// Accept_Mode: whether a master that does not own the addresses
    /// accepts packets sent to them (RFC 9568 §6.1; see
    /// [`Router::accepts_traffic`]).
    pub accept: bool,
}

/// RFC states, plus FAULT (a tracked object without weight is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started, or stopped.
    Initialize,
    /// Listening to a master.
    Backup,
    /// Holding the addresses and advertising.
    Master,
    /// Out of the election until the fault clears.
    Fault,
}

impl State {
    /// keepalived's name for it, for logs and `notify`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Start (the Startup event).
    Start,
    /// Time passed; call at [`Router::next_deadline`] (or any time).
    Tick,
    /// A valid advertisement for this VRID from another router.
    Advert {
        /// The sender's address (the tie-break).
        from: IpAddr,
        /// Its priority (0 = leaving).
        priority: u8,
        /// Its advertisement interval.
        interval: Duration,
    },
    /// The effective priority changed (tracking with a weight), 1..=254;
    /// an owner (255) keeps 255.
    Priority(u8),
    /// A tracked object without weight went down (true) or came back (false).
    Fault(bool),
    /// Stop (the Shutdown event): a master says priority 0 first.
    Shutdown,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0 = leaving).
    Send {
        /// Priority to put in it.
        priority: u8,
    },
    /// Became master: add the virtual addresses and announce them
    /// (gratuitous ARP / unsolicited NA).
    AddAddresses,
    /// No longer master: remove the virtual addresses.
    RemoveAddresses,
    /// The state changed (logs, `notify`).
    Transition {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
}

/// One virtual router.
#[derive(Debug, Clone)]
pub struct Router {
    settings: Settings,
    state: State,
    priority: u8,
    master_adver_interval: Duration,
    /// Backup: when the master is declared down.
    down_at: Option<Instant>,
    /// Master: when the next advertisement is due.
    adver_at: Option<Instant>,
    /// Backup with preempt_delay: since when a lower-priority master is heard.
    lower_since: Option<Instant>,
    faulted: bool,
}

impl Router {
    /// A router in Initialize; nothing happens until [`Input::Start`].
    #[must_use]
    pub fn new(settings: Settings) -> Self {
        Self {
            priority: settings.priority,
            master_adver_interval: settings.interval,
            settings,
            state: State::Initialize,
            down_at: None,
            adver_at: None,
            lower_since: None,
            faulted: false,
        }
    }

    /// Current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority.
    #[must_use]
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// When [`Input::Tick`] next has something to do.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Backup => self.down_at,
            State::Master => self.adver_at,
            State::Initialize | State::Fault => None,
        }
    }

    /// Whether packets to the virtual addresses may be accepted now (RFC
    /// 9568 §6.4.3): only as master, and only when this router owns them
    /// (priority 255) or Accept_Mode is on. In every other state the
    /// addresses are not held at all.
    #[must_use]
    pub fn accepts_traffic(&self) -> bool {
        self.state == State::Master && (self.settings.accept || self.settings.priority == 255)
    }

    /// Skew_Time for this router's priority.
    #[must_use]
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - u32::from(self.priority);
        match self.settings.version {
            Version::V3 => self.master_adver_interval * weight / 256,
            Version::V2 => Duration::from_secs(1) * weight / 256,
        }
    }

    /// Master_Down_Interval: three of the master's intervals plus the skew.
    #[must_use]
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_interval + self.skew_time()
    }

    /// Applies `input` at `now`; appends what to do to `out`.
    pub fn handle(&mut self, input: Input, now: Instant, out: &mut Vec<Action>) {
        match input {
            Input::Start => {
                if self.state == State::Initialize {
                    self.start(now, out);
                }
            }
            Input::Tick => self.tick(now, out),
            Input::Advert {
                from,
                priority,
                interval,
            } => self.advert(from, priority, interval, now, out),
            Input::Priority(p) => {
                if self.settings.priority != 255 {
                    let p = p.clamp(1, 254);
                    if p != self.priority {
                        self.priority = p;
                        if self.state == State::Master {
                            // Tell backups now: a higher one may preempt.
                            out.push(Action::Send { priority: p });
                            self.adver_at = Some(now + self.settings.interval);
                        }
                    }
                }
            }
            Input::Fault(down) => {
                if down && !self.faulted {
                    self.faulted = true;
                    self.leave(State::Fault, out);
                } else if !down && self.faulted {
                    self.faulted = false;
                    self.go(State::Initialize, out);
                    self.start(now, out);
                }
            }
            Input::Shutdown => self.leave(State::Initialize, out),
        }
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.faulted {
            self.go(State::Fault, out);
        } else if self.priority == 255 {
            self.become_master(now, out);
        } else {
            self.master_adver_interval = self.settings.interval;
            self.down_at = Some(now + self.master_down_interval());
            // keepalived delays preemption at startup too.
            self.lower_since = Some(now);
            self.go(State::Backup, out);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.state {
            State::Backup if self.down_at.is_some_and(|t| now >= t) => self.become_master(now, out),
            State::Master if self.adver_at.is_some_and(|t| now >= t) => {
                out.push(Action::Send {
                    priority: self.priority,
                });
                self.adver_at = Some(now + self.settings.interval);
            }
            _ => {}
        }
    }

    fn advert(
        &mut self,
        from: IpAddr,
        priority: u8,
        interval: Duration,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        // Version 2 has no interval learning: the configured one must match
        // (RFC 3768 discards a mismatch; keepalived logs it). Use ours.
        let interval = match self.settings.version {
            Version::V3 if !interval.is_zero() => interval,
            _ => self.settings.interval,
        };
        match self.state {
            State::Backup => {
                if priority == 0 {
                    self.down_at = Some(now + self.skew_time());
                    return;
                }
                let lower = priority < self.priority;
                let delaying =
                    lower && self.settings.preempt && !self.settings.preempt_delay.is_zero() && {
                        let since = *self.lower_since.get_or_insert(now);
                        now < since + self.settings.preempt_delay
                    };
                if !self.settings.preempt || !lower || delaying {
                    if !lower {
                        self.lower_since = None;
                    }
                    self.master_adver_interval = interval;
                    self.down_at = Some(now + self.master_down_interval());
                }
                // Otherwise the lower master is ignored and the timer runs out.
            }
            State::Master => {
                let wins = priority > self.priority
                    || (priority == self.priority && priority != 0 && from > self.settings.primary);
                if priority == 0 {
                    out.push(Action::Send {
                        priority: self.priority,
                    });
                    self.adver_at = Some(now + self.settings.interval);
                } else if wins {
                    self.adver_at = None;
                    self.master_adver_interval = interval;
                    self.down_at = Some(now + self.master_down_interval());
                    self.lower_since = None;
                    out.push(Action::RemoveAddresses);
                    self.go(State::Backup, out);
                } else {
                    // RFC 9568: answer a lower master at once, so it (and
                    // learning bridges) hear the rightful one.
                    out.push(Action::Send {
                        priority: self.priority,
                    });
                    self.adver_at = Some(now + self.settings.interval);
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn become_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Send {
            priority: self.priority,
        });
        out.push(Action::AddAddresses);
        self.down_at = None;
        self.lower_since = None;
        self.adver_at = Some(now + self.settings.interval);
        self.go(State::Master, out);
    }

    /// To `to` from any state; a master says priority 0 and drops the addresses.
    fn leave(&mut self, to: State, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::Send { priority: 0 });
            out.push(Action::RemoveAddresses);
        }
        self.down_at = None;
        self.adver_at = None;
        self.lower_since = None;
        self.go(to, out);
    }

    fn go(&mut self, to: State, out: &mut Vec<Action>) {
        if self.state != to {
            out.push(Action::Transition {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(priority: u8, version: Version) -> Settings {
        Settings {
            version,
            priority,
            interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary: IpAddr::from([192, 0, 2, 1]),
            accept: false,
        }
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "an epoch; time then moves by hand"
    )]
    fn epoch() -> Instant {
        Instant::now()
    }

    #[test]
    fn the_address_owner_is_master_at_once() {
        let mut r = Router::new(settings(255, Version::V3));
        let mut out = Vec::new();
        r.handle(Input::Start, epoch(), &mut out);
        assert_eq!(r.state(), State::Master);
        assert_eq!(
            out[..2],
            [Action::Send { priority: 255 }, Action::AddAddresses]
        );
        // Tracking never lowers an owner.
        out.clear();
        r.handle(Input::Priority(50), epoch(), &mut out);
        assert_eq!(r.priority(), 255);
        // An owner accepts traffic without Accept_Mode.
        assert!(r.accepts_traffic());
    }

    #[test]
    fn only_a_master_with_accept_mode_or_ownership_accepts_traffic() {
        let t = epoch();
        for accept in [false, true] {
            let mut s = settings(100, Version::V3);
            s.accept = accept;
            let mut r = Router::new(s);
            let mut out = Vec::new();
            r.handle(Input::Start, t, &mut out);
            assert!(!r.accepts_traffic(), "backup");
            let down = r.next_deadline().unwrap();
            r.handle(Input::Tick, down, &mut out);
            assert_eq!(r.state(), State::Master);
            assert_eq!(r.accepts_traffic(), accept, "master, accept = {accept}");
        }
    }

    #[test]
    fn timers_follow_the_rfc() {
        // Priority 100, 1 s: skew 156/256 s, Master_Down_Interval 3.609375 s.
        let r = Router::new(settings(100, Version::V3));
        assert_eq!(r.skew_time(), Duration::from_micros(609_375));
        assert_eq!(r.master_down_interval(), Duration::from_micros(3_609_375));
        // Version 2: the skew is in seconds whatever the interval.
        let mut s = settings(100, Version::V2);
        s.interval = Duration::from_secs(3);
        let r = Router::new(s);
        assert_eq!(r.skew_time(), Duration::from_micros(609_375));
        assert_eq!(r.master_down_interval(), Duration::from_micros(9_609_375));
    }

    #[test]
    fn a_fault_says_priority_zero_and_gives_the_addresses_up() {
        let t = epoch();
        let mut r = Router::new(settings(100, Version::V3));
        let mut out = Vec::new();
        r.handle(Input::Start, t, &mut out);
        let down = r.next_deadline().unwrap();
        r.handle(Input::Tick, down, &mut out);
        assert_eq!(r.state(), State::Master);
        out.clear();
        r.handle(Input::Fault(true), down, &mut out);
        assert_eq!(r.state(), State::Fault);
        assert_eq!(
            out,
            [
                Action::Send { priority: 0 },
                Action::RemoveAddresses,
                Action::Transition {
                    from: State::Master,
                    to: State::Fault
                }
            ]
        );
        assert_eq!(r.next_deadline(), None, "out of the election");
        out.clear();
        r.handle(Input::Fault(false), down, &mut out);
        assert_eq!(r.state(), State::Backup, "back in as a backup first");
    }

    #[test]
    fn a_master_answers_a_lower_one_and_yields_to_a_higher_or_equal_higher_address() {
        let t = epoch();
        let mut r = Router::new(settings(255, Version::V3));
        let mut out = Vec::new();
        r.handle(Input::Start, t, &mut out);
        let mut r = Router::new(settings(100, Version::V3));
        r.handle(Input::Start, t, &mut out);
        let at = r.next_deadline().unwrap();
        r.handle(Input::Tick, at, &mut out);
        out.clear();
        let advert = |from: [u8; 4], priority| Input::Advert {
            from: IpAddr::from(from),
            priority,
            interval: Duration::from_secs(1),
        };
        r.handle(advert([192, 0, 2, 9], 50), at, &mut out);
        assert_eq!(
            out,
            [Action::Send { priority: 100 }],
            "RFC 9568: advertise at once"
        );
        assert_eq!(r.state(), State::Master);
        out.clear();
        r.handle(advert([192, 0, 2, 0], 100), at, &mut out);
        assert_eq!(r.state(), State::Master, "equal priority, lower address");
        out.clear();
        r.handle(advert([192, 0, 2, 9], 100), at, &mut out);
        assert_eq!(r.state(), State::Backup, "equal priority, higher address");
        assert_eq!(out[0], Action::RemoveAddresses);
    }
}
