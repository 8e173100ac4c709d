//! halo's health-check engine, shared by the three tiers.
//!
//! ```text
//!              ┌──────────── Monitor task (one per server) ────────────┐
//!  probe ────▶ │ Machine (sans-io): rise/fall counter, intervals,      │ ──▶ broadcast<HealthEvent>
//!  (tcp/http)  │ passive ejection, admin state; `now` and seed injected│      (proxy, VRRP track, GSLB)
//!              └──────▲───────────────────────────────┬───────────────┘
//!   data path ────────┘ report_error / report_success │ atomics: is_serving()
//!   admin API ──────────  set_admin(ready|drain|maint) ▼
//! ```
//!
//! [`machine`] holds the logic and no I/O; [`probe`] does one check against a
//! real server; [`monitor`] runs both on tokio and publishes changes.

#![forbid(unsafe_code)]

mod group;
pub mod machine;
pub mod monitor;
pub mod probe;
pub mod registry;
pub mod tls;

pub use group::may_eject;
pub use machine::{AdminState, Machine, Params, Reason, Transition};
pub use monitor::{HealthEvent, HealthHub, Monitor, ServerHealth, ServerKey};
pub use probe::{ProbeOutcome, ProbeTarget};
pub use registry::{Registry, gslb_key, track_key};
pub use tls::{PoolTlsClient, ServerTls};
