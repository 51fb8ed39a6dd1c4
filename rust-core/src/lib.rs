//! smslink: a pipelined, self-synchronising buffer link between SMSCs and IM servers.
//!
//! The data flow follows the module layout:
//! `message` (what travels) -> `cimd2` (codec, then sessions) -> `smsc` (what the
//! buffer server needs of any SMSC protocol) -> `ring` / `link` (mirrored slots and
//! the pipelined protocol) -> `bridge` (the buffer server: SMSC session <-> link) ->
//! `runtime` (mio driver) -> bindings (`ffi/`, `python/`). Every module below
//! `runtime` is sans-IO: bytes and `now` in, frames, timers and events out.

pub mod message;

pub mod sms;

pub mod smpp;

pub mod cimd2;

pub mod ring;

pub mod journal;

pub mod link;

pub mod smsc;

pub mod bridge;

pub mod runtime;

#[doc(hidden)]
pub mod fuzzing;

#[doc(hidden)]
pub mod sim;
