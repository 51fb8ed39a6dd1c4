//! The whole chain in one process, for the demo, the benchmark and system tests:
//!
//! ```text
//! IM-side Node --dial--> WAN emulator --> buffer server Node --CIMD2--> SMSC simulator
//! ```
//!
//! The IM side sends `mt` messages (MT); the simulator originates `mo` messages
//! (MO) toward the buffer server. One driver thread feeds the IM node, acknowledges
//! what it receives and keeps score: every MT must come back Processed exactly once,
//! every MO must arrive exactly once and in order.

use crate::child::KillOnDrop;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smslink::cimd2::session::ClientConfig;
use smslink::journal::SyncPolicy;
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::{
    JournalSpec, LinkSpec, Node, NodeConfig, NodeError, NodeEvent, PeerAuth, SmscSpec, TlsSpec,
    Transport,
};
use smslink::smpp::SmppConfig;

use crate::smsc_sim::{Protocol, SimConfig, SmscSim};
use crate::wan::{Jitter, Outage, Wan, WanConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// MT messages the IM side sends.
    pub mt: u64,
    /// MO messages the SMSC originates.
    pub mo: u64,
    /// Slots per ring.
    pub capacity: usize,
    /// One-way delay of the emulated link (each direction).
    pub one_way: Duration,
    /// Uniform jitter added to each direction's delay.
    pub jitter: Duration,
    /// SMSC time to answer each submit.
    pub smsc_delay: Duration,
    /// Random cuts of the link (both sides reset) at intervals in this range.
    pub cut_every: Option<(Duration, Duration)>,
    /// Half-open stalls: quiet periods between stalls, and stall lengths.
    pub stall_every: Option<(Duration, Duration)>,
    pub stall_for: (Duration, Duration),
    pub heartbeat: Duration,
    pub dead_after: Duration,
    /// The protocol between the buffer server and the SMSC simulator.
    pub protocol: Protocol,
    /// Fractions of submits the SMSC NACKs (retried by the session) or rejects.
    pub nack_fraction: f64,
    pub reject_fraction: f64,
    /// The rejection's error code (CIMD2) or command_status (SMPP); `None`: the
    /// simulator's default for the protocol.
    pub reject_code: Option<u32>,
    /// Record accepted submits as JSON lines here (order check at the SMSC).
    pub record: Option<PathBuf>,
    /// Give up after this long (what is missing is then counted as lost).
    pub max_time: Duration,
    pub seed: u64,
    /// Put the WAN emulator between the two nodes (off: the IM side dials the
    /// buffer server directly, for loopback throughput).
    pub via_wan: bool,
    /// Run the buffer server as a child process of this `smslink` binary instead of
    /// in-process (to measure its own memory; see [`Progress::bs_pid`]).
    pub bs_binary: Option<PathBuf>,
    /// Give both in-process nodes a metrics listener and scrape their `/metrics`
    /// this often while the scenario runs (to measure what monitoring costs).
    pub metrics_scrape: Option<Duration>,
    /// Keep both nodes' rings in journals in `bs/` and `im/` under this directory.
    pub journal_dir: Option<PathBuf>,
    /// When the journals sync (default: always).
    pub journal_sync: SyncPolicy,
    /// MO the simulator originates per second (`None`: as fast as the buffer server
    /// takes them).
    pub mo_rate: Option<f64>,
    /// Once the link is first up, the WAN emulator refuses every connection (the
    /// current one is cut) for this long, then lets the IM side back in; measured
    /// in [`ScenarioResult::outage`]. Needs `via_wan`.
    pub outage: Option<Duration>,
    /// Run the link over TLS 1.3 with throwaway keys, each side pinning the other's
    /// (off: plaintext, to compare).
    pub tls: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            mt: 1000,
            mo: 1000,
            capacity: 255,
            one_way: Duration::ZERO,
            jitter: Duration::ZERO,
            smsc_delay: Duration::ZERO,
            cut_every: None,
            stall_every: None,
            stall_for: (Duration::from_secs(1), Duration::from_secs(2)),
            heartbeat: Duration::from_millis(300),
            dead_after: Duration::from_millis(1500),
            protocol: Protocol::Cimd2,
            nack_fraction: 0.0,
            reject_fraction: 0.0,
            reject_code: None,
            record: None,
            max_time: Duration::from_secs(120),
            seed: 1,
            via_wan: true,
            bs_binary: None,
            metrics_scrape: None,
            journal_dir: None,
            journal_sync: SyncPolicy::Always,
            mo_rate: None,
            outage: None,
            tls: true,
        }
    }
}

