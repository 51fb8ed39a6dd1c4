//! `smslink im-endpoint`: the IM side's communication buffer as a process, for
//! operators trying a buffer server and for stacks that talk to it through pipes.
//! Messages from the link (MO) come out on stdout as JSON lines and are acknowledged
//! once written; lines on stdin (`FROM TO TEXT...`) go out as MT. Logs go to stderr.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::log::{self, Format, Level};
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeError, NodeEvent, Transport};
use smslink::slog;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// This side's name on the link (sent in HELLO).
    #[arg(long, default_value = "im")]
    pub name: String,
    /// Accept only a buffer server announcing this name.
    #[arg(long)]
    pub peer: Option<String>,
    /// The pre-shared key both link ends hold (prefer --psk-file).
    #[arg(
        long,
        conflicts_with = "psk_file",
        required_unless_present = "psk_file"
    )]
    pub psk: Option<String>,
    /// Read the pre-shared key from this file (a trailing newline is ignored).
    #[arg(long)]
    pub psk_file: Option<PathBuf>,
    /// Wait for the buffer server's connection on this address.
    #[arg(long, conflicts_with = "dial", required_unless_present = "dial")]
    pub listen: Option<SocketAddr>,
    /// Connect to the buffer server at this address (again after every interruption).
    #[arg(long)]
    pub dial: Option<SocketAddr>,
    /// Slots in each ring (messages in flight per direction).
    #[arg(long, default_value_t = 255)]
    pub capacity: usize,
    /// Send a PING after this long without sending.
    #[arg(long, default_value_t = 5000)]
    pub heartbeat_ms: u64,
    /// Declare the link down after this long without hearing the peer.
    #[arg(long, default_value_t = 15000)]
    pub dead_after_ms: u64,
    /// Log level on stderr: error, warn, info, debug.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log format on stderr: text (`<time> <LEVEL> key=value ...`) or json (one
    /// object per line: ts, level, target, msg and the line's fields).
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Serve /metrics (Prometheus), /status (JSON) and /healthz over HTTP on this
    /// address (port 0: any; the `started` line tells which).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

fn config(args: &Args) -> Result<NodeConfig, String> {
    let psk = match (&args.psk, &args.psk_file) {
        (Some(k), _) => k.clone().into_bytes(),
        (None, Some(path)) => {
            let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
            trimmed.to_vec()
        }
        (None, None) => return Err("give --psk or --psk-file".into()),
    };
    let mut link = LinkConfig::new(&args.name, &psk);
    link.expected_peer = args.peer.clone();
    link.capacity = args.capacity;
    link.heartbeat_interval = Duration::from_millis(args.heartbeat_ms);
    link.dead_after = Duration::from_millis(args.dead_after_ms);
    let transport = match (args.listen, args.dial) {
        (Some(a), _) => Transport::Listen(a),
        (None, Some(a)) => Transport::Dial(a),
        (None, None) => return Err("give --listen or --dial".into()),
    };
    let mut spec = LinkSpec::new(link, transport);
    spec.default_route = true;
    let mut node = NodeConfig::new(vec![spec]);
    node.metrics_listen = args.metrics_listen;
    Ok(node)
}

/// One stdin line: `FROM TO TEXT...`.
fn parse_mt(line: &str) -> Result<Message, String> {
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(from), Some(to), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        // Only a prefix: a line can be arbitrarily long, and it ends up in the log.
        return Err(format!(
            "expected `FROM TO TEXT`, got \"{}\"",
            smslink::runtime::log::excerpt(line.as_bytes())
        ));
    };
    Message::text(from, to, text).map_err(|e| e.to_string())
}

/// The JSON line printed for an event, if it is one the caller sees on stdout.
fn event_line(ev: &NodeEvent) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match ev {
        NodeEvent::LinkUp { peer, .. } => json!({"event": "link_up", "peer": peer}),
        NodeEvent::LinkDown { reason, .. } => json!({"event": "link_down", "reason": reason}),
        NodeEvent::Received { seq, message, .. } => json!({
            "event": "mo",
            "seq": seq,
            "from": message.from.as_str(),
            "to": message.to.as_str(),
            "text": message.text_str(),
            "data_hex": message.text_str().is_none().then(|| {
                message.payload().iter().map(|b| format!("{b:02X}")).collect::<String>()
            }),
        }),
        NodeEvent::Status {
            seq,
            state: SlotState::Processed,
            outcome,
            ..
        } => match outcome {
            Some(Outcome::Rejected { code }) => {
                json!({"event": "mt_status", "seq": seq, "outcome": "rejected", "code": code})
            }
            _ => json!({"event": "mt_status", "seq": seq, "outcome": "accepted"}),
        },
        _ => return None,
    })
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let level: Level = args
        .log_level
        .parse()
        .map_err(|e| format!("--log-level: {e}"))?;
    log::set_level(level);
    let format: Format = args
        .log_format
        .parse()
        .map_err(|e| format!("--log-format: {e}"))?;
    log::set_format(format);
    let node = Arc::new(Node::start(config(&args)?)?);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut out = std::io::stdout().lock();
    let started = serde_json::json!({
        "event": "started",
        "listen": node.local_addr(0).map(|a| a.to_string()),
        "dial": args.dial.map(|a| a.to_string()),
        "metrics": node.metrics_addr().map(|a| a.to_string()),
    });
    writeln!(out, "{started}")?;
    out.flush()?;

    // MT from stdin, on its own thread: a full ring makes it wait, never drop.
    let sender = {
        let node = node.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                let message = match parse_mt(&line) {
                    Ok(m) => m,
                    Err(e) => {
                        slog!(target: "node", Level::Warn, "event=bad_input reason={e:?}");
                        continue;
                    }
                };
                loop {
                    match node.send(&message) {
                        Ok(_) => break,
                        Err(NodeError::Full { link, .. }) if !stop.load(Ordering::Relaxed) => {
                            // The ring frees as the buffer server reports outcomes;
                            // the node wakes us then. Bounded so a signal is noticed.
                            let _ = node.wait_for_room(link, 1, Some(Duration::from_millis(200)));
                        }
                        Err(e) => {
                            slog!(target: "node", Level::Warn, "event=mt_refused reason={:?}", e.to_string());
                            return;
                        }
                    }
                }
            }
        })
    };

    while !stop.load(Ordering::Relaxed) && node.is_running() {
        // Wake at least every 200 ms to notice a signal.
        let Some(ev) = node.wait_event(Some(Duration::from_millis(200))) else {
            continue;
        };
        if let Some(line) = event_line(&ev) {
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        // Acknowledged only once written: that is what "stored" means here.
        if let NodeEvent::Received { link, seq, .. } = ev {
            node.ack(link, seq, Outcome::Accepted)?;
        }
    }
    let report = node.close(Duration::from_secs(2));
    let done = serde_json::json!({
        "event": "stopped",
        "drained": report.drained,
        "mt_still_in_ring": report.links.first().map_or(0, |l| l.tx_in_use),
    });
    writeln!(out, "{done}")?;
    out.flush()?;
    drop(sender);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt_lines_are_from_to_text() {
        let m = parse_mt("12345 +61400000001 hello there\n").unwrap();
        assert_eq!(m.from.as_str(), "12345");
        assert_eq!(m.to.as_str(), "+61400000001");
        assert_eq!(m.text_str(), Some("hello there"));
        assert!(parse_mt("12345 +614").is_err());
        assert!(parse_mt("12;45 +614 x").is_err());
        let long = "x".repeat(1 << 20);
        assert!(parse_mt(&long).unwrap_err().len() < 200);
    }
}
