//! The machine on a virtual clock: each case is a script of inputs at given
//! times and the state expected after each, so a reader can check it against
//! HAProxy's documentation line by line.

use std::time::{Duration, Instant};

use halo_config::{InitialState, Passive};

use super::{ActiveParams, AdminState, Machine, Params, Reason};

#[derive(Debug, Clone, Copy)]
enum In {
    /// Call `handle_timeout`; a due check is started and its result fed at once.
    CheckOk,
    CheckFail,
    /// `error_limit` errors on live traffic.
    PassiveLimit,
    /// Just advance timers.
    Tick,
    Admin(AdminState),
}

/// After an input: UP?, serving?, and when the next timer fires (ms from now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Out {
    up: bool,
    serving: bool,
    next_in_ms: Option<u64>,
}

const fn out(up: bool, next_in_ms: Option<u64>) -> Out {
    Out {
        up,
        serving: up,
        next_in_ms,
    }
}

fn haproxy_defaults(initial: InitialState) -> Params {
    Params {
        active: Some(ActiveParams {
            interval: Duration::from_millis(2000),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_millis(5000),
            rise: 2,
            fall: 3,
            initial,
            spread_percent: 0,
        }),
        passive: Passive::default(),
    }
}

/// Runs `script` as (time in ms, input, expected output) rows.
fn check(params: Params, script: &[(u64, In, Out)]) {
    // The virtual clock's origin; only differences are ever used.
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut m = Machine::new(params, t0, 7);
    for (row, &(at, input, want)) in script.iter().enumerate() {
        let now = t0 + Duration::from_millis(at);
        match input {
            In::CheckOk | In::CheckFail => {
                let due = m.poll_timeout().expect("a check should be scheduled");
                assert!(
                    due <= now,
                    "row {row}: check not due yet at {at}ms (due {:?} later)",
                    due - now
                );
                let (start, _) = m.handle_timeout(now);
                assert!(start, "row {row}: handle_timeout did not start a check");
                let ok = matches!(input, In::CheckOk);
                m.on_check_result(ok, if ok { "L4OK" } else { "L4CON" }, now);
            }
            In::PassiveLimit => {
                m.on_passive_limit(10, now);
            }
            In::Tick => {
                m.handle_timeout(now);
            }
            In::Admin(a) => {
                m.set_admin(a, now);
            }
        }
        let got = Out {
            up: m.is_up(),
            serving: m.is_serving(),
            next_in_ms: m
                .poll_timeout()
                .map(|t| u64::try_from((t - now).as_millis()).unwrap()),
        };
        assert_eq!(got, want, "row {row} ({at}ms, {input:?})");
    }
}

#[test]
fn default_up_falls_at_first_failure_then_rises_after_rise_successes() {
    // HAProxy default init-state "up": UP at start, the first failed check
    // marks it DOWN; rise=2 good checks bring it back, then `inter` applies.
    // The first check is due at a random point in [0, fastinter).
    check(
        haproxy_defaults(InitialState::Up),
        &[
            (500, In::CheckOk, out(true, Some(2000))), // fully up now: inter
            (2500, In::CheckFail, out(true, Some(500))), // 4 -> 3, going down: fastinter
            (3000, In::CheckFail, out(true, Some(500))), // 3 -> 2 (= rise), still UP
            (3500, In::CheckFail, out(false, Some(5000))), // fall=3rd failure: DOWN, downinter
            (8500, In::CheckOk, out(false, Some(500))), // 0 -> 1, rising: fastinter
            (9000, In::CheckOk, out(true, Some(2000))), // rise=2: UP, fully up: inter
        ],
    );
}

#[test]
fn initial_states_match_haproxy_init_state() {
    // up: one failure and it is down.
    check(
        haproxy_defaults(InitialState::Up),
        &[(500, In::CheckFail, out(false, Some(5000)))],
    );
    // fully-up: it takes `fall` failures.
    check(
        haproxy_defaults(InitialState::FullyUp),
        &[
            (500, In::CheckFail, out(true, Some(500))),
            (1000, In::CheckFail, out(true, Some(500))),
            (1500, In::CheckFail, out(false, Some(5000))),
        ],
    );
    // down: one success and it is up.
    check(
        haproxy_defaults(InitialState::Down),
        &[(500, In::CheckOk, out(true, Some(2000)))],
    );
    // fully-down: it takes `rise` successes.
    check(
        haproxy_defaults(InitialState::FullyDown),
        &[
            (500, In::CheckOk, out(false, Some(500))),
            (1000, In::CheckOk, out(true, Some(2000))),
        ],
    );
}

#[test]
fn a_failure_while_rising_starts_over_and_a_success_while_falling_recovers() {
    check(
        haproxy_defaults(InitialState::FullyDown),
        &[
            (500, In::CheckOk, out(false, Some(500))),     // 1
            (1000, In::CheckFail, out(false, Some(5000))), // back to 0: fully down
            (6000, In::CheckOk, out(false, Some(500))),    // 1
            (6500, In::CheckOk, out(true, Some(2000))),    // 2: up, full
            (8500, In::CheckFail, out(true, Some(500))),   // 3
            (9000, In::CheckOk, out(true, Some(2000))),    // back to full: inter again
            (11000, In::CheckFail, out(true, Some(500))),  // it again takes 3 failures
            (11500, In::CheckFail, out(true, Some(500))),
            (12000, In::CheckFail, out(false, Some(5000))),
        ],
    );
}

#[test]
fn passive_errors_mark_down_until_active_checks_bring_it_back() {
    check(
        haproxy_defaults(InitialState::FullyUp),
        &[
            (500, In::CheckOk, out(true, Some(2000))),
            (1000, In::PassiveLimit, out(false, Some(500))), // down now; next check at fastinter
            (1500, In::CheckOk, out(false, Some(500))),      // needs rise=2
            (2000, In::CheckOk, out(true, Some(2000))),
        ],
    );
}

