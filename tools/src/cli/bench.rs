//! `smslink bench`: the same workload two ways across the same emulated link.
//!
//! * direct: the IM side speaks the SMSC's protocol itself, across the WAN emulator,
//!   to the SMSC simulator, as systems without a buffer server do: one message per
//!   round trip with CIMD2, the submit window per round trip with SMPP.
//! * buffered: IM-side node -> WAN -> buffer server -> SMSC simulator.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::HashMap;

use smslink::message::Message;
use smslink::smsc::{MoAnswer, SmscEvent};

use crate::child::rss_kb;
use crate::scenario::{self, Latencies, Scenario};
use crate::smsc_sim::{Protocol, SimConfig, SmscSim};
use crate::wan::{Jitter, Wan, WanConfig};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Mt,
    Mo,
    Both,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modes {
    Direct,
    Buffered,
    Both,
}

/// Compare the SMSC's protocol spoken directly across an emulated WAN with the
/// buffered path.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The SMSC's protocol (SMPP: window 10).
    #[arg(long, default_value_t = Protocol::Cimd2)]
    pub protocol: Protocol,
    /// Round-trip time of the emulated link (half each way).
    #[arg(long, default_value_t = 300)]
    pub rtt_ms: u64,
    /// Uniform jitter added to each direction's delay.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// SMSC processing time per submit.
    #[arg(long, default_value_t = 1)]
    pub smsc_delay_ms: u64,
    /// Messages per direction.
    #[arg(long, default_value_t = 5000)]
    pub messages: u64,
    /// Ring slots (the link's window).
    #[arg(long, default_value_t = 255)]
    pub capacity: usize,
    #[arg(long, value_enum, default_value_t = Direction::Mt)]
    pub direction: Direction,
    /// Which paths to measure.
    #[arg(long, value_enum, default_value_t = Modes::Both)]
    pub mode: Modes,
    /// Stop the direct mode after this long (its rate is steady from the start).
    #[arg(long, default_value_t = 10)]
    pub direct_max_seconds: u64,
    /// Leave the WAN emulator out when there is no delay (pure loopback).
    #[arg(long)]
    pub no_wan: bool,
    /// Run the buffered link without TLS (to compare; TLS 1.3 with throwaway keys by default).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// One JSON object per line per mode instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also run the buffer server as a child process and report its resident memory
    /// (VmRSS) as the message count grows (buffered mode only).
    #[arg(long)]
    pub rss: bool,
    /// Give the in-process nodes metrics listeners and scrape them this often
    /// (buffered mode; to measure what monitoring costs).
    #[arg(long, value_name = "MS", hide = true)]
    pub metrics_scrape_ms: Option<u64>,
    /// Run both ends of the buffered path on journals in a temporary directory
    /// (removed afterwards); reports the journals' fsyncs per second.
    #[arg(long)]
    pub journal: bool,
    /// With --journal: always, interval:<ms> or off.
    #[arg(long, default_value = "always", requires = "journal")]
    pub journal_sync: smslink::journal::SyncPolicy,
    /// Outage: once the link is up, the WAN emulator refuses it for this long while
    /// the SMSC sends --mo-rate MO per second (rate x seconds in all, MO only, the
    /// buffer server as a child process); reports whether the SMSC was held back,
    /// the backlog, the buffer server's RSS and the drain after the link returns.
    /// Needs --journal.
    #[arg(long, value_name = "SECONDS", requires = "journal")]
    pub outage_s: Option<u64>,
    /// MO per second the SMSC simulator originates (default: as fast as taken).
    #[arg(long, value_name = "PER_SECOND")]
    pub mo_rate: Option<f64>,
    /// Recovery time: fill a journal with --messages MT through `smslink
    /// im-endpoint` while its peer is away, SIGKILL it once all are durable, and
    /// time a node's start on that journal (replay, rings and backlog rebuilt).
    #[arg(long, conflicts_with_all = ["outage_s", "journal"])]
    pub recovery: bool,
}

