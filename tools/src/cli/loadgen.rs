//! `smslink loadgen`: many links on one IM-side node, measured from outside.
//!
//! Three kinds of process, all this binary:
//! * the node under test (`--role node`): one IM-side node whose links dial, as an
//!   IM server dials its buffer servers; the application acknowledges every message.
//!   Alone in its process, so its VmRSS is its own;
//! * peer processes (`--role peers`): the buffer-server ends, each a node with a
//!   share of the listening links (a listener and a connection per link cost two
//!   descriptors, so the links are spread over several processes), each link on its
//!   own loopback address; the busy links send as fast as their window allows;
//! * the coordinator (the default): starts them, reads the node's RSS before its
//!   links, with all links up and idle, and at its peak while the busy links send;
//!   with `--restart` it SIGKILLs the node, starts it again and times until every
//!   link is back.
//!
//! The processes talk over their stdin and stdout, one line per command or report.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::log::{self, Level};
use smslink::runtime::{
    HandshakeLimits, LinkSpec, Node, NodeConfig, NodeEvent, PeerAuth, TlsSpec, Transport,
};

use crate::certs;
use crate::child::{rss_kb, KillOnDrop};
use crate::scenario::TempDir;

const PSK: &[u8] = b"loadgen link key (not a secret)";
/// Descriptors a process keeps besides its links' (poll, waker, pipes, files).
const SPARE_FDS: u64 = 64;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    Node,
    Peers,
}

/// Open N links to one IM-side node (a process of its own), drive traffic on a
/// fraction of them, and report the node's memory per link, the aggregate message
/// rate and, with --restart, how long all links take to come back after the node
/// is killed and started again.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Links on the node.
    #[arg(long, default_value_t = 1000)]
    pub links: usize,
    /// Fraction of the links that carry traffic (spread evenly over the links).
    #[arg(long, default_value_t = 0.01)]
    pub busy: f64,
    /// How long the busy links send.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Run the links over TLS 1.3 (throwaway keys), as the product does by default;
    /// plaintext otherwise.
    #[arg(long)]
    pub tls: bool,
    /// Then SIGKILL the node, start it again and time until every link is back.
    #[arg(long)]
    pub restart: bool,
    /// The node's dials per second (its handshake budget).
    #[arg(long, default_value_t = HandshakeLimits::default().per_second)]
    pub handshake_rate: f64,
    /// The node's dialled connections in setup at once.
    #[arg(long, default_value_t = HandshakeLimits::default().max_concurrent)]
    pub max_handshakes: usize,
    /// Links per peer process (each costs a listener and a connection descriptor).
    #[arg(long, default_value_t = 4000)]
    pub links_per_process: usize,
    /// Give up waiting for links after this long.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value_t = Role::Coordinator, hide = true)]
    pub role: Role,
    /// Peers: the first link's number and how many links.
    #[arg(long, default_value_t = 0, hide = true)]
    pub first: usize,
    #[arg(long, default_value_t = 0, hide = true)]
    pub count: usize,
    /// Node: the file of `number address` lines; TLS identities live beside it.
    #[arg(long, hide = true)]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    match args.role {
        Role::Coordinator => coordinate(&args),
        Role::Node => {
            log::set_level(Level::Warn);
            run_node(&args)
        }
        Role::Peers => {
            log::set_level(Level::Warn);
            run_peers(&args)
        }
    }
}

/// Link `i` of `n` carries traffic: `round(n * busy)` links, spread evenly.
fn is_busy(i: usize, n: usize, busy: f64) -> bool {
    let total = ((n as f64 * busy.clamp(0.0, 1.0)).round() as usize).min(n);
    (i + 1) * total / n > i * total / n
}

fn busy_count(n: usize, busy: f64) -> usize {
    (0..n).filter(|&i| is_busy(i, n, busy)).count()
}

/// Each peer link on its own loopback address (port 0: the kernel picks), so that
/// thousands of listeners do not compete for one address's ports.
fn peer_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

fn node_name(i: usize) -> String {
    format!("im{i}")
}

fn peer_name(i: usize) -> String {
    format!("peer{i}")
}

/// The TLS of one end: its own identity, the other end's key pinned.
fn tls_spec(dir: &Path, own: &str, other: &str) -> Result<TlsSpec, String> {
    let fingerprint = certs::fingerprint_of(&dir.join(format!("{other}.crt")))?;
    Ok(TlsSpec::new(
        dir.join(format!("{own}.crt")),
        dir.join(format!("{own}.key")),
        PeerAuth::Fingerprint(fingerprint),
    ))
}

