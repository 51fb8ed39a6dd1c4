//! Child processes for tests, benches and the demo: killed and reaped when dropped,
//! so a failing run leaves nothing behind.

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::process::Child;

/// A child process that is killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VmRSS of a process in kB (Linux).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Reads `smslink smsc-sim`'s first log line, `smsc-sim: listening on ADDR`, and
/// returns ADDR: the simulator names its port, so nobody guesses or waits.
pub fn sim_listening_addr(log: &mut impl BufRead) -> io::Result<SocketAddr> {
    let mut first = String::new();
    log.read_line(&mut first)?;
    first
        .trim()
        .strip_prefix("smsc-sim: listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected first line {first:?}"),
            )
        })
}