/// One mode's figures.
#[derive(Debug, Clone, Default)]
pub struct ModeResult {
    pub mode: &'static str,
    /// Nothing duplicated; for the buffered path also nothing lost or reordered
    /// ([`ScenarioResult::clean`](crate::scenario::ScenarioResult::clean)). The direct
    /// path may give up on a submit (counted as lost) as such systems do.
    pub clean: bool,
    pub messages: u64,
    pub seconds: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub latency: Latencies,
    pub mt_per_s: f64,
    pub mo_per_s: f64,
    /// (messages so far, buffer-server VmRSS kB) samples, with `--rss`.
    pub rss: Vec<(u64, u64)>,
    /// Buffered mode: whether the link ran TLS, and how long after the IM side
    /// started the link came up (TCP, TLS, link handshake), in ms.
    pub tls: Option<bool>,
    pub link_up_ms: Option<f64>,
    /// With --journal: both journals' syncs per second over the run.
    pub journal_syncs_per_s: Option<f64>,
    pub outage: Option<scenario::OutageResult>,
}

impl ModeResult {
    pub fn msgs_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn json(&self, args: &Args) -> String {
        let mut v = serde_json::json!({
            "mode": self.mode,
            "direction": format!("{:?}", args.direction).to_lowercase(),
            "messages": self.messages,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "msgs_per_s": (self.msgs_per_s() * 10.0).round() / 10.0,
            "mt_per_s": (self.mt_per_s * 10.0).round() / 10.0,
            "mo_per_s": (self.mo_per_s * 10.0).round() / 10.0,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "p50_ms": self.latency.quantile_ms(0.5),
            "p99_ms": self.latency.quantile_ms(0.99),
            "rtt_ms": args.rtt_ms,
            "smsc_delay_ms": args.smsc_delay_ms,
            "capacity": args.capacity,
        });
        if let (Some(tls), Some(up)) = (self.tls, self.link_up_ms) {
            v["tls"] = tls.into();
            v["link_up_ms"] = ((up * 10.0).round() / 10.0).into();
        }
        if let Some(f) = self.journal_syncs_per_s {
            v["journal_sync"] = args.journal_sync.to_string().into();
            v["journal_syncs_per_s"] = ((f * 10.0).round() / 10.0).into();
        }
        if let Some(o) = &self.outage {
            v["outage"] = serde_json::json!({
                "seconds": o.seconds,
                "smsc_mo_per_s": o.smsc_mo_per_s(),
                "smsc_held": o.smsc_held,
                "smsc_queue_peak": o.smsc_queue_peak,
                "backlog_peak": o.backlog_peak,
                "rss_idle_kb": o.rss_idle_kb,
                "rss_peak_kb": o.rss_peak_kb,
                "drained": o.drained,
                "drain_seconds": o.drain_seconds,
                "drain_per_s": o.drain_per_s(),
            });
        }
        if !self.rss.is_empty() {
            v["rss_kb"] = self
                .rss
                .iter()
                .map(|(n, kb)| serde_json::json!({"messages": n, "kb": kb}))
                .collect();
        }
        v.to_string()
    }
}

fn counts(args: &Args) -> (u64, u64) {
    if let Some(seconds) = args.outage_s {
        return (0, (args.mo_rate.unwrap_or(1000.0) * seconds as f64) as u64);
    }
    match args.direction {
        Direction::Mt => (args.messages, 0),
        Direction::Mo => (0, args.messages),
        Direction::Both => (args.messages, args.messages),
    }
}

