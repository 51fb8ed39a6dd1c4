//! `smslink im-endpoint`: the IM side's communication buffer as a process, for
//! operators trying a buffer server and for stacks that talk to it through pipes.
//! Messages from the link (MO) come out on stdout as JSON lines and are acknowledged
//! once written; lines on stdin (`FROM TO TEXT...`) go out as MT, each answered on
//! stdout by the line number and the sequence number it became. Logs go to stderr.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::{Outcome, SlotState};
use smslink::runtime::log::{self, Format, Level};
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeError, NodeEvent, Transport};
use smslink::slog;

use super::journal::{FileJournal, JournalArgs};

/// What `--help` says after the options: the output lines and how to resume.
const OUTPUT_HELP: &str = "\
Input: one MT per line, `FROM TO TEXT...` (UTF-8, at most 64 KiB).

Output: one JSON object per line on stdout (`link`: this side's link name, `line`: an
input line number, `seq`: the message's sequence number on the link):
  started                     once, first
  link_up, link_down          the link to the buffer server
  mo                          an MO (from, to, text or data_hex, incomplete: parts of a
                              long MO missing at --reassembly-timeout-ms); acknowledged
                              once written
  accepted (line, seq)        an input line taken as MT
  error (line, reason)        an input line refused (not UTF-8, a field missing, too long,
                              not a valid message); the input goes on
  durable (line, seq)         with --journal-dir: the MT is on disk and survives a crash;
                              at start, again for the journal's unfinished MT
  restored (line, seq)        with --first-line: an input line the journal already holds,
                              not sent again
  mt_status (line, seq, outcome[, code])   the SMSC's answer
  report (line, state, error, parts)       the phone's delivery report (delivered,
                              failed, expired, enroute), all parts in one
  stopped                     once, last (SIGINT/SIGTERM)

A line is read only when the link has room for it: nothing read is held unaccounted.
Resuming after a crash: start again on the same --journal-dir with --first-line one
past the last `durable` line seen, and feed the input from that line on; lines made
durable just before the crash are answered `restored`, not sent twice. Without a
journal a crash loses the MT in the ring. An `mo` may come again after a crash under
the same seq (its acknowledgement was not yet recorded): skip seqs already stored.";

/// Run the IM side's buffer: MO out on stdout, MT in on stdin, one JSON line per event.
#[derive(clap::Args, Debug)]
#[command(after_long_help = OUTPUT_HELP)]
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
    /// PEM file with this side's certificate (`smslink keygen` makes one).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with this side's private key.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Accept a peer certificate signed by a CA in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Accept only the peer key with this SHA-256 fingerprint (as `smslink keygen` prints it).
    #[arg(long, value_name = "HEX")]
    pub tls_peer_fingerprint: Option<String>,
    /// With --tls-ca, when dialling: the name the buffer server's certificate must carry (default: --peer).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Run the link without TLS (anyone on the path can read and change messages).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Slots in each ring (messages in flight per direction).
    #[arg(long, default_value_t = 255)]
    pub capacity: usize,
    /// Send a PING after this long without sending.
    #[arg(long, default_value_t = 5000)]
    pub heartbeat_ms: u64,
    /// Declare the link down after this long without hearing the peer.
    #[arg(long, default_value_t = 15000)]
    pub dead_after_ms: u64,
    /// With --dial: first redial delay (doubles per failure, with jitter).
    #[arg(long, default_value_t = 100)]
    pub reconnect_min_ms: u64,
    /// With --dial: longest redial delay.
    #[arg(long, default_value_t = 5000)]
    pub reconnect_max_ms: u64,
    /// How long the parts of a long MO (concatenated SMS) wait for the rest; then
    /// the parts that came are written as one `mo` marked incomplete.
    #[arg(long, value_name = "MS")]
    pub reassembly_timeout_ms: Option<u64>,
    /// Resume: the number of the first input line (the rest count up from it), so
    /// that line numbers stay those of the whole input across restarts; an input line
    /// the journal already holds (reported `durable` at start) is then answered
    /// `restored` instead of being sent again. Without it, lines count from 1 and
    /// every line is sent.
    #[arg(long, value_name = "N")]
    pub first_line: Option<u64>,
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
    #[command(flatten)]
    pub journal: JournalArgs,
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
    let tls = super::TlsOptions {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
        ca: args.tls_ca.clone(),
        peer_fingerprint: args.tls_peer_fingerprint.clone(),
        server_name: args.tls_server_name.clone(),
        insecure_plaintext: args.insecure_plaintext,
    };
    let mut spec = tls.apply(LinkSpec::new(link, transport))?;
    spec.default_route = true;
    let mut node = NodeConfig::new(vec![spec]);
    node.reconnect_min = Duration::from_millis(args.reconnect_min_ms.max(1));
    node.reconnect_max = Duration::from_millis(args.reconnect_max_ms);
    if node.reconnect_max < node.reconnect_min {
        return Err("--reconnect-max-ms is below --reconnect-min-ms".into());
    }
    node.metrics_listen = args.metrics_listen;
    if let Some(ms) = args.reassembly_timeout_ms {
        node.reassembly_timeout = Duration::from_millis(ms.max(1));
    }
    node.journal = args.journal.spec(&FileJournal::default())?;
    Ok(node)
}

