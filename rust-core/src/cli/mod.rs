//! Command-line front ends of the `smslink` subcommands (argument parsing only).

pub mod wan;
pub mod smsc_sim;