/// Latencies in microseconds, summarised on demand.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: &Latencies) {
        self.0.extend_from_slice(&other.0);
    }

    /// The `q`-quantile (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut v = self.0.clone();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        let (_, x, _) = v.select_nth_unstable(i);
        *x as f64 / 1000.0
    }
}

/// Live counters, handed to the progress callback about once a second.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub mt_sent: u64,
    pub mt_processed: u64,
    pub mo_received: u64,
    pub link_up: bool,
    pub reconnects: u64,
    pub cuts: u64,
    pub stalls: u64,
    pub im_ring_in_use: usize,
    pub bs_ring_in_use: usize,
    /// MO waiting in the buffer server's journal behind its full ring.
    pub bs_backlog: u64,
    /// The buffer server's process id when it runs as a child.
    pub bs_pid: Option<u32>,
}

/// How one direction went.
#[derive(Debug, Clone, Default)]
pub struct DirectionResult {
    pub expected: u64,
    /// Distinct messages that arrived (MO) or came back Processed (MT).
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// MT only: Processed with a rejection, as (seq, CIMD2 error code).
    pub rejected: Vec<(u64, u32)>,
    /// Time from the link's first handshake to the last message delivered.
    pub seconds: f64,
    pub latency: Latencies,
}

impl DirectionResult {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.delivered as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Everything the run measured.
#[derive(Debug, Clone, Default)]
pub struct ScenarioResult {
    pub mt: DirectionResult,
    pub mo: DirectionResult,
    pub seconds: f64,
    /// IM-side connects beyond the first.
    pub reconnects: u64,
    pub cuts: u64,
    pub stalls: u64,
    /// Submits the SMSC accepted or rejected beyond one per MT message.
    pub smsc_duplicates: u64,
    pub sim: crate::smsc_sim::Counters,
    pub im_drained: bool,
    pub bs_drained: bool,
    /// From starting the IM side to the link's first handshake (TCP, TLS when on,
    /// and the link handshake), seconds.
    pub first_up_seconds: f64,
    /// Syncs of both nodes' journals (a child buffer server's as its `/metrics`
    /// said last).
    pub journal_syncs: u64,
    /// With [`Scenario::outage`].
    pub outage: Option<OutageResult>,
}

/// How the buffer server and the SMSC went through [`Scenario::outage`].
#[derive(Debug, Clone, Default)]
pub struct OutageResult {
    /// How long the WAN emulator refused the link.
    pub seconds: f64,
    /// MO the SMSC simulator had answered when the outage began and when it ended:
    /// an SMSC never held back keeps its rate through the outage.
    pub smsc_mo_at_start: u64,
    pub smsc_mo_at_end: u64,
    /// MO the buffer server held unanswered or deferred (`mo_backpressured` +
    /// `mo_deferred` of its SMSC side): 0 when the SMSC was never held back.
    pub smsc_held: u64,
    /// The most MO due at the SMSC and not yet handed over at once: a few when the
    /// buffer server keeps up with the SMSC's rate, growing without bound when not.
    pub smsc_queue_peak: u64,
    /// The most MO seen waiting at the buffer server (ring + journal backlog).
    pub backlog_peak: u64,
    /// Buffer-server VmRSS (child only) just before the outage and at most after.
    pub rss_idle_kb: Option<u64>,
    pub rss_peak_kb: Option<u64>,
    /// MO delivered from the link's return to the last one, and how long it took.
    pub drained: u64,
    pub drain_seconds: f64,
}

impl OutageResult {
    pub fn smsc_mo_per_s(&self) -> f64 {
        per_second(
            self.smsc_mo_at_end.saturating_sub(self.smsc_mo_at_start),
            self.seconds,
        )
    }

