//! `smslink smsc-sim`: run the CIMD2 SMSC simulator until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::smsc_sim::{SimConfig, SmscSim};

/// Run a CIMD2 SMSC simulator (many clients, one event-loop thread).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9971")]
    pub listen: SocketAddr,
    /// User identity clients must log in with.
    #[arg(long, default_value = "smslink")]
    pub user: String,
    /// Password clients must log in with.
    #[arg(long, default_value = "secret")]
    pub password: String,
    /// Time between receiving a submit and answering it.
    #[arg(long, default_value_t = 0)]
    pub processing_delay_ms: u64,
    /// Mobile-originated messages per second to each logged-in client (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub mo_rate: f64,
    /// MO messages per client (0 = unlimited while --mo-rate > 0).
    #[arg(long, default_value_t = 0)]
    pub mo_count: u64,
    /// Originator of MO messages.
    #[arg(long, default_value = "4670000001")]
    pub mo_from: String,
    /// Destination of MO messages.
    #[arg(long, default_value = "12345")]
    pub mo_to: String,
    /// MO text; `{n}` becomes the message number.
    #[arg(long, default_value = "mo #{n}")]
    pub mo_text: String,
    /// Append one JSON line per accepted submit to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Fault: cut each connection when its Nth packet arrives.
    #[arg(long, value_name = "N")]
    pub drop_after: Option<u64>,
    /// Fault: fraction of submits answered with NACK.
    #[arg(long, default_value_t = 0.0)]
    pub nack_fraction: f64,
    /// Fault: fraction of submits rejected with --reject-code.
    #[arg(long, default_value_t = 0.0)]
    pub reject_fraction: f64,
    /// Error code for rejected submits.
    #[arg(long, default_value_t = 300)]
    pub reject_code: u32,
    /// Fault: answer submits this much later than --processing-delay-ms.
    #[arg(long, default_value_t = 0)]
    pub late_ms: u64,
    /// Fraction of submits answered late (default: all, when --late-ms is set).
    #[arg(long)]
    pub late_fraction: Option<f64>,
    /// Seed for the fault draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds to wait for a client's answer to a deliver before retransmitting.
    #[arg(long, default_value_t = 10)]
    pub response_timeout_s: u64,
    /// Do not log connections and protocol violations on stderr.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    for (name, f) in [
        ("--nack-fraction", args.nack_fraction),
        ("--reject-fraction", args.reject_fraction),
        ("--late-fraction", args.late_fraction.unwrap_or(0.0)),
    ] {
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("{name} must be between 0 and 1").into());
        }
    }
    if !(args.mo_rate >= 0.0 && args.mo_rate.is_finite()) {
        return Err("--mo-rate must be a non-negative number".into());
    }
    let late_fraction = match (args.late_fraction, args.late_ms) {
        (Some(f), _) => f,
        (None, 0) => 0.0,
        (None, _) => 1.0,
    };
    let config = SimConfig {
        listen: args.listen,
        user: args.user,
        password: args.password,
        processing_delay: Duration::from_millis(args.processing_delay_ms),
        mo_rate: args.mo_rate,
        mo_count: args.mo_count,
        mo_from: args.mo_from,
        mo_to: args.mo_to,
        mo_text: args.mo_text,
        record: args.record,
        drop_after: args.drop_after.filter(|n| *n > 0),
        nack_fraction: args.nack_fraction,
        reject_fraction: args.reject_fraction,
        reject_code: args.reject_code,
        late: Duration::from_millis(args.late_ms),
        late_fraction,
        seed: args.seed,
        response_timeout: Duration::from_secs(args.response_timeout_s.max(1)),
        max_retries: 2,
        log: !args.quiet,
    };
    let sim = SmscSim::start(config)?;
    {
        use std::io::Write as _;
        let mut err = std::io::stderr();
        writeln!(err, "smsc-sim: listening on {}", sim.local_addr())?;
        err.flush()?;
    }
    sim.join()?;
    Ok(())
}