fn secure(spec: LinkSpec, tls: &Option<TlsSpec>) -> LinkSpec {
    match tls {
        Some(t) => spec.with_tls(t.clone()),
        None => spec.insecure_plaintext(),
    }
}

/// Lines from stdin, on a channel (the loops below wait on events, not on stdin).
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The node under test: dials every peer link, acknowledges every message.
fn run_node(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = args.dir.as_deref().ok_or("--dir is needed")?;
    let limit = smslink::runtime::raise_fd_limit();
    let addrs: Vec<SocketAddr> = std::fs::read_to_string(dir.join("links"))?
        .lines()
        .map(|l| l.parse())
        .collect::<Result<_, _>>()?;
    if addrs.len() as u64 + SPARE_FDS > limit {
        return Err(format!(
            "{} links need {} descriptors; the limit is {limit}",
            addrs.len(),
            addrs.len() as u64 + SPARE_FDS
        )
        .into());
    }
    let commands = stdin_lines();
    // The coordinator reads the RSS of the process before any link exists.
    say("waiting");
    if commands.recv().as_deref() != Ok("start") {
        return Ok(());
    }
    let tls = args.tls.then(|| tls_spec(dir, "im", "peer")).transpose()?;
    let links = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let mut c = LinkConfig::new(&node_name(i), PSK);
            c.expected_peer = Some(peer_name(i));
            secure(LinkSpec::new(c, Transport::Dial(*addr)), &tls)
        })
        .collect();
    let mut config = NodeConfig::new(links);
    config.handshakes = HandshakeLimits {
        per_second: args.handshake_rate,
        max_concurrent: args.max_handshakes,
        ..HandshakeLimits::default()
    };
    let node = Node::start(config)?;
    say("started");
    let mut up = 0usize;
    let mut received = 0u64;
    loop {
        match commands.try_recv() {
            Ok(c) if c == "stats" => {
                let s = node.loop_stats();
                say(&format!(
                    "stats up={up} received={received} turns={} visits={} handshakes_peak={} handshakes_in_progress={}",
                    s.turns, s.link_visits, s.handshakes_peak, s.handshakes_in_progress
                ));
            }
            Ok(_) => {}
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
        }
        let Some(ev) = node.wait_event(Some(Duration::from_millis(20))) else {
            continue;
        };
        let mut ev = Some(ev);
        while let Some(e) = ev.take().or_else(|| node.try_event()) {
            match e {
                NodeEvent::Received { link, seq, .. } => {
                    received += 1;
                    let _ = node.ack(link, seq, Outcome::Accepted);
                }
                NodeEvent::LinkUp { .. } => up += 1,
                NodeEvent::LinkDown { .. } => up = up.saturating_sub(1),
                _ => {}
            }
        }
    }
}

