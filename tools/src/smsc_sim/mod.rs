//! The SMSC simulator behind `smslink smsc-sim`, for CIMD2 and SMPP 3.4.
//!
//! One thread runs a mio event loop over a listening socket and any number of client
//! connections. Each connection is a sans-IO SMSC-side session behind one
//! protocol-neutral interface (`session::SimSession`): CIMD2's
//! [`ServerSession`](smslink::cimd2::session::ServerSession) or SMPP's
//! [`SmscSession`](smslink::smpp::smsc_session::SmscSession). Timers come from the
//! sessions' deadlines; what the SMSC does (answers, faults, MO, receipts, the record)
//! is the same for both. Tests, the demo and benchmarks start it in-process with
//! [`SmscSim::start`]; the CLI is a thin wrapper.

mod cimd2;
mod event_loop;
mod record;
mod session;
mod smpp;
mod time;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use smslink::message::Message;
use smslink::smpp::CommandStatus;

pub use record::complete_lines;
pub use time::cimd2_timestamp;

/// Accepted submits kept for [`SmscSim::accepted`]; later ones are only counted.
pub const MAX_KEPT_SUBMITS: usize = 1 << 20;

/// The protocol the simulator speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// CIMD2 (Nokia): stop-and-wait, one request outstanding each way.
    #[default]
    Cimd2,
    /// SMPP 3.4: binds, windows of submits and deliver_sm.
    Smpp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Cimd2 => "cimd2",
            Protocol::Smpp => "smpp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "cimd2" => Ok(Protocol::Cimd2),
            "smpp" => Ok(Protocol::Smpp),
            other => Err(format!("unknown protocol {other:?}: cimd2 or smpp")),
        }
    }
}

/// In which order the submits of one connection are answered (SMPP: a windowed ESME
/// has many outstanding; CIMD2 has one at a time, so the order makes no difference).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AnswerOrder {
    /// In the order they arrived: a late answer holds back those after it.
    #[default]
    InOrder,
    /// Each when its own processing time is over, drawn at random between zero and
    /// twice `processing_delay`; answers due at the same moment go out in random
    /// order. Real SMSCs answer a window this way.
    Shuffled,
}

impl AnswerOrder {
    pub fn name(self) -> &'static str {
        match self {
            AnswerOrder::InOrder => "in-order",
            AnswerOrder::Shuffled => "shuffled",
        }
    }
}

impl std::fmt::Display for AnswerOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AnswerOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<AnswerOrder, String> {
        match s {
            "in-order" => Ok(AnswerOrder::InOrder),
            "shuffled" => Ok(AnswerOrder::Shuffled),
            other => Err(format!(
                "unknown answer order {other:?}: in-order or shuffled"
            )),
        }
    }
}