    pub fn drain_per_s(&self) -> f64 {
        per_second(self.drained, self.drain_seconds)
    }
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

impl ScenarioResult {
    /// Nothing lost, nothing duplicated, nothing out of order: the verdict of the run,
    /// which every caller of [`run`] checks (a run that finds losses still returns `Ok`).
    #[must_use]
    pub fn clean(&self) -> bool {
        self.mt.lost == 0
            && self.mo.lost == 0
            && self.mt.duplicated == 0
            && self.mo.duplicated == 0
            && self.mt.out_of_order == 0
            && self.mo.out_of_order == 0
            && self.smsc_duplicates == 0
    }
}

const PSK: &[u8] = b"smslink scenario key";

/// Throwaway TLS identities of the two nodes, removed with the run.
struct Certs {
    dir: PathBuf,
    im: crate::certs::SiteIdentity,
    bs: crate::certs::SiteIdentity,
}

impl Certs {
    fn generate(seed: u64) -> Result<Self, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static RUN: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "smslink-scenario-{}-{seed}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Certs {
            im: crate::certs::generate_site("im", &dir)?,
            bs: crate::certs::generate_site("bs", &dir)?,
            dir,
        })
    }

    /// The TLS settings of `me`, pinning `peer`'s key.
    fn spec(me: &crate::certs::SiteIdentity, peer: &crate::certs::SiteIdentity) -> TlsSpec {
        TlsSpec::new(&me.cert, &me.key, PeerAuth::Fingerprint(peer.fingerprint))
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn link(name: &str, peer: &str, s: &Scenario) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c.capacity = s.capacity;
    c.heartbeat_interval = s.heartbeat;
    c.dead_after = s.dead_after;
    c
}

/// Start the four parts; returns them in the order they must stop.
struct Parts {
    _certs: Option<Certs>,
    im: Node,
    im_started: Instant,
    bs: Option<Node>,
    child: Option<KillOnDrop>,
    /// The child buffer server's monitoring listener.
    child_metrics: Option<SocketAddr>,
    wan: Option<Wan>,
    sim: SmscSim,
}

/// What the scenario watches at the buffer server, in-process or a child.
#[derive(Debug, Clone, Copy, Default)]
struct BsSample {
    /// MO waiting: sending ring and journal backlog.
    waiting: u64,
    /// MO held unanswered or deferred at the SMSC.
    held: u64,
    journal_syncs: u64,
}

impl BsSample {
    fn of_node(bs: &Node) -> BsSample {
        let link = bs.link_stats(0).unwrap_or_default();
        let smsc = bs.smsc_stats().unwrap_or_default();
        BsSample {
            waiting: link.tx_in_use as u64 + link.tx_backlog,
            held: smsc.mo_backpressured + smsc.mo_deferred,
            journal_syncs: bs.journal_syncs().unwrap_or(0),
        }
    }

    /// From a child's `/metrics` (`None` when it does not answer).
    fn scrape(addr: SocketAddr) -> Option<BsSample> {
        let text = http_get(addr, "/metrics")?;
        let value = |prefix: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(BsSample {
            waiting: value("smslink_link_ring_in_use{link=\"bs\",direction=\"tx\"}")
                + value("smslink_link_tx_backlog{link=\"bs\"}"),
            held: value("smslink_smsc_mo_backpressured_total{")
                + value("smslink_smsc_mo_deferred_total{"),
            journal_syncs: value("smslink_journal_syncs_total "),
        })
    }
}

/// The body of `GET path` from a monitoring listener.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    c.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n")?.1.to_owned())
}

/// Scrapes `/metrics` of each target every interval on its own thread, like a
/// Prometheus server would; stopped when dropped.
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scraper {
    fn start(targets: Vec<SocketAddr>, every: Duration) -> Scraper {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut body = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for addr in &targets {
                    body.clear();
                    if let Ok(mut c) = std::net::TcpStream::connect(addr) {
                        let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
                        let _ = c.read_to_end(&mut body);
                    }
                }
                std::thread::sleep(every);
            }
        });
        Scraper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A directory of its own under the system's temporary directory, removed with
