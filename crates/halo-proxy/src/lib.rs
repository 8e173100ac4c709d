//! halo's proxy tier: listeners, pools and server selection.

#![forbid(unsafe_code)]

pub mod balance;