/// How the simulated SMSC behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub protocol: Protocol,
    /// Where to listen; port 0 picks a free port (see [`SmscSim::local_addr`]).
    pub listen: SocketAddr,
    /// CIMD2: the user identity (010) to log in with. SMPP: the system_id to bind
    /// with (at most 15 characters).
    pub user: String,
    /// The password (SMPP: at most 8 characters).
    pub password: String,
    /// Time between receiving a submit and answering it.
    pub processing_delay: Duration,
    /// Order of the answers to one connection's submits.
    pub answer_order: AnswerOrder,
    /// Mobile-originated messages per second sent to each logged-in client (SMPP:
    /// each receiver or transceiver bind) (0 = none).
    pub mo_rate: f64,
    /// How many MO messages each client gets (0 = no limit while `mo_rate` > 0).
    pub mo_count: u64,
    /// `mo_rate` is the phones' rate, kept whatever the client's pace: MO that fall
    /// due while the client is still answering earlier ones queue at the SMSC (as
    /// at a real one) and go out as soon as it can take them. Otherwise a late MO
    /// restarts the pacing from then.
    pub mo_queue: bool,
    pub mo_from: String,
    pub mo_to: String,
    /// MO text; `{num}` (or `{n}`) is replaced by the message's number (1, 2, ...), `{t}` by the
    /// send time in microseconds since the Unix epoch.
    pub mo_text: String,
    /// Append one JSON line per accepted submit to this file: `seq`, `from`, `to`,
    /// `timestamp` and `text` (or `hex` for a binary payload). Over SMPP, `seq` in
    /// decimal is the message_id the submit_sm_resp carried.
    pub record: Option<PathBuf>,
    /// Append one JSON line per MO a client acknowledged to this file: `mo` (the
    /// count of acknowledged MO so far, over all connections), `from`, `to`, `text`
    /// (or `hex`).
    pub record_mo: Option<PathBuf>,
    /// Cut each connection when its Nth packet (SMPP: PDU) arrives (that one is lost).
    pub drop_after: Option<u64>,
    /// Fraction of submits answered with NACK (SMPP: generic_nack with ESME_RSYSERR,
    /// a temporary error) instead of an answer.
    pub nack_fraction: f64,
    /// Fraction of submits answered ESME_RTHROTTLED (SMPP only).
    pub throttle_fraction: f64,
    /// Fraction of submits rejected with `reject_code`.
    pub reject_fraction: f64,
    /// Error code of rejected submits: a CIMD2 error code (300-range), or an SMPP
    /// command_status (`SimConfig::for_protocol(Protocol::Smpp)` starts with
    /// ESME_RSUBMITFAIL).
    pub reject_code: u32,
    /// Time from accepting a submit to sending its delivery report (the handset's
    /// delivery). At zero, an SMPP receipt to a receiver bind may overtake the
    /// submit_sm_resp on the transmitter bind, as with fast real SMSCs.
    pub report_delay: Duration,
    /// An MO the client refused for now (SMPP: ESME_RX_T_APPN) is delivered again
    /// after this long; newer MO wait behind it, so their order is kept.
    pub mo_retry_after: Duration,
    /// Extra delay added to the answer of a `late_fraction` of submits.
    pub late: Duration,
    pub late_fraction: f64,
    /// Seed of the fault-injection random numbers (runs are repeatable).
    pub seed: u64,
    /// How long the SMSC waits for the answer to a deliver (and, over SMPP, to
    /// enquire_link) before retransmitting (CIMD2) or giving up (SMPP).
    pub response_timeout: Duration,
    /// CIMD2: retransmissions of an unanswered deliver.
    pub max_retries: u32,
    /// SMPP: deliver_sm sent to one bind and not yet answered, at most.
    pub window: usize,
    /// SMPP: send enquire_link after this long without a PDU from the ESME (zero:
    /// never).
    pub enquire_link_interval: Duration,
    /// Log connections, faults and protocol violations on stderr.
    pub log: bool,
    /// Close a connection that sent nothing for this long (zero: never).
    pub idle_timeout: Duration,
    /// Output to a client that may wait unwritten; a client that lets more pile up
    /// (sends but does not read) is disconnected.
    pub max_output: usize,
}

impl SimConfig {
    /// The defaults for `protocol`: CIMD2 listens on 9971 and rejects with 300;
    /// SMPP listens on 2775 and rejects with ESME_RSUBMITFAIL.
    pub fn for_protocol(protocol: Protocol) -> SimConfig {
        let mut config = SimConfig {
            protocol,
            listen: SocketAddr::from(([127, 0, 0, 1], 9971)),
            user: "smslink".into(),
            password: "secret".into(),
            processing_delay: Duration::ZERO,
            answer_order: AnswerOrder::InOrder,
            mo_rate: 0.0,
            mo_count: 0,
            mo_queue: false,
            mo_from: "4670000001".into(),
            mo_to: "12345".into(),
            mo_text: "mo #{num}".into(),
            record: None,
            record_mo: None,
            drop_after: None,
            nack_fraction: 0.0,
            throttle_fraction: 0.0,
            reject_fraction: 0.0,
            reject_code: 300,
            report_delay: Duration::ZERO,
            mo_retry_after: Duration::from_millis(500),
            late: Duration::ZERO,
            late_fraction: 0.0,
            seed: 1,
            response_timeout: Duration::from_secs(10),
            max_retries: 2,
            window: 10,
            enquire_link_interval: Duration::ZERO,
            log: true,
            idle_timeout: Duration::from_secs(120),
            max_output: 1 << 20,
        };
        if protocol == Protocol::Smpp {
            config.listen.set_port(2775);
            config.reject_code = CommandStatus::ESME_RSUBMITFAIL.0;
        }
        config
    }