/// everything in it when dropped (journals of the demo and of tests).
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/<prefix>-<process id>`, empty.
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        // A leftover of an earlier run that had the same process id.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The buffer server's session toward the simulator, in the scenario's protocol, with
/// the simulator's credentials.
pub fn smsc_spec(protocol: Protocol, addr: SocketAddr) -> SmscSpec {
    match protocol {
        Protocol::Cimd2 => SmscSpec::cimd2(
            addr,
            ClientConfig {
                user: "smslink".into(),
                password: "secret".into(),
                ..ClientConfig::default()
            },
        ),
        Protocol::Smpp => SmscSpec::smpp(
            addr,
            SmppConfig {
                system_id: "smslink".into(),
                password: "secret".into(),
                ..SmppConfig::default()
            },
        ),
    }
}

/// Start `smslink buffer-server` listening on an ephemeral port; returns it and the
/// address it announced in its start log line.
fn spawn_bs(
    binary: &std::path::Path,
    s: &Scenario,
    smsc: SocketAddr,
    certs: Option<&Certs>,
) -> Result<(KillOnDrop, SocketAddr, SocketAddr), Box<dyn std::error::Error>> {
    use std::io::BufRead;
    let mut command = std::process::Command::new(binary);
    // The subcommand first: the link options are its own.
    command.arg("buffer-server");
    match certs {
        Some(c) => command
            .arg("--link-tls-cert")
            .arg(&c.bs.cert)
            .arg("--link-tls-key")
            .arg(&c.bs.key)
            .arg("--link-tls-peer-fingerprint")
            .arg(smslink::runtime::tls::fingerprint_hex(&c.im.fingerprint)),
        None => command.arg("--link-insecure-plaintext"),
    };
    let mut child = command
        .args([
            "--smsc-protocol",
            s.protocol.name(),
            "--smsc-user",
            "smslink",
            "--smsc-password",
            "secret",
        ])
        .args(["--smsc-addr", &smsc.to_string()])
        .args([
            "--link-name",
            "bs",
            "--link-peer",
            "im",
            "--link-listen",
            "127.0.0.1:0",
        ])
        .args(["--link-capacity", &s.capacity.to_string()])
        .args(["--link-heartbeat-ms", &s.heartbeat.as_millis().to_string()])
        .args([
            "--link-dead-after-ms",
            &s.dead_after.as_millis().to_string(),
        ])
        .args(["--stats-interval-secs", "0", "--log-level", "info"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(s.journal_dir.iter().flat_map(|d| {
            [
                std::ffi::OsString::from("--journal-dir"),
                d.join("bs").into(),
                "--journal-sync".into(),
                s.journal_sync.to_string().into(),
            ]
        }))
        .arg("--link-psk")
        .arg(String::from_utf8_lossy(PSK).as_ref())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let child = KillOnDrop(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    // The start and metrics lines come first or close to them (the SMSC login may
    // race them).
    let (mut addr, mut metrics) = (None, None);
    for line in lines.by_ref().take(20) {
        let line = line?;
        for w in line.split_whitespace() {
            if let Some(a) = w.strip_prefix("listen=") {
                addr = Some(a.parse()?);
            } else if let Some(a) = w
                .strip_prefix("addr=")
                .filter(|_| line.contains("event=metrics_listening"))
            {
                metrics = Some(a.parse()?);
            }
        }
        if addr.is_some() && metrics.is_some() {
            break;
        }
    }
    let addr = addr.ok_or("buffer server did not say where it listens")?;
    let metrics = metrics.ok_or("buffer server did not say where its metrics are")?;
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok((child, addr, metrics))
}

fn start(
    s: &Scenario,
    stalls: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Result<Parts, Box<dyn std::error::Error>> {
    let defaults = SimConfig::for_protocol(s.protocol);
    let sim = SmscSim::start(SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        processing_delay: s.smsc_delay,
        mo_rate: if s.mo > 0 {
            s.mo_rate.unwrap_or(1e9)
        } else {
            0.0
        },
        mo_count: s.mo,
        // A paced MO stream is the phones' traffic: what the buffer server cannot
        // take at once queues at the SMSC, and the queue's peak says if it kept up.
        mo_queue: s.mo_rate.is_some(),
        mo_text: "mo {num} {t}".into(),
        nack_fraction: s.nack_fraction,
        reject_fraction: s.reject_fraction,
        reject_code: s.reject_code.unwrap_or(defaults.reject_code),
        record: s.record.clone(),
        // A long stall holds MO at the buffer server; the SMSC must not give up first.
        response_timeout: Duration::from_secs(60),
        seed: s.seed,
        log: false,
        ..defaults
    })?;
    let certs = if s.tls {
        Some(Certs::generate(s.seed)?)
    } else {
        None
    };
    let secure =
        |spec: LinkSpec,
         me: fn(&Certs) -> (&crate::certs::SiteIdentity, &crate::certs::SiteIdentity)| {
            match &certs {
                Some(c) => {
                    let (mine, peer) = me(c);
                    spec.with_tls(Certs::spec(mine, peer))
                }
                None => spec.insecure_plaintext(),
            }
        };
    let mut bs_cfg = NodeConfig::new(vec![secure(
        LinkSpec::buffer_server(
            link("bs", "im", s),
            Transport::Listen(SocketAddr::from(([127, 0, 0, 1], 0))),
            smsc_spec(s.protocol, sim.local_addr()),
        ),
        |c| (&c.bs, &c.im),
    )]);
    bs_cfg.seed = s.seed ^ 0xb5;
    let metrics_listen = s
        .metrics_scrape
        .map(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    bs_cfg.metrics_listen = metrics_listen;
    bs_cfg.journal = s.journal_dir.as_ref().map(|d| journal(d.join("bs"), s));
    let (bs, child, child_metrics, bs_addr) = match &s.bs_binary {
        Some(binary) => {
            let (child, addr, metrics) = spawn_bs(binary, s, sim.local_addr(), certs.as_ref())?;
            (None, Some(child), Some(metrics), addr)
        }
        None => {
            let bs = Node::start(bs_cfg)?;
            let addr = bs
                .local_addr(0)
                .ok_or("buffer server has no listening address")?;
            (Some(bs), None, None, addr)
        }
    };
    let mut wan_cfg = WanConfig::new(bs_addr).with_delay(s.one_way);
    if !s.jitter.is_zero() {
        wan_cfg = wan_cfg.with_jitter(Jitter::Uniform(s.jitter));
    }
    wan_cfg.cut_every = s.cut_every;
    wan_cfg.stall_every = s.stall_every;
    wan_cfg.stall_for = s.stall_for;
    wan_cfg.seed = s.seed;
    let wan = if s.via_wan {
        Some(Wan::start_with_events(wan_cfg, move |ev| {
            if *ev == crate::wan::WanEvent::Stall(true) {
                stalls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })?)
    } else {
        None
    };
    let im_dials = wan.as_ref().map_or(bs_addr, |w| w.local_addr());
    let mut im_cfg = NodeConfig::new(vec![secure(
        LinkSpec::new(link("im", "bs", s), Transport::Dial(im_dials)),
        |c| (&c.im, &c.bs),
    )]);
    im_cfg.reconnect_min = Duration::from_millis(50);
    im_cfg.reconnect_max = Duration::from_millis(500);
    im_cfg.seed = s.seed ^ 0x1a;
    im_cfg.metrics_listen = metrics_listen;
    im_cfg.journal = s.journal_dir.as_ref().map(|d| journal(d.join("im"), s));
    let im_started = Instant::now();
    let im = Node::start(im_cfg)?;
    Ok(Parts {
        _certs: certs,
        im,
        im_started,
        bs,
        child,
        child_metrics,
        wan,
        sim,
    })
}

fn journal(dir: PathBuf, s: &Scenario) -> JournalSpec {
    let mut spec = JournalSpec::new(dir);
    spec.config.sync = s.journal_sync;
    spec
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// The driver's score card.
struct Score {
    began: Instant,
    /// The link's first handshake: throughput is measured from here.
    first_up: Option<Instant>,
    sent_at: Vec<Option<Instant>>,
    mt: DirectionResult,
    mo: DirectionResult,
    mo_seen: Vec<bool>,
    mo_last: u64,
    last_mt_at: Instant,
    last_mo_at: Instant,
    pending_acks: Vec<(usize, u64)>,
    /// The latest handshake of the link, and MO delivered by then.
    last_up: Option<(Instant, u64)>,
}

impl Score {
    fn on_event(&mut self, im: &Node, ev: NodeEvent) {
        match ev {
            NodeEvent::Received { link, seq, message } => {
                let text = message.text_str().unwrap_or("");
                let mut words = text.split(' ').skip(1);
                let n: u64 = words.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                let t: u128 = words.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                match self.mo_seen.get_mut(n as usize) {
                    Some(seen) if n > 0 => {
                        if *seen {
                            self.mo.duplicated += 1;
                        } else {
                            *seen = true;
                            self.mo.delivered += 1;
                            let micros = now_micros().saturating_sub(t).min(u64::MAX as u128);
                            self.mo.latency.push(Duration::from_micros(micros as u64));
                            self.last_mo_at = Instant::now();
                        }
                        if n != self.mo_last + 1 {
                            self.mo.out_of_order += 1;
                        }
                        self.mo_last = n;
                    }
                    _ => self.mo.duplicated += 1,
                }
                if matches!(im.ack(link, seq, Outcome::Accepted), Err(NodeError::Busy)) {
                    self.pending_acks.push((link, seq));
                }
            }
            NodeEvent::Status {
                seq,
                state: SlotState::Processed,
                outcome,
                ..
            } => match self.sent_at.get_mut(seq.wrapping_sub(1) as usize) {
                Some(slot @ Some(_)) => {
                    if let Some(at) = slot.take() {
                        self.mt.latency.push(at.elapsed());
                    }
                    self.mt.delivered += 1;
                    self.last_mt_at = Instant::now();
                    if let Some(Outcome::Rejected { code }) = outcome {
                        self.mt.rejected.push((seq, code));
                    }
                }
                _ => self.mt.duplicated += 1,
            },
            NodeEvent::LinkUp { .. } => {
                let now = Instant::now();
                self.first_up.get_or_insert(now);
                self.last_up = Some((now, self.mo.delivered));
            }
            _ => {}
        }
    }
}

/// Run the scenario; `progress` is called about once a second. `Err` means the parts
/// could not run; whether the messages came through is [`ScenarioResult::clean`].
pub fn run(
    s: &Scenario,
    mut progress: impl FnMut(&Progress),
) -> Result<ScenarioResult, Box<dyn std::error::Error>> {
    let stall_count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let parts = start(s, stall_count.clone())?;
    let stalls = || stall_count.load(std::sync::atomic::Ordering::Relaxed);
    let Parts {
        im, bs, wan, child, ..
    } = &parts;
    let bs_pid = child.as_ref().map(|c| c.0.id());
    let _scraper = s.metrics_scrape.map(|every| {
        let targets = [Some(im), bs.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(Node::metrics_addr)
            .collect();
        Scraper::start(targets, every)
    });
    let began = Instant::now();
    let deadline = began + s.max_time;
    let mut score = Score {
        began,
        first_up: None,
        sent_at: vec![None; s.mt as usize],
        mt: DirectionResult {
            expected: s.mt,
            ..DirectionResult::default()
        },
        mo: DirectionResult {
            expected: s.mo,
            ..DirectionResult::default()
        },
        mo_seen: vec![false; s.mo as usize + 1],
        mo_last: 0,
        last_mt_at: began,
        last_mo_at: began,
        pending_acks: Vec::new(),
        last_up: None,
    };
    if s.outage.is_some() && wan.is_none() {
        return Err("an outage needs the WAN emulator (via_wan)".into());
    }
    let mut outage = Outages::default();
    let bs_sample = || match (bs, parts.child_metrics) {
        (Some(bs), _) => Some(BsSample::of_node(bs)),
        (None, Some(addr)) => BsSample::scrape(addr),
        (None, None) => None,
    };
    let rss = || bs_pid.and_then(crate::child::rss_kb);
    let mut last_bs = BsSample::default();
    let mut mt_sent = 0u64;
    let mut next_progress = began + Duration::from_secs(1);
    let mut bs_drained = false;
    let mut final_progress_done = false;
    let mut text = String::new();

    loop {
        let now = Instant::now();
        // Feed MT until the ring refuses.
        while mt_sent < s.mt {
            use std::fmt::Write as _;
            text.clear();
            let _ = write!(text, "mt {mt_sent}");
            let m = Message::text("4670000002", "4670000001", &text)?;
            match im.send_on(0, &m) {
                Ok(r) => {
                    if let Some(slot) = score.sent_at.get_mut((r.seq - 1) as usize) {
                        *slot = Some(now);
                    }
                    mt_sent += 1;
                }
                Err(NodeError::Full { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Acknowledgements the command queue could not take before.
        score
            .pending_acks
            .retain(|&(l, seq)| matches!(im.ack(l, seq, Outcome::Accepted), Err(NodeError::Busy)));
        let mut any = false;
        while let Some(ev) = im.try_event() {
            any = true;
            score.on_event(im, ev);
        }
        while bs.as_ref().and_then(|b| b.try_event()).is_some() {
            any = true;
        }
        let now = Instant::now();
        if let (Some(length), Some(wan)) = (s.outage, wan) {
            outage.step(length, &score, wan, &parts.sim, now, &rss, &mut || {
                bs_sample().map(|b| {
                    last_bs = b;
                    b.waiting
                })
            });
        }
        let finished = score.mt.delivered >= s.mt && score.mo.delivered >= s.mo;
        // Once a second, and once more at the end.
        if now >= next_progress || (finished && !final_progress_done) {
            final_progress_done = finished;
            next_progress += Duration::from_secs(1);
            if let Some(b) = bs_sample() {
                last_bs = b;
            }
            outage.sample(last_bs.waiting, rss());
            let im_stats = im.link_stats(0).unwrap_or_default();
            let bs_stats = bs
                .as_ref()
                .and_then(|b| b.link_stats(0))
                .unwrap_or_default();
            progress(&Progress {
                elapsed: now - began,
                mt_sent,
                mt_processed: score.mt.delivered,
                mo_received: score.mo.delivered,
                link_up: im_stats.up,
                reconnects: im_stats.connects.saturating_sub(1),
                cuts: wan.as_ref().map_or(0, |w| w.stats().cuts),
                stalls: stalls(),
                im_ring_in_use: im_stats.tx_in_use,
                bs_ring_in_use: bs_stats.tx_in_use,
                bs_backlog: last_bs.waiting.saturating_sub(bs_stats.tx_in_use as u64),
                bs_pid,
            });
        }
        if finished {
            // Done when the buffer server has seen every MO Processed too.
            bs_drained = match bs {
                Some(bs) => bs
                    .link_stats(0)
                    .is_some_and(|l| l.tx.last_processed >= s.mo && l.tx_in_use == 0),
                // A child's rings are not visible from here.
                None => true,
            };
            if bs_drained {
                break;
            }
        }
        if now >= deadline {
            break;
        }
        if !any {
            if let Some(ev) = im.wait_event(Some(Duration::from_millis(2))) {
                score.on_event(im, ev);
            }
        }
    }
    let mut mt = score.mt;
    let mut mo = score.mo;
    mt.lost = s.mt.saturating_sub(mt.delivered);
    mo.lost = s.mo.saturating_sub(mo.delivered);
    let from = score.first_up.unwrap_or(score.began);
    mt.seconds = score
        .last_mt_at
        .saturating_duration_since(from)
        .as_secs_f64();
    mo.seconds = score
        .last_mo_at
        .saturating_duration_since(from)
        .as_secs_f64();
    let im_stats = im.link_stats(0).unwrap_or_default();
    let cuts = wan.as_ref().map_or(0, |w| w.stats().cuts);
    let first_up_seconds = score.first_up.map_or(0.0, |t| {
        t.saturating_duration_since(parts.im_started).as_secs_f64()
    });
    let last_bs = bs_sample().unwrap_or(last_bs);
    let outage = s.outage.map(|_| {
        let queue_peak = parts.sim.counters().mo_queue_peak;
        outage.result(last_bs.held, queue_peak, score.last_mo_at, mo.delivered)
    });
    let journal_syncs = last_bs.journal_syncs + im.journal_syncs().unwrap_or(0);
    let Parts {
        _certs,
        im,
        im_started: _,
        bs,
        child,
        child_metrics: _,
        wan,
        sim,
    } = parts;
    let im_report = im.shutdown(Duration::from_millis(500));
    if let Some(bs) = bs {
        let _ = bs.shutdown(Duration::from_millis(200));
    }
    drop(child);
    if let Some(mut wan) = wan {
        wan.stop();
    }
    let sim = sim.stop()?;
    let smsc_duplicates =
        (sim.submits_accepted + sim.submits_rejected).saturating_sub(mt.delivered);
    Ok(ScenarioResult {
        seconds: began.elapsed().as_secs_f64(),
        reconnects: im_stats.connects.saturating_sub(1),
        cuts,
        stalls: stalls(),
        smsc_duplicates,
        sim,
        im_drained: im_report.drained,
        bs_drained,
        first_up_seconds,
        journal_syncs,
        outage,
        mt,
        mo,
    })
}

/// The outage's course: begun once the link is first up, ended after its length,
/// then the link's return and the drain.
#[derive(Default)]
struct Outages {
    began: Option<Instant>,
    ended: Option<Instant>,
    /// The link's first handshake after the outage, and MO delivered by then.
    returned: Option<(Instant, u64)>,
    result: OutageResult,
}

impl Outages {
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        length: Duration,
        score: &Score,
        wan: &Wan,
        sim: &SmscSim,
        now: Instant,
        rss: &dyn Fn() -> Option<u64>,
        waiting: &mut dyn FnMut() -> Option<u64>,
    ) {
        match (self.began, self.ended) {
            (None, _) if score.first_up.is_some() => {
                self.result.rss_idle_kb = rss();
                self.result.smsc_mo_at_start = sim.counters().mo_acked;
                wan.set_outage(Outage::Refuse);
                self.began = Some(Instant::now());
            }
            (Some(began), None) if now >= began + length => {
                // The backlog is largest now, just before the link may return.
                let at_end = waiting();
                self.sample(at_end.unwrap_or(0), rss());
                self.result.smsc_mo_at_end = sim.counters().mo_acked;
                wan.set_outage(Outage::None);
                let ended = Instant::now();
                self.result.seconds = (ended - began).as_secs_f64();
                self.ended = Some(ended);
            }
            (Some(_), Some(ended)) if self.returned.is_none() => {
                self.returned = score.last_up.filter(|(t, _)| *t >= ended);
            }
            _ => {}
        }
    }

    fn sample(&mut self, waiting: u64, rss_kb: Option<u64>) {
        let r = &mut self.result;
        r.backlog_peak = r.backlog_peak.max(waiting);
        if self.began.is_some() {
            r.rss_peak_kb = r.rss_peak_kb.max(rss_kb);
        }
    }

    fn result(
        mut self,
        held: u64,
        queue_peak: u64,
        last_mo_at: Instant,
        mo_delivered: u64,
    ) -> OutageResult {
        self.result.smsc_held = held;
        self.result.smsc_queue_peak = queue_peak;
        if let Some((up, delivered_then)) = self.returned {
            self.result.drained = mo_delivered.saturating_sub(delivered_then);
            self.result.drain_seconds = last_mo_at.saturating_duration_since(up).as_secs_f64();
        }
        self.result
    }
}
