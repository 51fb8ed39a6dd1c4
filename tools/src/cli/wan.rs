//! `smslink wan`: run the WAN emulator between a client side and an upstream.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wan::{Jitter, TamperConfig, Wan, WanConfig, WanEvent};

/// Shape of the random variation of the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JitterDist {
    /// Uniform in [-jitter, +jitter].
    Uniform,
    /// Normal with standard deviation = jitter.
    Normal,
}

/// Emulate an unstable internet link as a TCP proxy: clients connect to --listen,
/// each connection is relayed to --upstream with delay, jitter, a bandwidth limit,
/// and random cuts (RST to both sides) and stalls (half-open link). Bytes are never
/// reordered or dropped while a connection lives. One line is printed per event.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address clients connect to (port 0: pick a free port and print it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Address every connection is relayed to.
    #[arg(long)]
    pub upstream: SocketAddr,

    /// One-way delay in milliseconds, both directions (RTT = twice this).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,

    /// One-way delay client -> upstream in ms (overrides --delay-ms for that direction).
    #[arg(long)]
    pub delay_up_ms: Option<u64>,

    /// One-way delay upstream -> client in ms (overrides --delay-ms for that direction).
    #[arg(long)]
    pub delay_down_ms: Option<u64>,

    /// Random delay variation in ms per chunk; data is still delivered in order,
    /// so a late chunk holds back the ones behind it.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,

    /// Distribution of the jitter.
    #[arg(long, value_enum, default_value_t = JitterDist::Uniform)]
    pub jitter_dist: JitterDist,

    /// Bandwidth limit per direction and connection, in kilobits per second
    /// (token bucket; unlimited when absent).
    #[arg(long)]
    pub bandwidth_kbps: Option<u64>,

    /// Token-bucket depth in kilobytes: how much may pass at once after idling.
    #[arg(long, default_value_t = 0)]
    pub burst_kb: u64,

    /// Cut (RST both sides) every connection at random intervals, in ms: "N" or
    /// "MIN-MAX" (uniform in the range).
    #[arg(long, value_parser = parse_ms_range)]
    pub cut_every_ms: Option<(Duration, Duration)>,

    /// Stall all forwarding (sockets stay open, data is held) at random intervals,
    /// in ms: "N" or "MIN-MAX".
    #[arg(long, alias = "stall-every", value_parser = parse_ms_range)]
    pub stall_every_ms: Option<(Duration, Duration)>,

    /// How long each scheduled stall lasts, in ms: "N" or "MIN-MAX".
    #[arg(long, value_parser = parse_ms_range, default_value = "1000")]
    pub stall_for_ms: (Duration, Duration),

    /// Per connection and direction, stop reading the sender above this many
    /// queued kilobytes (TCP back-pressure instead of unbounded memory).
    #[arg(long, default_value_t = 1024)]
    pub max_queue_kb: usize,

    /// Seed of all random choices (jitter, cut and stall times): same seed, same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Tamper with the relayed bytes: the chance per chunk of each fault (bit flip,
    /// truncation, drop, duplication, reordering, replay), as an on-path attacker.
    #[arg(long)]
    pub tamper: Option<f64>,

    /// Stop after this many seconds and print the counters (default: run until killed).
    #[arg(long)]
    pub duration_s: Option<u64>,
}

/// Parse "N" or "MIN-MAX" milliseconds.
fn parse_ms_range(text: &str) -> Result<(Duration, Duration), String> {
    let ms = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("{s:?}: {e}"))
    };
    let (lo, hi) = match text.split_once('-') {
        Some((a, b)) => (ms(a)?, ms(b)?),
        None => {
            let v = ms(text)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("range {text:?}: MIN is above MAX"));
    }
    if hi.is_zero() {
        return Err("an interval must be above zero".into());
    }
    Ok((lo, hi))
}

