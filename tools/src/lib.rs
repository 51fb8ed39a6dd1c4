//! The `smslink` command and the peers it is built from, kept out of the library so
//! that C programs and Python wheels do not carry them:
//!
//! * `smsc_sim`: a CIMD2 SMSC simulator (server sessions over mio);
//! * `wan`: a WAN emulator (a TCP proxy with delay, jitter, bandwidth, cuts, stalls);
//! * `scenario`: the whole chain in one process, shared by demo, bench and tests;
//! * `child`: child processes killed when dropped, and the simulator's start line;
//! * `cli` (feature `cli`, on by default): the subcommands' front ends.

pub mod child;

pub mod scenario;

pub mod smsc_sim;

pub mod wan;

#[cfg(feature = "cli")]
pub mod cli;
