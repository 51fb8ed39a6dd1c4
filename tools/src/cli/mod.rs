//! Command-line front ends of the `smslink` subcommands (argument parsing only).

pub mod bench;
pub mod buffer_server;
pub mod demo;
pub mod im_endpoint;
pub mod journal;
pub mod keygen;
pub mod loadgen;
pub mod smsc_sim;
pub mod wan;

pub use smslink::runtime::TlsOptions;
