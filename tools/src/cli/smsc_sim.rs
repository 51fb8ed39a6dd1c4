//! `smslink smsc-sim`: run the CIMD2 or SMPP SMSC simulator until killed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use smslink::message::Message;
use smslink::smpp::STATUSES;

use crate::smsc_sim::{AnswerOrder, Protocol, SimConfig, SmscSim};

/// Run an SMSC simulator, CIMD2 or SMPP 3.4 (many clients, one event-loop thread).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Protocol: cimd2 or smpp.
    #[arg(long, default_value_t = Protocol::Cimd2)]
    pub protocol: Protocol,
    /// Address to listen on [default: 127.0.0.1:9971 for CIMD2, 127.0.0.1:2775 for SMPP].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// User identity clients must log in with (SMPP: the system_id to bind with).
    #[arg(long, default_value = "smslink")]
    pub user: String,
    /// Password clients must log in with.
    #[arg(long, default_value = "secret")]
    pub password: String,
    /// Time between receiving a submit and answering it.
    #[arg(long, default_value_t = 0)]
    pub processing_delay_ms: u64,
    /// Order of the answers to one client's submits: in-order, or shuffled (each
    /// after a random time up to twice --processing-delay-ms; SMPP windows).
    #[arg(long, default_value_t = AnswerOrder::InOrder)]
    pub answer_order: AnswerOrder,
    /// Mobile-originated messages per second to each logged-in client (SMPP: each
    /// receiver or transceiver bind) (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub mo_rate: f64,
    /// MO messages per client (0 = unlimited while --mo-rate > 0).
    #[arg(long, default_value_t = 0)]
    pub mo_count: u64,
    /// --mo-rate is the phones' rate: MO that fall due while the client still
    /// answers earlier ones queue here and go out as soon as it can take them
    /// (without it, a late MO restarts the pacing).
    #[arg(long)]
    pub mo_queue: bool,
    /// Originator of MO messages.
    #[arg(long, default_value = "4670000001")]
    pub mo_from: String,
    /// Destination of MO messages.
    #[arg(long, default_value = "12345")]
    pub mo_to: String,
    /// MO text; `{num}` becomes the message number (1, 2, ...), `{t}` the send time
    /// in microseconds since the Unix epoch.
    // (`{n}` works too, but clap prints it as a line break, so help names `{num}`.)
    #[arg(long, default_value = "mo #{num}")]
    pub mo_text: String,
    /// Read MO messages to send from standard input, one per line: `FROM TO TEXT...`
    /// (each goes to the next logged-in client, a text longer than one SMS as
    /// concatenated parts; a bad line is reported on stderr and skipped).
    #[arg(long)]
    pub mo_stdin: bool,
    /// Append one JSON line per accepted submit to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Append one JSON line per MO a client acknowledged to FILE.
    #[arg(long, value_name = "FILE")]
    pub record_mo: Option<PathBuf>,
    /// Fault: cut each connection when its Nth packet (SMPP: PDU) arrives.
    #[arg(long, value_name = "N")]
    pub drop_after: Option<u64>,
    /// Fault: fraction of submits answered with NACK (SMPP: generic_nack ESME_RSYSERR).
    #[arg(long, default_value_t = 0.0)]
    pub nack_fraction: f64,
    /// Fault: fraction of submits answered ESME_RTHROTTLED (SMPP only).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_fraction: f64,
    /// Fault: fraction of submits rejected with --reject-code.
    #[arg(long, default_value_t = 0.0)]
    pub reject_fraction: f64,
    /// Error code for rejected submits: CIMD2 error code, or SMPP command_status as a
    /// number (0x45) or a name (ESME_RSUBMITFAIL) [default: 300 for CIMD2,
    /// ESME_RSUBMITFAIL for SMPP].
    #[arg(long, value_parser = parse_code)]
    pub reject_code: Option<u32>,
    /// Time from accepting a submit to sending its delivery report.
    #[arg(long, default_value_t = 0)]
    pub report_delay_ms: u64,
    /// Fault: answer submits this much later than --processing-delay-ms.
    #[arg(long, default_value_t = 0)]
    pub late_ms: u64,
    /// Fraction of submits answered late (default: all, when --late-ms is set).
    #[arg(long)]
    pub late_fraction: Option<f64>,
    /// Seed for the fault draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds to wait for a client's answer to a deliver before retransmitting
    /// (CIMD2) or giving up (SMPP).
    #[arg(long, default_value_t = 10)]
    pub response_timeout_s: u64,
    /// SMPP: deliver_sm sent to one bind and not yet answered, at most.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// SMPP: send enquire_link after this many seconds without a PDU (0 = never).
    #[arg(long, default_value_t = 0)]
    pub enquire_link_s: u64,
    /// Do not log connections and protocol violations on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Close a connection that sent nothing for this many seconds (0 = never).
    #[arg(long, default_value_t = 120)]
    pub idle_timeout_s: u64,
    /// Bytes of output a client may leave unread before it is disconnected.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_output_bytes: usize,
}