    /// Why this configuration cannot run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        for (name, f) in [
            ("nack_fraction", self.nack_fraction),
            ("throttle_fraction", self.throttle_fraction),
            ("reject_fraction", self.reject_fraction),
            ("late_fraction", self.late_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("{name} must be between 0 and 1, not {f}"));
            }
        }
        if !(self.mo_rate >= 0.0 && self.mo_rate.is_finite()) {
            return Err(format!(
                "mo_rate must be a non-negative number, not {}",
                self.mo_rate
            ));
        }
        match self.protocol {
            Protocol::Cimd2 if self.throttle_fraction > 0.0 => {
                Err("throttle_fraction: CIMD2 has no throttling answer (use nack_fraction)".into())
            }
            Protocol::Cimd2 => Ok(()),
            Protocol::Smpp => smpp::validate(self),
        }
    }
}

impl Default for SimConfig {
    /// The CIMD2 simulator's defaults.
    fn default() -> Self {
        SimConfig::for_protocol(Protocol::Cimd2)
    }
}

/// What the simulator has seen and done so far, over all connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub connections: u64,
    pub disconnections: u64,
    /// Successful logins (SMPP: binds of any kind).
    pub logins: u64,
    pub login_failures: u64,
    pub submits_received: u64,
    pub submits_accepted: u64,
    pub submits_rejected: u64,
    pub submits_nacked: u64,
    /// Answered ESME_RTHROTTLED (`throttle_fraction`).
    pub submits_throttled: u64,
    pub mo_sent: u64,
    pub mo_acked: u64,
    pub mo_rejected: u64,
    /// MO refused for now and delivered again.
    pub mo_retried: u64,
    pub mo_failed: u64,
    /// With `mo_queue`: the most MO that were due and not yet sent to a client at
    /// once (an SMSC held back builds this up without bound).
    pub mo_queue_peak: u64,
    pub reports_sent: u64,
    pub reports_acked: u64,
    pub violations: u64,
    /// Connections cut by `drop_after`.
    pub drops: u64,
}

/// Counters behind a lock, with a condition variable so tests can wait for a state;
/// and what tests hand in (MO to deliver, reject rules) or read back (submits).
#[derive(Default)]
pub(crate) struct Shared {
    pub counters: Mutex<Counters>,
    pub changed: Condvar,
    /// MO messages from `inject_mo`, delivered in order to whichever logged-in client
    /// can take one next.
    pub injected: Mutex<VecDeque<Message>>,
    /// Accepted submits in the order they were accepted (at most `MAX_KEPT_SUBMITS`).
    pub accepted: Mutex<Vec<Message>>,
    /// Recipient prefix -> error code: matching submits are rejected with it.
    pub reject_rules: Mutex<Vec<(String, u32)>>,
    /// The concatenation reference of the next long injected MO.
    pub mo_reference: AtomicU8,
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock());
        self.changed.notify_all();
    }
}