/// Build the emulator configuration the arguments describe.
pub fn config(args: &Args) -> WanConfig {
    let mut cfg = WanConfig::new(args.upstream);
    cfg.listen = args.listen;
    let jitter = match (args.jitter_ms, args.jitter_dist) {
        (0, _) => Jitter::None,
        (j, JitterDist::Uniform) => Jitter::Uniform(Duration::from_millis(j)),
        (j, JitterDist::Normal) => Jitter::Normal(Duration::from_millis(j)),
    };
    let bandwidth = args.bandwidth_kbps.map(|kbps| (kbps * 1000 / 8).max(1));
    for (link, delay) in [
        (&mut cfg.up, args.delay_up_ms),
        (&mut cfg.down, args.delay_down_ms),
    ] {
        link.delay = Duration::from_millis(delay.unwrap_or(args.delay_ms));
        link.jitter = jitter;
        link.bandwidth = bandwidth;
        link.burst = args.burst_kb * 1024;
    }
    cfg.cut_every = args.cut_every_ms;
    cfg.stall_every = args.stall_every_ms;
    cfg.stall_for = args.stall_for_ms;
    cfg.max_queue_bytes = args.max_queue_kb.max(1) * 1024;
    cfg.seed = args.seed;
    cfg.tamper = args.tamper.map(TamperConfig::all);
    cfg
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let cfg = config(&args);
    let started = Instant::now();
    let print = move |e: &WanEvent| {
        println!("{:10.3}s {e}", started.elapsed().as_secs_f64());
    };
    let mut wan = Wan::start_with_events(cfg.clone(), print)?;
    println!(
        "wan: listening on {} -> {} (delay up {:?} down {:?}, jitter {:?}, bandwidth {:?} B/s, seed {})",
        wan.local_addr(),
        cfg.upstream,
        cfg.up.delay,
        cfg.down.delay,
        cfg.up.jitter,
        cfg.up.bandwidth,
        cfg.seed
    );
    let deadline = args.duration_s.map(|s| started + Duration::from_secs(s));
    loop {
        // Nothing to do here but notice the end; the emulator thread does the work.
        let wait = deadline.map_or(Duration::from_secs(1), |d| {
            d.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1))
        });
        std::thread::park_timeout(wait);
        if !wan.is_running() {
            return Err("the emulator thread ended unexpectedly".into());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    wan.stop();
    let stats = wan.stats();
    println!(
        "wan: {} connections, {} cuts, {} refused, {} bytes up, {} bytes down",
        stats.connections, stats.cuts, stats.refused, stats.bytes_up, stats.bytes_down
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("wan").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn ranges_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_ms_range("500"), Ok((ms(500), ms(500))));
        assert_eq!(parse_ms_range("100-2000"), Ok((ms(100), ms(2000))));
        assert!(parse_ms_range("2000-100").is_err());
        assert!(parse_ms_range("0").is_err());
        assert!(parse_ms_range("x-1").is_err());
    }

    #[test]
    fn arguments_build_the_config() {
        let args = parse(&[
            "--upstream",
            "127.0.0.1:9",
            "--delay-ms",
            "150",
            "--delay-down-ms",
            "20",
            "--jitter-ms",
            "10",
            "--jitter-dist",
            "normal",
            "--bandwidth-kbps",
            "800",
            "--cut-every-ms",
            "1000-5000",
            "--stall-every",
            "3000",
            "--seed",
            "9",
        ])
        .expect("parse");
        let cfg = config(&args);
        assert_eq!(cfg.up.delay, Duration::from_millis(150));
        assert_eq!(cfg.down.delay, Duration::from_millis(20));
        assert_eq!(cfg.up.jitter, Jitter::Normal(Duration::from_millis(10)));
        assert_eq!(cfg.down.bandwidth, Some(100_000));
        assert_eq!(
            cfg.cut_every,
            Some((Duration::from_millis(1000), Duration::from_millis(5000)))
        );
        assert_eq!(
            cfg.stall_every,
            Some((Duration::from_secs(3), Duration::from_secs(3)))
        );
        assert_eq!(cfg.seed, 9);
    }

    #[test]
    fn upstream_is_required() {
        assert!(parse(&["--delay-ms", "5"]).is_err());
    }
}
