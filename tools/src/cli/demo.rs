//! `smslink demo`: the whole system in one process on a bad emulated link, with live
//! progress and a final score. Exits non-zero if anything was lost or duplicated.

use std::time::Duration;

use crate::scenario::{self, Scenario, ScenarioResult, TempDir};
use crate::smsc_sim::Protocol;

/// Run SMSC simulator, buffer server, WAN emulator and IM side in one process and
/// carry traffic both ways across a link that is cut and stalled now and then.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// MT messages (IM side to phones).
    #[arg(long, default_value_t = 5000)]
    pub mt: u64,
    /// MO messages (phones to IM side).
    #[arg(long, default_value_t = 5000)]
    pub mo: u64,
    /// One-way delay of the emulated internet link, each direction.
    #[arg(long, default_value_t = 150)]
    pub delay_ms: u64,
    /// Jitter added to each direction's delay (uniform, +/-).
    #[arg(long, default_value_t = 20)]
    pub jitter_ms: u64,
    /// SMSC processing time per submit.
    #[arg(long, default_value_t = 1)]
    pub smsc_delay_ms: u64,
    /// Cut the link (reset both sides) at random intervals between MIN and MAX ms.
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [2000, 4000])]
    pub cut_every_ms: Vec<u64>,
    /// Half-open stalls (forwarding stops, sockets stay) after quiet periods
    /// between MIN and MAX ms (0 0: none).
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [3000, 6000])]
    pub stall_every_ms: Vec<u64>,
    /// How long each stall lasts, between MIN and MAX ms.
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [2000, 3000])]
    pub stall_for_ms: Vec<u64>,
    /// Slots per ring.
    #[arg(long, default_value_t = 255)]
    pub capacity: usize,
    /// Give up after this many seconds (what is missing counts as lost).
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Seed of the link's random faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The protocol between the buffer server and the SMSC simulator.
    #[arg(long, default_value_t = Protocol::Cimd2)]
    pub protocol: Protocol,
    /// Keep the rings in RAM only. By default both ends keep them in journals (sync
    /// always) in a temporary directory, removed afterwards.
    #[arg(long)]
    pub no_journal: bool,
}

fn range(v: &[u64]) -> Option<(Duration, Duration)> {
    match v {
        [a, b] if *b > 0 => Some((Duration::from_millis(*a), Duration::from_millis(*b))),
        _ => None,
    }
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    smslink::runtime::log::set_level(smslink::runtime::log::Level::Warn);
    let journal = (!args.no_journal)
        .then(|| TempDir::new("smslink-demo"))
        .transpose()?;
    let s = Scenario {
        mt: args.mt,
        mo: args.mo,
        capacity: args.capacity,
        one_way: Duration::from_millis(args.delay_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        smsc_delay: Duration::from_millis(args.smsc_delay_ms),
        cut_every: range(&args.cut_every_ms),
        stall_every: range(&args.stall_every_ms),
        stall_for: range(&args.stall_for_ms).unwrap_or((Duration::ZERO, Duration::ZERO)),
        max_time: Duration::from_secs(args.max_seconds),
        seed: args.seed,
        protocol: args.protocol,
        journal_dir: journal.as_ref().map(|d| d.path().to_owned()),
        ..Scenario::default()
    };
    println!(
        "smslink demo: SMSC simulator <-{}-> buffer server <-link over emulated WAN \
         ({} ms one way, +/-{} ms jitter, cuts every {:?} ms, stalls every {:?} ms)-> IM side",
        args.protocol.name().to_uppercase(),
        args.delay_ms,
        args.jitter_ms,
        args.cut_every_ms,
        args.stall_every_ms
    );
    if let Some(dir) = &journal {
        println!("journals (sync always) in {}", dir.path().display());
    }
    println!("sending {} MT and {} MO messages", args.mt, args.mo);
    let result = scenario::run(&s, |p| {
        println!(
            "[{:>3}s] MT {:>6}/{} processed  MO {:>6}/{} received  link {:<4}  reconnects {:>2}  cuts {:>2}  stalls {:>2}  ring IM {:>3} BS {:>3}",
            p.elapsed.as_secs(),
            p.mt_processed,
            args.mt,
            p.mo_received,
            args.mo,
            if p.link_up { "up" } else { "DOWN" },
            p.reconnects,
            p.cuts,
            p.stalls,
            p.im_ring_in_use,
            p.bs_ring_in_use,
        );
    })?;
    print_table(&result);
    if result.clean() {
        println!("OK: nothing lost, nothing duplicated, everything in order");
        Ok(())
    } else {
        Err("messages were lost, duplicated or reordered".into())
    }
}

pub fn print_table(r: &ScenarioResult) {
    println!();
    println!(
        "{:<4} {:>8} {:>9} {:>5} {:>10} {:>9} {:>10} {:>9} {:>9}",
        "dir",
        "expected",
        "delivered",
        "lost",
        "duplicated",
        "reordered",
        "msgs/s",
        "p50 ms",
        "p99 ms"
    );
    for (name, d) in [("MT", &r.mt), ("MO", &r.mo)] {
        println!(
            "{:<4} {:>8} {:>9} {:>5} {:>10} {:>9} {:>10.1} {:>9.1} {:>9.1}",
            name,
            d.expected,
            d.delivered,
            d.lost,
            d.duplicated,
            d.out_of_order,
            d.per_second(),
            d.latency.quantile_ms(0.5),
            d.latency.quantile_ms(0.99),
        );
    }
    println!(
        "run {:.1} s; link reconnects {}, cuts {}, half-open stalls {}; SMSC saw {} submits accepted, {} rejected, {} duplicate; {} MT rejected by the SMSC",
        r.seconds,
        r.reconnects,
        r.cuts,
        r.stalls,
        r.sim.submits_accepted,
        r.sim.submits_rejected,
        r.smsc_duplicates,
        r.mt.rejected.len(),
    );
}
