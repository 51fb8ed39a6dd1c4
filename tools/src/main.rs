//! The `smslink` command: one binary, one subcommand per job.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "smslink",
    version,
    about = "Pipelined SMS buffer link between SMSCs and IM servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
    /// Run the WAN emulator: a TCP proxy adding delay, jitter, bandwidth limits, cuts and stalls.
    Wan(Box<smslink_tools::cli::wan::Args>),
    /// Run an SMSC simulator (CIMD2 or SMPP 3.4).
    SmscSim(Box<smslink_tools::cli::smsc_sim::Args>),
    /// One command, nothing to configure: SMSC simulator, buffer server, WAN emulator and
    /// IM side in one process, traffic both ways over a bad link, live progress, final score.
    Demo(Box<smslink_tools::cli::demo::Args>),
    /// Run a buffer server next to an SMSC: CIMD2 toward it, the pipelined link toward the IM server.
    BufferServer(Box<smslink_tools::cli::buffer_server::Args>),
    /// Run the IM side's communication buffer: MO out on stdout as JSON lines, MT in on stdin.
    ImEndpoint(Box<smslink_tools::cli::im_endpoint::Args>),
    /// Measure the same workload spoken directly (CIMD2 across the WAN) and buffered.
    Bench(Box<smslink_tools::cli::bench::Args>),
    /// Open N links to one IM-side node (its own process) and measure its RAM per link,
    /// its message rate at a busy fraction, and how long all links take to come back
    /// after it is killed and restarted.
    Loadgen(Box<smslink_tools::cli::loadgen::Args>),
    /// Make a site's link key and self-signed certificate; print its fingerprint.
    Keygen(smslink_tools::cli::keygen::KeygenArgs),
    /// Print the SHA-256 public-key fingerprint of a certificate (what the peer pins).
    Fingerprint(smslink_tools::cli::keygen::FingerprintArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Version => {
            println!("smslink {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Wan(args) => smslink_tools::cli::wan::run(*args),
        Command::SmscSim(args) => smslink_tools::cli::smsc_sim::run(*args),
        Command::Demo(args) => smslink_tools::cli::demo::run(*args),
        Command::BufferServer(args) => smslink_tools::cli::buffer_server::run(*args),
        Command::ImEndpoint(args) => smslink_tools::cli::im_endpoint::run(*args),
        Command::Bench(args) => smslink_tools::cli::bench::run(*args),
        Command::Loadgen(args) => smslink_tools::cli::loadgen::run(*args),
        Command::Keygen(args) => smslink_tools::cli::keygen::keygen(args),
        Command::Fingerprint(args) => smslink_tools::cli::keygen::fingerprint(args),
    };
    if let Err(e) = result {
        eprintln!("smslink: {e}");
        std::process::exit(1);
    }
}
