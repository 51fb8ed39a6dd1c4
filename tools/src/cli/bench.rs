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
    match args.direction {
        Direction::Mt => (args.messages, 0),
        Direction::Mo => (0, args.messages),
        Direction::Both => (args.messages, args.messages),
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

pub fn buffered(args: &Args) -> Result<ModeResult, Box<dyn std::error::Error>> {
    let (mt, mo) = counts(args);
    let one_way = Duration::from_millis(args.rtt_ms / 2);
    let s = Scenario {
        mt,
        mo,
        capacity: args.capacity,
        one_way,
        jitter: Duration::from_millis(args.jitter_ms),
        smsc_delay: Duration::from_millis(args.smsc_delay_ms),
        heartbeat: Duration::from_secs(1),
        dead_after: Duration::from_secs(10) + one_way * 4,
        via_wan: !(args.no_wan && args.rtt_ms == 0 && args.jitter_ms == 0),
        bs_binary: if args.rss {
            Some(std::env::current_exe()?)
        } else {
            None
        },
        max_time: Duration::from_secs(3600),
        protocol: args.protocol,
        metrics_scrape: args.metrics_scrape_ms.map(Duration::from_millis),
        ..Scenario::default()
    };
    let mut rss = Vec::new();
    let quiet = args.json;
    let r = scenario::run(&s, |p| {
        if let Some(kb) = p.bs_pid.and_then(rss_kb) {
            rss.push((p.mt_processed + p.mo_received, kb));
        }
        if !quiet {
            eprintln!(
                "  buffered [{:>3}s] MT {} MO {}",
                p.elapsed.as_secs(),
                p.mt_processed,
                p.mo_received
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
    })
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    smslink::runtime::log::set_level(smslink::runtime::log::Level::Error);
    let mut results = Vec::new();
    if matches!(args.mode, Modes::Direct | Modes::Both) {
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
            for (n, kb) in &r.rss {
                println!("buffer-server RSS after {n} messages: {kb} kB");
            }
        }
    }
    if results.iter().any(|r| !r.clean) {
        return Err("messages were lost, duplicated or reordered".into());
    }
    Ok(())
}