/// The link every MT goes out on (the endpoint has one).
const LINK: usize = 0;

/// Longest input line taken; the rest of a longer line is skipped unread into memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Bytes of a bad line quoted in the log: enough to find it, never the whole input.
const LOGGED_PREFIX: usize = 40;

/// One stdin line, as read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Its bytes without the line ending.
    Complete(Vec<u8>),
    /// Longer than [`MAX_LINE_BYTES`]: its first bytes, the rest skipped.
    TooLong(Vec<u8>),
}

/// The next line of `input` (`None` at its end), reading at most `max` bytes of it
/// into memory.
fn read_line(input: &mut impl BufRead, max: usize) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        too_long |= chunk.len() > room;
        let used = done.unwrap_or(buf.len());
        input.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') && !too_long {
        line.pop();
    }
    Ok(Some(if too_long {
        Line::TooLong(line)
    } else {
        Line::Complete(line)
    }))
}

/// One stdin line: `FROM TO TEXT...`.
fn parse_mt(line: &str) -> Result<Message, String> {
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(from), Some(to), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected `FROM TO TEXT`".into());
    };
    Message::text(from, to, text).map_err(|e| e.to_string())
}

/// The message a line asks for, or why it is refused.
fn parse_line(line: &Line) -> Result<Message, String> {
    match line {
        Line::TooLong(_) => Err(format!("line longer than {MAX_LINE_BYTES} bytes")),
        Line::Complete(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => parse_mt(text),
            Err(e) => Err(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
        },
    }
}

/// The start of a line, quotable in a log line.
fn prefix(line: &Line) -> String {
    let (Line::Complete(b) | Line::TooLong(b)) = line;
    String::from_utf8_lossy(&b[..b.len().min(LOGGED_PREFIX)]).into_owned()
}

/// The JSON line printed for an event, if it is one the caller sees on stdout.
fn event_line(ev: &NodeEvent, link: &str) -> Option<serde_json::Value> {
    Some(match ev {
        NodeEvent::LinkUp { peer, .. } => json!({"event": "link_up", "peer": peer}),
        NodeEvent::LinkDown { reason, .. } => json!({"event": "link_down", "reason": reason}),
        NodeEvent::Received { seq, message, .. } => json!({
            "event": "mo",
            "link": link,
            "seq": seq,
            "from": message.from.as_str(),
            "to": message.to.as_str(),
            "text": message.text_str(),
            "data_hex": message.text_str().is_none().then(|| {
                message.payload().iter().map(|b| format!("{b:02X}")).collect::<String>()
            }),
            // A long MO whose parts did not all come within --reassembly-timeout-ms.
            "incomplete": message.part.is_some(),
        }),
        NodeEvent::Report {
            client_ref,
            state,
            error,
            parts,
            ..
        } => json!({
            "event": "report",
            "line": client_ref,
            "state": format!("{state:?}").to_lowercase(),
            "error": error,
            "parts": parts,
        }),
        NodeEvent::Durable {
            seq, client_ref, ..
        } => json!({"event": "durable", "line": client_ref, "link": link, "seq": seq}),
        NodeEvent::Status {
            seq,
            client_ref,
            state: SlotState::Processed,
            outcome,
            ..
        } => match outcome {
            Some(Outcome::Rejected { code }) => json!({
                "event": "mt_status", "line": client_ref, "link": link, "seq": seq,
                "outcome": "rejected", "code": code,
            }),
            _ => json!({
                "event": "mt_status", "line": client_ref, "link": link, "seq": seq,
                "outcome": "accepted",
            }),
        },
        _ => return None,
    })
}

/// Print an event's line; acknowledge a received message once it is written.
fn handle_event(
    node: &Node,
    ev: &NodeEvent,
    link_name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(line) = event_line(ev, link_name) {
        emit(&mut std::io::stdout().lock(), &line)?;
    }
    // Acknowledged only once written: that is what "stored" means here.
    if let NodeEvent::Received { link, seq, .. } = ev {
        node.ack(*link, *seq, Outcome::Accepted)?;
    }
    Ok(())
}

/// Write one JSON line and flush it (a reader on a pipe sees it at once).
fn emit(out: &mut impl Write, line: &serde_json::Value) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}