/// A share of the far ends: listening links, the busy ones sending on command.
fn run_peers(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let limit = smslink::runtime::raise_fd_limit();
    let need = 2 * args.count as u64 + SPARE_FDS;
    if need > limit {
        return Err(format!(
            "{} links need {need} descriptors; the limit is {limit}",
            args.count
        )
        .into());
    }
    let tls = match &args.dir {
        Some(dir) if args.tls => Some(tls_spec(dir, "peer", "im")?),
        _ => None,
    };
    let range = args.first..args.first + args.count;
    let links = range
        .clone()
        .map(|i| {
            let mut c = LinkConfig::new(&peer_name(i), PSK);
            c.expected_peer = Some(node_name(i));
            secure(
                LinkSpec::new(c, Transport::Listen(SocketAddr::new(peer_ip(i), 0))),
                &tls,
            )
        })
        .collect();
    let node = Node::start(NodeConfig::new(links))?;
    for (id, i) in range.clone().enumerate() {
        let addr = node.local_addr(id).ok_or("a listener without an address")?;
        say(&format!("addr {i} {addr}"));
    }
    say("listening");
    let busy: Vec<usize> = range
        .clone()
        .enumerate()
        .filter(|&(_, i)| is_busy(i, args.links, args.busy))
        .map(|(id, _)| id)
        .collect();
    let text = "loadgen: a message of about one hundred characters, as an SMS often is, sent as fast as the window allows.";
    let batch = vec![Message::text("4670000001", "4670000002", text)?; 255];
    let commands = stdin_lines();
    // Links up since the last `mark` (the start counts as one).
    let mut back = vec![false; args.count];
    let mut back_count = 0;
    let mut up = 0usize;
    let mut marked_at = Instant::now();
    let mut all_down_said = true;
    let mut sending_until: Option<Instant> = None;
    let mut sending_since = Instant::now();
    let mut processed = 0u64;
    loop {
        match commands.try_recv() {
            Ok(c) if c == "mark" => {
                back.iter_mut().for_each(|b| *b = false);
                back_count = 0;
                all_down_said = false;
                marked_at = Instant::now();
                say("marked");
            }
            Ok(c) => {
                if let Some(s) = c.strip_prefix("busy ") {
                    let seconds: f64 = s.parse()?;
                    processed = 0;
                    sending_since = Instant::now();
                    sending_until = Some(sending_since + Duration::from_secs_f64(seconds));
                }
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
        }
        if let Some(until) = sending_until {
            if Instant::now() >= until {
                sending_until = None;
                let seconds = sending_since.elapsed().as_secs_f64();
                say(&format!(
                    "busy_done processed={processed} seconds={seconds:.3}"
                ));
            } else {
                for &id in &busy {
                    let room = node.free_slots(id).unwrap_or(0).min(batch.len());
                    if room > 0 {
                        let _ = node.send_batch(id, &batch[..room]);
                    }
                }
            }
        }
        let wait = if sending_until.is_some() { 1 } else { 20 };
        let Some(ev) = node.wait_event(Some(Duration::from_millis(wait))) else {
            continue;
        };
        let mut ev = Some(ev);
        while let Some(e) = ev.take().or_else(|| node.try_event()) {
            match e {
                NodeEvent::LinkUp { link, .. } => {
                    up += 1;
                    if !back[link] {
                        back[link] = true;
                        back_count += 1;
                        if back_count == args.count {
                            say(&format!("all_back ms={}", marked_at.elapsed().as_millis()));
                        }
                    }
                }
                NodeEvent::LinkDown { .. } => {
                    up = up.saturating_sub(1);
                    if up == 0 && !all_down_said {
                        all_down_said = true;
                        say("all_down");
                    }
                }
                NodeEvent::Status {
                    state: SlotState::Processed,
                    ..
                } if sending_until.is_some() => processed += 1,
                _ => {}
            }
        }
    }
}

/// A child process and the lines it writes.
struct Child {
    process: KillOnDrop,
    stdin: ChildStdin,
}

impl Child {
    fn spawn(
        args: &[String],
        index: usize,
        lines: &Sender<(usize, String)>,
    ) -> std::io::Result<Child> {
        let mut process = KillOnDrop(
            Command::new(std::env::current_exe()?)
                .arg("loadgen")
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?,
        );
        let stdin = process.0.stdin.take().expect("piped");
        let stdout = process.0.stdout.take().expect("piped");
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send((index, line)).is_err() {
                    break;
                }
            }
            let _ = lines.send((index, "exited".into()));
        });
        Ok(Child { process, stdin })
    }

    fn tell(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()
    }
}

/// The coordinator's view of its children's lines.
struct Lines {
    rx: Receiver<(usize, String)>,
    deadline: Duration,
}

impl Lines {
    /// Lines until `want` returns true for one from each of `from`; their values.
    fn each<T>(
        &self,
        from: &[usize],
        what: &str,
        mut want: impl FnMut(&str) -> Option<T>,
    ) -> Result<Vec<T>, String> {
        let end = Instant::now() + self.deadline;
        let mut got: Vec<Option<T>> = from.iter().map(|_| None).collect();
        while got.iter().any(Option::is_none) {
            let left = end.saturating_duration_since(Instant::now());
            let (index, line) = match self.rx.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no {what} within {:?}", self.deadline))
                }
                Err(RecvTimeoutError::Disconnected) => return Err("children gone".into()),
            };
            let Some(slot) = from.iter().position(|&i| i == index) else {
                continue;
            };
            if line == "exited" && got[slot].is_none() {
                return Err(format!("process {index} exited while waiting for {what}"));
            }
            if got[slot].is_none() {
                got[slot] = want(&line);
            }
        }
        Ok(got.into_iter().flatten().collect())
    }
}

