//! The mio runtime: thin drivers that move bytes and time between sockets and the
//! sans-IO cores (`link`, `bridge`). One event-loop thread per node, timers from the
//! cores' deadlines, a mio `Waker` for work handed in by other threads, no busy
//! polling and no sleeps.
//!
//! * `handle`: the [`Node`] application threads hold (send, ack, wait, events);
//! * `shared`: what the handle and the loop share (queues, published cursors);
//! * `event_loop`: the thread, one turn at a time; `ready`: which links a turn
//!   visits (ready set, timer heap), so idle links cost nothing per turn;
//! * `link_driver`: one link's sockets (dial, listen, waiting connections);
//! * `smsc_driver`: a buffer server's TCP connection to its SMSC, around the bridge;
//! * `metrics`, `metrics_http`: the Prometheus text, `/status` and `/healthz`,
//!   and the small HTTP listener the loop serves them on;
//! * `tls`: TLS 1.3 under the link (rustls), certificate and fingerprint checks;
//! * `journal_sync`: the thread that syncs the journal, so the loop never waits
//!   for the disk;
//! * `conn`, `backoff`, `notify`, `spsc` (+ `sync`, loom-checked): the small parts.

pub mod admission;
pub mod api;
pub mod backoff;
pub mod conn;
mod event_loop;
mod handle;
mod journal_sync;
pub mod json;
pub mod latency;
mod link_driver;
pub mod log;
pub mod metrics;
mod metrics_http;
pub mod notify;
mod ready;
mod shared;
mod smsc_driver;
pub mod spsc;
pub mod sync;
pub mod tls;

pub use admission::{AdmissionConfig, HandshakeLimits};
pub use api::*;
pub use backoff::{AcceptError, AcceptPause, Backoff};
pub use conn::{Conn, ReadOutcome};
pub use handle::Node;
pub use latency::{LatencyHistogram, ACK_LATENCY_BUCKETS};
pub use notify::Notifier;

/// Raise this process's soft limit on open descriptors to its hard limit and return
/// the limit now in force (1,024 when it cannot be read). A node with thousands of
/// links needs a descriptor per connection (and per listener), well above the
/// usual default soft limit of 1,024.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the rlimit struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}