pub fn buffered(args: &Args) -> Result<ModeResult, Box<dyn std::error::Error>> {
    let (mt, mo) = counts(args);
    let one_way = Duration::from_millis(args.rtt_ms / 2);
    let journal = if args.journal {
        Some(scenario::TempDir::new("smslink-bench-journal")?)
    } else {
        None
    };
    let outage = args.outage_s.map(Duration::from_secs);
    let s = Scenario {
        mt,
        mo,
        capacity: args.capacity,
        one_way,
        jitter: Duration::from_millis(args.jitter_ms),
        smsc_delay: Duration::from_millis(args.smsc_delay_ms),
        heartbeat: Duration::from_secs(1),
        dead_after: Duration::from_secs(10) + one_way * 4,
        via_wan: outage.is_some() || !(args.no_wan && args.rtt_ms == 0 && args.jitter_ms == 0),
        bs_binary: if args.rss || outage.is_some() {
            Some(std::env::current_exe()?)
        } else {
            None
        },
        max_time: Duration::from_secs(3600),
        protocol: args.protocol,
        metrics_scrape: args.metrics_scrape_ms.map(Duration::from_millis),
        tls: !args.insecure_plaintext,
        journal_dir: journal.as_ref().map(|d| d.path().to_owned()),
        journal_sync: args.journal_sync,
        mo_rate: args.mo_rate.or(outage.map(|_| 1000.0)),
        outage,
        ..Scenario::default()
    };
    let mut rss = Vec::new();
    let quiet = args.json;
    let r = scenario::run(&s, |p| {
        if let Some(kb) = p.bs_pid.filter(|_| args.rss).and_then(rss_kb) {
            rss.push((p.mt_processed + p.mo_received, kb));
        }
        if !quiet {
            eprintln!(
                "  buffered [{:>3}s] MT {} MO {} link {} buffer-server backlog {}",
                p.elapsed.as_secs(),
                p.mt_processed,
                p.mo_received,
                if p.link_up { "up" } else { "down" },
                p.bs_backlog
            );
        }
    })?;
    let mut latency = r.mt.latency.clone();
    latency.extend(&r.mo.latency);
    Ok(ModeResult {
        mode: "buffered",
        clean: r.clean(),
        messages: r.mt.delivered + r.mo.delivered,
        seconds: r.mt.seconds.max(r.mo.seconds),
        lost: r.mt.lost + r.mo.lost,
        duplicated: r.mt.duplicated + r.mo.duplicated + r.smsc_duplicates,
        latency,
        mt_per_s: r.mt.per_second(),
        mo_per_s: r.mo.per_second(),
        rss,
        tls: Some(s.tls),
        link_up_ms: Some(r.first_up_seconds * 1000.0),
        journal_syncs_per_s: journal
            .as_ref()
            .map(|_| r.journal_syncs as f64 / r.seconds.max(1e-9)),
        outage: r.outage.clone(),
    })
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// The SMSC's protocol straight across the WAN, through the same protocol-neutral
/// session the buffer server uses (`SmscClient`), over one blocking connection.
pub fn direct(args: &Args) -> Result<ModeResult, Box<dyn std::error::Error>> {
    let (mt, mo) = counts(args);
    let sim = SmscSim::start(SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        processing_delay: Duration::from_millis(args.smsc_delay_ms),
        mo_rate: if mo > 0 { 1e9 } else { 0.0 },
        mo_count: mo,
        mo_text: "mo {num} {t}".into(),
        log: false,
        ..SimConfig::for_protocol(args.protocol)
    })?;
    let mut wan_cfg =
        WanConfig::new(sim.local_addr()).with_delay(Duration::from_millis(args.rtt_ms / 2));
    if args.jitter_ms > 0 {
        wan_cfg = wan_cfg.with_jitter(Jitter::Uniform(Duration::from_millis(args.jitter_ms)));
    }
    let use_wan = !(args.no_wan && args.rtt_ms == 0 && args.jitter_ms == 0);
    let wan = if use_wan {
        Some(Wan::start(wan_cfg)?)
    } else {
        None
    };
    let target = wan.as_ref().map_or(sim.local_addr(), |w| w.local_addr());
    let mut stream = TcpStream::connect(target)?;
    stream.set_nodelay(true)?;
    let mut spec = scenario::smsc_spec(args.protocol, target);
    let answer_wait = Duration::from_secs(10) + Duration::from_millis(args.rtt_ms * 4);
    match &mut spec.protocol {
        smslink::runtime::SmscProtocol::Cimd2(c) => c.response_timeout = answer_wait,
        smslink::runtime::SmscProtocol::Smpp(c) => c.response_timeout = answer_wait,
    }
    let mut session = spec.protocol.client();
    if session.connection_count() != 1 {
        return Err("direct: the bench drives one connection".into());
    }
    session.connected(0, Instant::now());
    let limit = Duration::from_secs(args.direct_max_seconds);
    let mut began: Option<Instant> = None;
    let mut last_done = Instant::now();
    let (mut mt_next, mut mt_done, mut mo_done) = (0u64, 0u64, 0u64);
    let mut outstanding: HashMap<u64, Instant> = HashMap::new();
    let mut latency = Latencies::default();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut failed = 0u64;
    loop {
        let now = Instant::now();
        while let Some(ev) = session.poll_event() {
            match ev {
                SmscEvent::Up => began = Some(now),
                SmscEvent::Accepted { id, .. } | SmscEvent::Rejected { id, .. } => {
                    if let Some(at) = outstanding.remove(&id) {
                        latency.push(now - at);
                    }
                    mt_done += 1;
                    last_done = now;
                }
                SmscEvent::Unanswered { id } => {
                    outstanding.remove(&id);
                    failed += 1;
                }
                SmscEvent::Mo { token, message } => {
                    let t: u128 = message
                        .text_str()
                        .and_then(|t| t.split(' ').nth(2))
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0);
                    let micros = now_micros().saturating_sub(t).min(u64::MAX as u128) as u64;
                    latency.push(Duration::from_micros(micros));
                    mo_done += 1;
                    last_done = now;
                    session.answer(token, MoAnswer::Accept, now);
                }
                SmscEvent::StatusReport { token, .. } => {
                    session.answer(token, MoAnswer::Accept, now);
                }
                SmscEvent::MoUnattributable { token, side, .. } => {
                    session.answer(token, MoAnswer::Refuse(side), now);
                    mo_done += 1;
                    failed += 1;
                }
                SmscEvent::Down { reason } => {
                    return Err(format!("direct: session ended: {reason}").into())
                }
                SmscEvent::Violation { .. } => {}
            }
        }
        let finished = mt_done >= mt && mo_done >= mo;
        let timed_out = began.is_some_and(|b| now - b >= limit);
        if finished || timed_out {
            break;
        }
        while mt_next < mt && session.submit_room() > 0 {
            let m = Message::text("4670000002", "4670000001", &format!("mt {mt_next}"))?;
            session.submit(mt_next + 1, &m, now)?;
            outstanding.insert(mt_next + 1, now);
            mt_next += 1;
        }
        out.clear();
        session.poll_transmit(0, &mut out);
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
        let wait = session
            .poll_timeout()
            .map_or(Duration::from_millis(50), |t| {
                t.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        stream.set_read_timeout(Some(wait))?;
        match stream.read(&mut buf) {
            Ok(0) => return Err("direct: SMSC closed the connection".into()),
            Ok(n) => session.handle_input(0, &buf[..n], Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if session.poll_timeout().is_some_and(|t| t <= now) {
            session.handle_timeout(now);
        }
    }
    let seconds = began.map_or(0.0, |b| (last_done - b).as_secs_f64());
    let counters = sim.stop()?;
    drop(wan);
    let per = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    // Submits outstanding when the clock stopped were sent once, not twice.
    let duplicated = counters.submits_accepted.saturating_sub(mt_next);
    Ok(ModeResult {
        mode: "direct",
        clean: duplicated == 0,
        messages: mt_done + mo_done,
        seconds,
        lost: failed,
        duplicated,
        latency,
        mt_per_s: per(mt_done),
        mo_per_s: per(mo_done),
        rss: Vec::new(),
        tls: None,
        link_up_ms: None,
        journal_syncs_per_s: None,
        outage: None,
    })
}

pub fn run(mut args: Args) -> Result<(), Box<dyn std::error::Error>> {
    smslink::runtime::log::set_level(smslink::runtime::log::Level::Error);
    if args.outage_s.is_some() {
        args.direction = Direction::Mo;
    }
    if args.recovery {
        return recovery(&args);
    }
    let mut results = Vec::new();
    if matches!(args.mode, Modes::Direct | Modes::Both) && args.outage_s.is_none() {
        let r = direct(&args)?;
        if args.json {
            println!("{}", r.json(&args));
        }
        results.push(r);
    }
    if matches!(args.mode, Modes::Buffered | Modes::Both) {
        let r = buffered(&args)?;
        if args.json {
            println!("{}", r.json(&args));
        }
        results.push(r);
    }
    if !args.json {
        println!(
            "{}, rtt {} ms, jitter {} ms, SMSC {} ms/submit, {} slots, direction {:?}",
            args.protocol.name().to_uppercase(),
            args.rtt_ms,
            args.jitter_ms,
            args.smsc_delay_ms,
            args.capacity,
            args.direction
        );
        println!(
            "{:<9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>5} {:>5} {:>9} {:>9}",
            "mode",
            "messages",
            "seconds",
            "msgs/s",
            "MT/s",
            "MO/s",
            "lost",
            "dup",
            "p50 ms",
            "p99 ms"
        );
        for r in &results {
            println!(
                "{:<9} {:>9} {:>8.2} {:>10.1} {:>9.1} {:>9.1} {:>5} {:>5} {:>9.1} {:>9.1}",
                r.mode,
                r.messages,
                r.seconds,
                r.msgs_per_s(),
                r.mt_per_s,
                r.mo_per_s,
                r.lost,
                r.duplicated,
                r.latency.quantile_ms(0.5),
                r.latency.quantile_ms(0.99)
            );
        }
        if let [d, b] = &results[..] {
            if d.msgs_per_s() > 0.0 {
                println!(
                    "buffered / direct = {:.0}x",
                    b.msgs_per_s() / d.msgs_per_s()
                );
            }
        }
        for r in &results {
            if let (Some(tls), Some(up)) = (r.tls, r.link_up_ms) {
                println!(
                    "{} link {}: up {up:.1} ms after the IM side started",
                    r.mode,
                    if tls { "over TLS 1.3" } else { "in plaintext" }
                );
            }
            for (n, kb) in &r.rss {
                println!("buffer-server RSS after {n} messages: {kb} kB");
            }
            if let Some(f) = r.journal_syncs_per_s {
                println!(
                    "{} journals (sync {}): {f:.0} fsyncs/s, both ends together",
                    r.mode, args.journal_sync
                );
            }
            if let Some(o) = &r.outage {
                print_outage(o, args.capacity, args.rtt_ms);
            }
        }
    }
    if results.iter().any(|r| !r.clean) {
        return Err("messages were lost, duplicated or reordered".into());
    }
    Ok(())
}

fn print_outage(o: &scenario::OutageResult, capacity: usize, rtt_ms: u64) {
    let kb = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
    println!(
        "outage {:.1} s: the SMSC sent {:.1} MO/s through it, {} held back (backpressured or deferred), at most {} MO queued at the SMSC",
        o.seconds,
        o.smsc_mo_per_s(),
        o.smsc_held,
        o.smsc_queue_peak
    );
    println!(
        "buffer server: backlog peak {} MO waiting; RSS {} kB idle, {} kB at most ({:.2}x)",
        o.backlog_peak,
        kb(o.rss_idle_kb),
        kb(o.rss_peak_kb),
        match (o.rss_idle_kb, o.rss_peak_kb) {
            (Some(i), Some(p)) if i > 0 => p as f64 / i as f64,
            _ => 0.0,
        }
    );
    let window = if rtt_ms > 0 {
        format!(
            " (window rate {} slots / {rtt_ms} ms = {:.0}/s)",
            capacity,
            capacity as f64 * 1000.0 / rtt_ms as f64
        )
    } else {
        String::new()
    };
    println!(
        "after the link returned: {} MO drained in {:.2} s, {:.0} MO/s{window}",
        o.drained,
        o.drain_seconds,
        o.drain_per_s()
    );
}

/// `--recovery`: see [`Args::recovery`].
pub fn recovery(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use smslink::link::LinkConfig;
    use smslink::runtime::{JournalSpec, LinkSpec, Node, NodeConfig, Transport};
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let dir = scenario::TempDir::new("smslink-bench-recovery")?;
    // A port nobody listens on: the peer is away, every message stays unprocessed.
    let away = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let (name, psk) = ("im", "bench recovery key");
    let mut child = crate::child::KillOnDrop(
        Command::new(std::env::current_exe()?)
            .args(["im-endpoint", "--name", name, "--psk", psk])
            .args(["--dial", &away.to_string(), "--insecure-plaintext"])
            .args(["--capacity", &args.capacity.to_string()])
            .args(["--reconnect-min-ms", "60000", "--reconnect-max-ms", "60000"])
            .arg("--journal-dir")
            .arg(dir.path())
            .args(["--journal-sync", &args.journal_sync.to_string()])
            .args(["--log-level", "error"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let mut stdin = child.0.stdin.take().ok_or("no stdin")?;
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let n = args.messages;
    let began = Instant::now();
    // Stdin is handed back open: at its end the child would stop on its own.
    let feeder = std::thread::spawn(move || -> std::io::Result<std::process::ChildStdin> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut stdin);
        for i in 1..=n {
            writeln!(out, "4670000002 4670000001 mt {i}")?;
        }
        out.flush()?;
        drop(out);
        Ok(stdin)
    });
    let mut durable = 0u64;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    for line in std::io::BufReader::new(stdout).lines() {
        if line?.contains("\"event\":\"durable\"") {
            durable += 1;
            if durable == n {
                break;
            }
        }
        if !args.json && Instant::now() >= next_report {
            next_report += Duration::from_secs(5);
            eprintln!("  filling: {durable} of {n} durable");
        }
    }
    let filled = began.elapsed();
    if durable < n {
        return Err(format!("im-endpoint stopped after {durable} of {n} durable").into());
    }
    // kill -9, then wait until it is gone (its lock on the journal with it).
    drop(child);
    drop(feeder.join().map_err(|_| "feeder panicked")?);
    let journal_bytes: u64 = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let mut link = LinkConfig::new(name, psk.as_bytes());
    link.capacity = args.capacity;
    let mut config = NodeConfig::new(vec![
        LinkSpec::new(link, Transport::Dial(away)).insecure_plaintext()
    ]);
    config.reconnect_min = Duration::from_secs(60);
    config.reconnect_max = Duration::from_secs(60);
    let mut spec = JournalSpec::new(dir.path());
    spec.config.sync = args.journal_sync;
    config.journal = Some(spec);
    let start = Instant::now();
    let node = Node::start(config)?;
    let started = start.elapsed();
    // Rebuilt: the first stats the loop publishes hold every message again.
    let deadline = start + Duration::from_secs(600);
    let waiting = loop {
        let s = node.link_stats(0).unwrap_or_default();
        let waiting = s.tx_in_use as u64 + s.tx_backlog;
        if waiting >= n || Instant::now() >= deadline {
            break waiting;
        }
        node.wait_event(Some(Duration::from_millis(1)));
    };
    let ready = start.elapsed();
    node.close(Duration::ZERO);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "mode": "recovery",
                "messages": n,
                "journal_sync": args.journal_sync.to_string(),
                "journal_bytes": journal_bytes,
                "fill_seconds": filled.as_secs_f64(),
                "start_ms": started.as_secs_f64() * 1000.0,
                "ready_ms": ready.as_secs_f64() * 1000.0,
                "restored": waiting,
            })
        );
    } else {
        println!(
            "filled {n} MT through im-endpoint in {:.1} s ({:.0}/s), journal {:.0} MB on disk, then SIGKILL",
            filled.as_secs_f64(),
            n as f64 / filled.as_secs_f64(),
            journal_bytes as f64 / 1e6
        );
        println!(
            "Node::start on the journal: {:.0} ms (replay, rings and backlog rebuilt); {:.0} ms until its stats showed {waiting} messages waiting",
            started.as_secs_f64() * 1000.0,
            ready.as_secs_f64() * 1000.0
        );
    }
    if waiting != n {
        return Err(format!("{waiting} of {n} messages back after the restart").into());
    }
    Ok(())
}