/// Feed stdin lines to the node until stdin ends, the node stops or `stop` is set.
/// Each line is read only once the link has room, and answered on stdout.
fn feed(
    node: &Node,
    input: &mut impl BufRead,
    first_line: u64,
    restored: &HashMap<u64, u64>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let link_name = node.link_name(LINK).unwrap_or("-").to_owned();
    let mut number = first_line;
    loop {
        // Room first, then the line: a crash never finds a line read but not sent.
        if !wait_for_room(node, stop)? {
            return Ok(());
        }
        let Some(line) = read_line(input, MAX_LINE_BYTES).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let this = number;
        number += 1;
        if matches!(&line, Line::Complete(b) if b.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if let Some(seq) = restored.get(&this) {
            let answer = json!({"event": "restored", "line": this, "link": link_name, "seq": seq});
            emit(&mut std::io::stdout().lock(), &answer).map_err(|e| e.to_string())?;
            continue;
        }
        let mut message = match parse_line(&line) {
            Ok(m) => m,
            Err(reason) => {
                slog!(
                    target: "node",
                    Level::Warn,
                    "event=bad_input line={this} reason={reason:?} prefix={:?}",
                    prefix(&line)
                );
                let answer = json!({"event": "error", "line": this, "reason": reason});
                emit(&mut std::io::stdout().lock(), &answer).map_err(|e| e.to_string())?;
                continue;
            }
        };
        message.client_ref = this;
        loop {
            // Held across the send, so that `accepted` precedes the message's `durable`.
            let mut out = std::io::stdout().lock();
            let answer = match node.send_on(LINK, &message) {
                Ok(r) => {
                    json!({"event": "accepted", "line": this, "link": link_name, "seq": r.seq})
                }
                // Only this thread sends, after room was there; should the node still
                // refuse (say, its disk budget is used up), the line waits for room.
                Err(NodeError::Full { .. }) => {
                    drop(out);
                    if !wait_for_room(node, stop)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(NodeError::Stopped) => return Err(format!("line {this} not taken: stopped")),
                Err(e) => json!({"event": "error", "line": this, "reason": e.to_string()}),
            };
            emit(&mut out, &answer).map_err(|e| e.to_string())?;
            break;
        }
    }
}

/// Wait until the link takes a message: true, or false once `stop` is set.
fn wait_for_room(node: &Node, stop: &AtomicBool) -> Result<bool, String> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        // Bounded so that a signal is noticed.
        match node.wait_for_room(LINK, 1, Some(Duration::from_millis(200))) {
            Ok(_) => return Ok(true),
            Err(NodeError::Full { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
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
    let link_name = node.link_name(LINK).unwrap_or("-").to_owned();
    let first_line = args.first_line.unwrap_or(1);
    let started = json!({
        "event": "started",
        "link": link_name,
        "listen": node.local_addr(LINK).map(|a| a.to_string()),
        "dial": args.dial.map(|a| a.to_string()),
        "metrics": node.metrics_addr().map(|a| a.to_string()),
        "journal": args.journal.journal_dir.as_ref().map(|d| d.display().to_string()),
        "first_line": first_line,
    });
    emit(&mut std::io::stdout().lock(), &started)?;
    // What the node reported before any line was read: the journal's messages from
    // before the restart come first (`durable` again), by their lines.
    let mut restored = HashMap::new();
    while let Some(ev) = node.try_event() {
        if let NodeEvent::Durable {
            seq, client_ref, ..
        } = ev
        {
            restored.insert(client_ref, seq);
        }
        handle_event(&node, &ev, &link_name)?;
    }
    if args.first_line.is_none() {
        // Line numbers of an earlier input: nothing to recognise.
        restored.clear();
    }

    // MT from stdin, on its own thread: a full ring makes it wait, never drop.
    let sender = {
        let node = node.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            if let Err(e) = feed(&node, &mut input, first_line, &restored, &stop) {
                slog!(target: "node", Level::Warn, "event=input_stopped reason={e:?}");
            }
        })
    };

    while !stop.load(Ordering::Relaxed) && node.is_running() {
        // Wake at least every 200 ms to notice a signal.
        let Some(ev) = node.wait_event(Some(Duration::from_millis(200))) else {
            continue;
        };
        handle_event(&node, &ev, &link_name)?;
    }
    let report = node.close(Duration::from_secs(2));
    let done = json!({
        "event": "stopped",
        "drained": report.drained,
        "mt_still_in_ring": report.links.first().map_or(0, |l| l.tx_in_use),
    });
    emit(&mut std::io::stdout().lock(), &done)?;
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

    #[test]
    fn lines_are_read_whole_or_cut_at_the_limit() {
        let mut input = std::io::BufReader::with_capacity(4, &b"ab\r\n0123456789\nxy\n\nlast"[..]);
        let mut next = || read_line(&mut input, 6).unwrap();
        assert_eq!(next(), Some(Line::Complete(b"ab".to_vec())));
        assert_eq!(next(), Some(Line::TooLong(b"012345".to_vec())));
        assert_eq!(next(), Some(Line::Complete(b"xy".to_vec())));
        assert_eq!(next(), Some(Line::Complete(Vec::new())));
        assert_eq!(next(), Some(Line::Complete(b"last".to_vec())));
        assert_eq!(next(), None);
    }

    #[test]
    fn the_reassembly_timeout_comes_from_its_flag() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let base = [
            "x",
            "--psk=a key of 16+ bytes",
            "--listen=127.0.0.1:0",
            "--insecure-plaintext",
        ];
        let cli = Cli::parse_from(base);
        let default = NodeConfig::new(Vec::new()).reassembly_timeout;
        assert_eq!(config(&cli.args).unwrap().reassembly_timeout, default);
        let cli = Cli::parse_from(base.iter().chain(&["--reassembly-timeout-ms=2500"]));
        assert_eq!(
            config(&cli.args).unwrap().reassembly_timeout,
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn the_help_gives_the_line_limit() {
        assert!(OUTPUT_HELP.contains(&format!("at most {} KiB", MAX_LINE_BYTES / 1024)));
    }

    #[test]
    fn bad_lines_say_why() {
        let bad_utf8 = Line::Complete(b"1 2 caf\xe9".to_vec());
        assert!(parse_line(&bad_utf8)
            .unwrap_err()
            .contains("UTF-8 at byte 7"));
        let long = Line::TooLong(vec![b'x'; 100]);
        assert!(parse_line(&long).unwrap_err().contains("longer than"));
        assert_eq!(prefix(&long).len(), LOGGED_PREFIX);
        let short = Line::Complete(b"12345".to_vec());
        assert!(parse_line(&short).unwrap_err().contains("FROM TO TEXT"));
    }
}