/// A running simulator. Dropping it stops it.
pub struct SmscSim {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl SmscSim {
    /// Bind, then run the event loop on its own thread. A configuration that
    /// [`SimConfig::validate`] refuses is an `InvalidInput` error.
    pub fn start(config: SimConfig) -> io::Result<SmscSim> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let lp = event_loop::EventLoop::bind(config, shared.clone(), stop.clone())?;
        let local_addr = lp.local_addr();
        let waker = lp.waker();
        let thread = std::thread::Builder::new()
            .name("smsc-sim".into())
            .spawn(move || lp.run())?;
        Ok(SmscSim {
            local_addr,
            shared,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn counters(&self) -> Counters {
        *self.shared.counters.lock()
    }

    /// Block until `done(counters)` holds or `timeout` passes; returns the last state
    /// and whether the condition was met.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Counters) -> bool,
    ) -> (Counters, bool) {
        let deadline = Instant::now() + timeout;
        let mut counters = self.shared.counters.lock();
        loop {
            if done(&counters) {
                return (*counters, true);
            }
            if self
                .shared
                .changed
                .wait_until(&mut counters, deadline)
                .timed_out()
            {
                let ok = done(&counters);
                return (*counters, ok);
            }
        }
    }

    /// Queue a mobile-originated message for delivery to a logged-in client (SMPP: a
    /// receiver or transceiver bind). Injected messages go out in order, before any
    /// `mo_rate` traffic; one whose deliver fails (no answer, connection lost) is
    /// delivered again later, one the client rejects is not.
    /// A message longer than one SMS goes out as the parts of a concatenated SMS
    /// (8-bit reference), as a phone sends it; one over 255 parts is refused.
    pub fn inject_mo(&self, message: &Message) -> io::Result<()> {
        let parts = mo_parts(message, &self.shared.mo_reference)?;
        self.shared.injected.lock().extend(parts);
        self.waker.wake()
    }

    /// Injected MO messages not yet acknowledged by a client (queued or in flight).
    pub fn injected_pending(&self) -> usize {
        self.shared.injected.lock().len()
    }

    /// Submits accepted so far, in order (the first `MAX_KEPT_SUBMITS` of them).
    pub fn accepted(&self) -> Vec<Message> {
        self.shared.accepted.lock().clone()
    }

    /// Reject every submit to a recipient starting with `prefix` with `code` (a CIMD2
    /// error code or an SMPP command_status; the longest matching prefix decides; it
    /// wins over the fault fractions).
    pub fn reject_recipients(&self, prefix: &str, code: u32) {
        let mut rules = self.shared.reject_rules.lock();
        rules.retain(|(p, _)| p != prefix);
        rules.push((prefix.to_owned(), code));
        rules.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
    }

    /// Drop every rule set by `reject_recipients`.
    pub fn clear_reject_rules(&self) {
        self.shared.reject_rules.lock().clear();
    }

    /// Block until the event loop ends by itself (an I/O error) — the CLI's main loop.
    pub fn join(mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("smsc-sim thread panicked"))),
            None => Ok(()),
        }
    }

    /// Stop the event loop, close every connection and wait for the thread.
    pub fn stop(mut self) -> io::Result<Counters> {
        self.shutdown()?;
        Ok(self.counters())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        self.waker.wake()?;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("smsc-sim thread panicked"))),
            None => Ok(()),
        }
    }
}

/// The SMS `message` travels in as MO: itself when it fits one, else its parts, each
/// with its concatenation header.
fn mo_parts(message: &Message, next_reference: &AtomicU8) -> io::Result<Vec<Message>> {
    use smslink::message::Part;
    use smslink::sms::concat::{split_message, Chunk, RefWidth};
    let split = split_message(message, RefWidth::Eight)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if !split.is_concatenated() {
        return Ok(vec![message.clone()]);
    }
    let reference = u16::from(next_reference.fetch_add(1, Ordering::Relaxed));
    let total = split.total() as u8; // at most 255: `split_message` refuses more
    let mut parts = Vec::with_capacity(split.total());
    for (chunk, index) in split.chunks.iter().zip(1u8..) {
        let mut part = message.clone();
        let payload = match chunk {
            Chunk::Text(t) => t.as_bytes(),
            Chunk::Octets(o) => o,
        };
        part.set_payload(payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        part.part = Some(
            Part::new(reference, total, index)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?,
        );
        parts.push(part);
    }
    Ok(parts)
}

impl Drop for SmscSim {
    fn drop(&mut self) {
        // Errors here have nowhere to go; `stop` reports them.
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_injected_mo_goes_as_numbered_parts_of_one_reference() {
        let next = AtomicU8::new(7);
        let short = Message::text("+4670000001", "12345", "hi").unwrap();
        assert_eq!(mo_parts(&short, &next).unwrap(), vec![short.clone()]);
        let text = "0123456789".repeat(40);
        let long = Message::text("+4670000001", "12345", &text).unwrap();
        let parts = mo_parts(&long, &next).unwrap();
        assert_eq!(parts.len(), 3);
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.payload().to_vec()).collect();
        assert_eq!(joined, text.as_bytes());
        for (i, p) in parts.iter().enumerate() {
            let part = p.part.unwrap();
            assert_eq!(
                (part.reference, part.total, part.index),
                (7, 3, i as u8 + 1)
            );
        }
        // The next long MO takes the next reference.
        assert_eq!(
            mo_parts(&long, &next).unwrap()[0].part.unwrap().reference,
            8
        );
    }
}