/// A decimal or `0x` hexadecimal number, or an SMPP status name.
fn parse_code(s: &str) -> Result<u32, String> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).map_err(|e| format!("{s:?}: {e}"));
    }
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    STATUSES
        .iter()
        .find(|row| row.name.eq_ignore_ascii_case(s))
        .map(|row| row.status.0)
        .ok_or_else(|| format!("{s:?} is neither a number nor an SMPP status name"))
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let defaults = SimConfig::for_protocol(args.protocol);
    let late_fraction = match (args.late_fraction, args.late_ms) {
        (Some(f), _) => f,
        (None, 0) => 0.0,
        (None, _) => 1.0,
    };
    let config = SimConfig {
        protocol: args.protocol,
        listen: args.listen.unwrap_or(defaults.listen),
        user: args.user,
        password: args.password,
        processing_delay: Duration::from_millis(args.processing_delay_ms),
        answer_order: args.answer_order,
        mo_rate: args.mo_rate,
        mo_count: args.mo_count,
        mo_queue: args.mo_queue,
        mo_from: args.mo_from,
        mo_to: args.mo_to,
        mo_text: args.mo_text,
        record: args.record,
        record_mo: args.record_mo,
        drop_after: args.drop_after.filter(|n| *n > 0),
        nack_fraction: args.nack_fraction,
        throttle_fraction: args.throttle_fraction,
        reject_fraction: args.reject_fraction,
        reject_code: args.reject_code.unwrap_or(defaults.reject_code),
        report_delay: Duration::from_millis(args.report_delay_ms),
        late: Duration::from_millis(args.late_ms),
        late_fraction,
        seed: args.seed,
        response_timeout: Duration::from_secs(args.response_timeout_s.max(1)),
        window: args.window,
        enquire_link_interval: Duration::from_secs(args.enquire_link_s),
        log: !args.quiet,
        idle_timeout: Duration::from_secs(args.idle_timeout_s),
        max_output: args.max_output_bytes,
        ..defaults
    };
    config.validate()?;
    let sim = SmscSim::start(config)?;
    {
        use std::io::Write as _;
        let mut err = std::io::stderr();
        writeln!(err, "smsc-sim: listening on {}", sim.local_addr())?;
        err.flush()?;
    }
    if args.mo_stdin {
        let sim = &sim;
        std::thread::scope(|scope| {
            scope.spawn(move || inject_from(std::io::stdin().lock(), sim));
        });
    }
    sim.join()?;
    Ok(())
}

/// Sends each `FROM TO TEXT...` line of `input` as an MO; returns at end of input.
fn inject_from(input: impl std::io::BufRead, sim: &SmscSim) {
    for (n, line) in input.split(b'\n').enumerate() {
        let Ok(line) = line else { return };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_mo_line(line) {
            Ok(message) => {
                if sim.inject_mo(&message).is_err() {
                    return; // the simulator has stopped
                }
            }
            Err(e) => eprintln!("smsc-sim: stdin line {}: {e}", n + 1),
        }
    }
}

fn parse_mo_line(line: &str) -> Result<Message, String> {
    let mut fields = line.splitn(3, ' ');
    let (Some(from), Some(to), Some(text)) = (fields.next(), fields.next(), fields.next()) else {
        return Err("expected FROM TO TEXT".into());
    };
    Message::text(from, to, text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smslink::smpp::CommandStatus;

    #[test]
    fn reject_codes_by_number_or_name() {
        assert_eq!(parse_code("300"), Ok(300));
        assert_eq!(parse_code("0x45"), Ok(0x45));
        assert_eq!(
            parse_code("esme_rthrottled"),
            Ok(CommandStatus::ESME_RTHROTTLED.0)
        );
        assert!(parse_code("ESME_NOPE").is_err());
        assert!(parse_code("0xZZ").is_err());
    }

    #[test]
    fn mo_lines_from_stdin() {
        let m = parse_mo_line("4670000001 12345 hello there").expect("line");
        assert_eq!(
            (m.from.as_str(), m.to.as_str(), m.text_str()),
            ("4670000001", "12345", Some("hello there"))
        );
        assert!(parse_mo_line("4670000001 12345").is_err());
        assert!(parse_mo_line("4670000001 123;45 x").is_err());
    }
}