#[test]
fn passive_only_ejection_doubles_and_resets_after_a_quiet_period() {
    let params = Params {
        active: None,
        passive: Passive {
            error_limit: 5,
            ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(100),
            ..Passive::default()
        },
    };
    check(
        params,
        &[
            (0, In::Tick, out(true, None)),
            (1_000, In::PassiveLimit, out(false, Some(30_000))),
            (31_000, In::Tick, out(true, None)), // back after 30s
            (32_000, In::PassiveLimit, out(false, Some(60_000))), // again at once: 60s
            (92_000, In::Tick, out(true, None)),
            (93_000, In::PassiveLimit, out(false, Some(100_000))), // 120s capped at 100s
            (193_000, In::Tick, out(true, None)),
            // Quiet for max_ejection_time (100s): the doubling starts over.
            (293_000, In::PassiveLimit, out(false, Some(30_000))),
        ],
    );
}

#[test]
fn drain_and_maint_are_kept_apart_from_health() {
    let drain = Out {
        up: true,
        serving: false,
        next_in_ms: Some(2000),
    };
    check(
        haproxy_defaults(InitialState::FullyUp),
        &[
            (500, In::CheckOk, out(true, Some(2000))),
            // drain: no new traffic, health unchanged, checks keep running.
            (
                600,
                In::Admin(AdminState::Drain),
                Out {
                    next_in_ms: Some(1900),
                    ..drain
                },
            ),
            (2500, In::CheckOk, drain),
            (
                4500,
                In::CheckFail,
                Out {
                    next_in_ms: Some(500),
                    ..drain
                },
            ),
            (5000, In::CheckOk, drain),
            // ready again: serving, nothing else changed.
            (5100, In::Admin(AdminState::Ready), out(true, Some(1900))),
            // maint: no traffic and no checks; health is left as it was.
            (
                5200,
                In::Admin(AdminState::Maint),
                Out {
                    up: true,
                    serving: false,
                    next_in_ms: None,
                },
            ),
            (
                60_000,
                In::Tick,
                Out {
                    up: true,
                    serving: false,
                    next_in_ms: None,
                },
            ),
            // leaving maint re-applies the initial state and checks soon.
            (60_100, In::Admin(AdminState::Ready), out(true, Some(0))),
            (60_100, In::CheckFail, out(true, Some(500))), // fully-up: one failure is not enough
        ],
    );
}

#[test]
fn maint_ignores_a_check_result_that_was_in_flight() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut m = Machine::new(haproxy_defaults(InitialState::Up), t0, 1);
    let due = m.poll_timeout().unwrap();
    assert!(m.handle_timeout(due).0);
    m.set_admin(AdminState::Maint, due);
    assert_eq!(m.on_check_result(false, "L4CON", due), None);
    assert!(m.is_up());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn transitions_say_what_changed_and_why() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut m = Machine::new(haproxy_defaults(InitialState::Up), t0, 1);
    let due = m.poll_timeout().unwrap();
    m.handle_timeout(due);
    let t = m
        .on_check_result(false, "L4CON connection refused", due)
        .unwrap();
    assert!(t.was_up && !t.up);
    assert_eq!(t.reason, Reason::Check("L4CON connection refused".into()));
    assert_eq!(
        m.set_admin(AdminState::Drain, due).unwrap().admin,
        AdminState::Drain
    );
    // Same state again: nothing to report.
    assert_eq!(m.set_admin(AdminState::Drain, due), None);
}

#[test]
fn jitter_stays_within_spread_and_differs_between_seeds() {
    let mut params = haproxy_defaults(InitialState::FullyUp);
    if let Some(a) = params.active.as_mut() {
        a.spread_percent = 10;
    }
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let firsts: Vec<Duration> = (0..50u64)
        .map(|seed| {
            Machine::new(params, t0, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .poll_timeout()
                .unwrap()
                - t0
        })
        .collect();
    // First checks are spread over [0, fastinter).
    assert!(firsts.iter().all(|d| *d < Duration::from_millis(500)));
    let distinct: std::collections::HashSet<_> = firsts.iter().collect();
    assert!(
        distinct.len() > 40,
        "first checks should not fire in lockstep: {firsts:?}"
    );

    let mut m = Machine::new(params, t0, 3);
    let mut now = m.poll_timeout().unwrap();
    for _ in 0..200 {
        m.handle_timeout(now);
        m.on_check_result(true, "ok", now);
        let gap = m.poll_timeout().unwrap() - now;
        assert!(
            gap >= Duration::from_millis(1800) && gap <= Duration::from_millis(2200),
            "{gap:?}"
        );
        now += gap;
    }
    // Same seed, same schedule: replayable.
    let a = Machine::new(params, t0, 99).poll_timeout();
    let b = Machine::new(params, t0, 99).poll_timeout();
    assert_eq!(a, b);
}

#[test]
fn a_check_that_could_not_run_is_no_verdict() {
    // This host out of descriptors: neither a failure nor a success; the
    // next check comes after the usual interval.
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut m = Machine::new(haproxy_defaults(InitialState::Up), t0, 1);
    for i in 0..10u64 {
        let due = m.poll_timeout().unwrap();
        assert!(m.handle_timeout(due).0, "round {i}");
        m.on_check_skipped(due);
        assert!(m.is_up(), "round {i}");
        assert!(m.poll_timeout().unwrap() > due);
    }
    // One real failure then decides (init-state up: the first marks DOWN).
    let due = m.poll_timeout().unwrap();
    m.handle_timeout(due);
    assert!(m.on_check_result(false, "L4CON refused", due).is_some());
    assert!(!m.is_up());
}
