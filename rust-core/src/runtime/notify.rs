//! A wake-up signal from the event-loop thread to application threads, backed by an
//! eventfd so that C stacks can put it in their own poll loop and asyncio can
//! `add_reader` it. Many `notify` calls between two waits coalesce into one wake.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct Notifier {
    fd: OwnedFd,
    /// The descriptor has been made readable and nobody cleared it since: further
    /// notifies need no system call.
    signalled: AtomicBool,
}

impl Notifier {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions; we check its result.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Notifier {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            signalled: AtomicBool::new(false),
        })
    }

    /// Make the descriptor readable (wakes a waiter). Never blocks.
    pub fn notify(&self) {
        if self.signalled.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. EAGAIN (counter saturated) still
        // leaves the fd readable, which is all a wake needs.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Clear the readable state; returns whether there was a pending wake.
    pub fn clear(&self) -> bool {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        // Only after the read: a notify racing with it either landed before the
        // read (consumed, and the caller drains its events next) or sees `false`
        // and writes again.
        self.signalled.store(false, Ordering::Release);
        n == 8
    }

    /// Block until notified or until `timeout` passes (`None`: forever). Returns true
    /// when woken. Interrupted waits are retried with the time left.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let ms: libc::c_int = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    // Round up so a sub-millisecond remainder still waits.
                    left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                // Another waiter may have consumed the wake first; readiness was real.
                self.clear();
                return true;
            }
            if r == 0 {
                return false;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return false;
            }
        }
    }
}

impl AsRawFd for Notifier {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wakes_coalesce_and_timeouts_expire() {
        let n = Notifier::new().unwrap();
        assert!(!n.wait(Some(Duration::from_millis(1))));
        n.notify();
        n.notify();
        assert!(n.wait(Some(Duration::from_secs(5))));
        // Both notifies were consumed by one wait.
        assert!(!n.wait(Some(Duration::ZERO)));
    }

    #[test]
    fn wakes_a_waiter_on_another_thread() {
        let n = Arc::new(Notifier::new().unwrap());
        let n2 = n.clone();
        let waiter = std::thread::spawn(move || n2.wait(Some(Duration::from_secs(10))));
        n.notify();
        assert!(waiter.join().unwrap());
    }
}