fn field<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn coordinate(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.links == 0 {
        return Err("--links must be at least 1".into());
    }
    let limit = smslink::runtime::raise_fd_limit();
    let per_process = args
        .links_per_process
        .min(((limit.saturating_sub(SPARE_FDS)) / 2) as usize)
        .max(1);
    let dir = TempDir::new("smslink-loadgen")?;
    if args.tls {
        certs::generate_site("im", dir.path())?;
        certs::generate_site("peer", dir.path())?;
    }
    let (tx, rx) = mpsc::channel();
    let lines = Lines {
        rx,
        deadline: Duration::from_secs(args.timeout_s),
    };
    let mut common = vec![
        "--links".to_string(),
        args.links.to_string(),
        "--busy".into(),
        args.busy.to_string(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    if args.tls {
        common.push("--tls".into());
    }
    // Peer processes: children 1.., the node is child 0.
    let mut peers = Vec::new();
    for (k, first) in (0..args.links).step_by(per_process).enumerate() {
        let count = per_process.min(args.links - first);
        let mut a = common.clone();
        a.extend(["--role", "peers", "--first"].map(String::from));
        a.push(first.to_string());
        a.push("--count".into());
        a.push(count.to_string());
        peers.push(Child::spawn(&a, k + 1, &tx)?);
    }
    let peer_ids: Vec<usize> = (1..=peers.len()).collect();
    let mut addrs = vec![String::new(); args.links];
    lines.each(&peer_ids, "peer listeners", |l| {
        if let Some(rest) = l.strip_prefix("addr ") {
            let mut it = rest.split(' ');
            if let (Some(Ok(i)), Some(a)) = (it.next().map(str::parse::<usize>), it.next()) {
                if let Some(slot) = addrs.get_mut(i) {
                    *slot = a.to_owned();
                }
            }
        }
        (l == "listening").then_some(())
    })?;
    std::fs::write(dir.path().join("links"), addrs.join("\n"))?;

    let mut node_args = common.clone();
    node_args.extend(["--role", "node", "--handshake-rate"].map(String::from));
    node_args.push(args.handshake_rate.to_string());
    node_args.push("--max-handshakes".into());
    node_args.push(args.max_handshakes.to_string());
    let start_node = |lines: &Lines| -> Result<(Child, u64, Instant), Box<dyn std::error::Error>> {
        let mut node = Child::spawn(&node_args, 0, &tx)?;
        lines.each(&[0], "the node", |l| (l == "waiting").then_some(()))?;
        let base = rss_kb(node.process.id()).unwrap_or(0);
        let began = Instant::now();
        node.tell("start")?;
        Ok((node, base, began))
    };
    let (mut node, rss_base, began) = start_node(&lines)?;
    let back_ms = |lines: &Lines| {
        lines.each(&peer_ids, "all links up", |l| {
            field::<u64>(l, "ms").filter(|_| l.starts_with("all_back"))
        })
    };
    back_ms(&lines)?;
    let up_s = began.elapsed().as_secs_f64();
    let stats_up = node_stats(&mut node, &lines)?;
    // A second of idleness: the last handshakes' transient allocations settle, and
    // the loop's turns are only heartbeats. Then two seconds of the idle node's CPU.
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = settled_rss(node.process.id());
    let idle_cpu = CpuUse::start(node.process.id());
    std::thread::sleep(Duration::from_secs(2));
    let cpu_idle = idle_cpu.share();
    let stats_idle = node_stats(&mut node, &lines)?;

    let busy_links = busy_count(args.links, args.busy);
    let mut rss_busy = rss_idle;
    let mut cpu_busy = 0.0;
    let (mut processed, mut seconds) = (0u64, 0f64);
    if busy_links > 0 && args.seconds > 0.0 {
        for p in &mut peers {
            p.tell(&format!("busy {}", args.seconds))?;
        }
        let peak = PeakRss::watch(node.process.id());
        let busy_cpu = CpuUse::start(node.process.id());
        let done = lines.each(&peer_ids, "the busy phase's end", |l| {
            l.starts_with("busy_done")
                .then(|| (field::<u64>(l, "processed"), field::<f64>(l, "seconds")))
        })?;
        for (p, s) in done {
            processed += p.unwrap_or(0);
            seconds = seconds.max(s.unwrap_or(0.0));
        }
        rss_busy = rss_busy.max(peak.stop());
        cpu_busy = busy_cpu.share();
    }
    let stats_busy = node_stats(&mut node, &lines)?;

    let mut restart = None;
    if args.restart {
        for p in &mut peers {
            p.tell("mark")?;
        }
        lines.each(&peer_ids, "marks", |l| (l == "marked").then_some(()))?;
        drop(node);
        lines.each(&peer_ids, "links down", |l| (l == "all_down").then_some(()))?;
        let (mut again, _, began) = start_node(&lines)?;
        let peak = PeakRss::watch(again.process.id());
        back_ms(&lines)?;
        let seconds = began.elapsed().as_secs_f64();
        let rss_peak_kb = peak.stop();
        let stats = node_stats(&mut again, &lines)?;
        restart = Some(Restart {
            seconds,
            handshakes_peak: stats.handshakes_peak,
            rss_peak_kb,
        });
        node = again;
    }
    drop(node);
    let report = Report {
        links: args.links,
        busy_links,
        tls: args.tls,
        peer_processes: peers.len(),
        rss_base_kb: rss_base,
        rss_idle_kb: rss_idle,
        rss_busy_kb: rss_busy,
        up_s,
        processed,
        seconds,
        visits_per_turn_idle: stats_idle.visits_per_turn(&stats_up),
        visits_per_turn_busy: stats_busy.visits_per_turn(&stats_idle),
        handshakes_peak: stats_idle.handshakes_peak,
        cpu_idle,
        cpu_busy,
        received_by_node: stats_busy.received - stats_idle.received,
        max_handshakes: args.max_handshakes,
        restart,
    };
    report.print(args.json);
    if report
        .restart
        .is_some_and(|r| r.handshakes_peak > args.max_handshakes)
        || stats_idle.handshakes_peak > args.max_handshakes
    {
        return Err("more handshakes at once than the cap".into());
    }
    Ok(())
}

/// The CPU time a process used (user and system, Linux), as a share of one core
/// over the wall-clock time since `start`.
struct CpuUse {
    pid: u32,
    cpu: f64,
    since: Instant,
}

impl CpuUse {
    fn start(pid: u32) -> CpuUse {
        CpuUse {
            pid,
            cpu: cpu_seconds(pid).unwrap_or(0.0),
            since: Instant::now(),
        }
    }

    fn share(&self) -> f64 {
        let used = cpu_seconds(self.pid).unwrap_or(0.0) - self.cpu;
        used / self.since.elapsed().as_secs_f64().max(1e-9)
    }
}

/// utime + stime of a process in seconds, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) end in ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// The highest VmRSS of a process, sampled every 20 ms until stopped.
struct PeakRss {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    fn watch(pid: u32) -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(rss_kb(pid).unwrap_or(0))
        });
        PeakRss { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// The node killed and started again: until every link was back, and the most
/// handshakes and RAM it took on the way.
#[derive(Debug, Clone, Copy)]
struct Restart {
    seconds: f64,
    handshakes_peak: usize,
    rss_peak_kb: u64,
}

/// The RSS once it stopped moving (at most a second of looking).
fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_kb(pid).unwrap_or(0);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kb(pid).unwrap_or(0);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[derive(Debug, Clone, Copy, Default)]
struct NodeStats {
    turns: u64,
    received: u64,
    visits: u64,
    handshakes_peak: usize,
}

impl NodeStats {
    fn visits_per_turn(&self, before: &NodeStats) -> f64 {
        let turns = self.turns.saturating_sub(before.turns).max(1);
        self.visits.saturating_sub(before.visits) as f64 / turns as f64
    }
}

fn node_stats(node: &mut Child, lines: &Lines) -> Result<NodeStats, Box<dyn std::error::Error>> {
    node.tell("stats")?;
    let got = lines.each(&[0], "the node's stats", |l| {
        l.starts_with("stats ").then(|| NodeStats {
            turns: field(l, "turns").unwrap_or(0),
            received: field(l, "received").unwrap_or(0),
            visits: field(l, "visits").unwrap_or(0),
            handshakes_peak: field(l, "handshakes_peak").unwrap_or(0),
        })
    })?;
    Ok(got[0])
}

struct Report {
    links: usize,
    busy_links: usize,
    tls: bool,
    peer_processes: usize,
    rss_base_kb: u64,
    rss_idle_kb: u64,
    rss_busy_kb: u64,
    up_s: f64,
    processed: u64,
    seconds: f64,
    visits_per_turn_idle: f64,
    visits_per_turn_busy: f64,
    handshakes_peak: usize,
    received_by_node: u64,
    /// The node's CPU, as a share of one core, idle and while busy.
    cpu_idle: f64,
    cpu_busy: f64,
    max_handshakes: usize,
    restart: Option<Restart>,
}

impl Report {
    fn print(&self, json: bool) {
        let per_idle = self.rss_idle_kb.saturating_sub(self.rss_base_kb) as f64 / self.links as f64;
        let per_busy_extra = self.rss_busy_kb.saturating_sub(self.rss_idle_kb) as f64
            / self.busy_links.max(1) as f64;
        let rate = if self.seconds > 0.0 {
            self.processed as f64 / self.seconds
        } else {
            0.0
        };
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "links": self.links,
                    "busy_links": self.busy_links,
                    "tls": self.tls,
                    "peer_processes": self.peer_processes,
                    "rss_before_links_kb": self.rss_base_kb,
                    "rss_idle_kb": self.rss_idle_kb,
                    "rss_busy_kb": self.rss_busy_kb,
                    "kb_per_idle_link": per_idle,
                    "kb_per_busy_link": per_idle + per_busy_extra,
                    "links_up_s": self.up_s,
                    "msgs_per_s": rate,
                    "messages": self.processed,
                    "received_by_node": self.received_by_node,
                    "cpu_idle": self.cpu_idle,
                    "cpu_busy": self.cpu_busy,
                    "visits_per_turn_idle": self.visits_per_turn_idle,
                    "visits_per_turn_busy": self.visits_per_turn_busy,
                    "handshakes_peak": self.handshakes_peak,
                    "max_handshakes": self.max_handshakes,
                    "restart_s": self.restart.map(|r| r.seconds),
                    "restart_handshakes_peak": self.restart.map(|r| r.handshakes_peak),
                    "restart_rss_peak_kb": self.restart.map(|r| r.rss_peak_kb),
                })
            );
            return;
        }
        let mode = if self.tls { "TLS 1.3" } else { "plaintext" };
        println!(
            "{} links ({mode}), {} busy; the node alone in its process, {} peer processes",
            self.links, self.busy_links, self.peer_processes
        );
        println!(
            "node RSS: {} kB before links, {} kB all links up and idle, {} kB at most while busy",
            self.rss_base_kb, self.rss_idle_kb, self.rss_busy_kb
        );
        println!(
            "RAM per idle link: {per_idle:.1} kB; per busy link: {:.1} kB",
            per_idle + per_busy_extra
        );
        println!(
            "all links up {:.2} s after the node started (handshakes at once: {} of {} allowed)",
            self.up_s, self.handshakes_peak, self.max_handshakes
        );
        println!(
            "traffic: {} messages in {:.1} s over {} busy links: {rate:.0} msg/s",
            self.processed, self.seconds, self.busy_links
        );
        println!(
            "event loop: {:.2} links visited per turn while idle, {:.2} while busy; node CPU {:.1} % of a core idle, {:.1} % busy",
            self.visits_per_turn_idle,
            self.visits_per_turn_busy,
            self.cpu_idle * 100.0,
            self.cpu_busy * 100.0
        );
        if let Some(r) = self.restart {
            println!(
                "restart: node SIGKILLed and started again; all {} links back after {:.2} s (handshakes at once: {} of {} allowed; RSS at most {} kB on the way)",
                self.links, r.seconds, r.handshakes_peak, self.max_handshakes, r.rss_peak_kb
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_links_are_the_asked_fraction_spread_evenly() {
        assert_eq!(busy_count(10_000, 0.01), 100);
        assert_eq!(busy_count(1000, 1.0), 1000);
        assert_eq!(busy_count(100, 0.0), 0);
        let busy: Vec<usize> = (0..10).filter(|&i| is_busy(i, 10, 0.2)).collect();
        assert_eq!(busy, vec![4, 9]);
    }

    #[test]
    fn peer_addresses_are_distinct_loopback_addresses() {
        let ips: std::collections::HashSet<IpAddr> = (0..20_000).map(peer_ip).collect();
        assert_eq!(ips.len(), 20_000);
        assert!(ips.iter().all(|ip| ip.is_loopback()));
    }
}
