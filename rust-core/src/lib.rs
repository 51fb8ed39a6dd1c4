//! smslink: a pipelined, self-synchronising buffer link between SMSCs and IM servers.
//!
//! The data flow follows the module layout:
//! `message` (what travels) -> `cimd2` (codec, then sessions) -> `ring` / `link`
//! (mirrored slots and the pipelined protocol) -> `runtime` (mio driver) -> bindings
//! (`ffi/`, `python/`). Every protocol module is sans-IO: bytes and `now` in, frames,
//! timers and events out.

pub mod message;

pub mod sms;

pub mod smpp;

pub mod cimd2;

pub mod ring;

pub mod link;

pub mod spsc;

pub mod sync;

pub mod wan;

pub mod smsc_sim;

pub mod runtime;

pub mod cli;

#[doc(hidden)]
pub mod fuzzing;
