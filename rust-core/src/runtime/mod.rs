//! The mio runtime: thin drivers that move bytes and time between sockets and the
//! sans-IO sessions (`cimd2::session`, `link`). One event-loop thread per endpoint,
//! timers from the sessions' deadlines, a mio `Waker` for work handed in by other
//! threads, no busy polling and no sleeps.

pub mod api;
pub mod backoff;
pub mod conn;
pub mod log;
pub mod node;
pub mod notify;
mod smsc;

pub use api::*;
pub use backoff::Backoff;
pub use conn::{Conn, ReadOutcome};
pub use node::Node;
pub use notify::Notifier;
