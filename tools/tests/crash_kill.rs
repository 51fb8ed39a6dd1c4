//! Real processes, real crashes: `smslink smsc-sim` (CIMD2), `smslink buffer-server`
//! and `smslink im-endpoint` with journals, `smslink wan` between the link ends.
//! MO flow from the simulator, MT from im-endpoint's stdin; each end is killed with
//! SIGKILL several times while both directions carry traffic, and restarted on its
//! journal directory (the feeder resuming after the last `durable` line). At the end:
//!
//! * MO: every MO the simulator had answered is printed by im-endpoint, none under
//!   two sequence numbers, the sequence numbers without a gap. Allowed and counted:
//!   the same MO printed again under its seq after an im-endpoint crash (its
//!   acknowledgement not yet recorded; a consumer skips seqs it has), and MO stored
//!   by the buffer server whose answer the crash kept from the simulator.
//! * MT: every input line is reported durable and accepted by the simulator; twice
//!   only as the buffer server reports resubmissions (a submit the SMSC accepted just
//!   before the crash). A resent line made durable in the instant before an
//!   im-endpoint kill, before its `durable` line was printed, is recognised
//!   (`restored`), not sent again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smslink_tools::scenario::TempDir;
use smslink_tools::smsc_sim::complete_lines;

const PSK: &str = "crash test key, 16+ bytes";
/// Kills of each end.
const KILLS: usize = 3;
/// MT lines written per phase (between two kills), and in all.
const LINES_PER_PHASE: u64 = 150;
const LINES: u64 = LINES_PER_PHASE * (2 * KILLS as u64 + 2);
/// Traffic each way that must have flowed since the last restart before a kill.
const PROGRESS_BEFORE_KILL: usize = 40;
const WAIT: Duration = Duration::from_secs(60);

fn smslink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smslink"))
}

/// A child process, SIGKILLed and reaped when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Forward a child's output lines to a channel (and keep draining it).
fn lines_of(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                // Nobody listens any more: keep the pipe drained.
                continue;
            }
        }
    });
    rx
}

/// The first line containing `what` (within WAIT), with the lines before it.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(what) => return l,
            Ok(_) => {}
            Err(_) => panic!("no line with {what:?}"),
        }
    }
}

fn word_after(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        .to_owned()
}

fn start_sim(dir: &Path) -> (Proc, SocketAddr) {
    let mut child = smslink()
        .args(["smsc-sim", "--listen", "127.0.0.1:0", "--quiet"])
        .args(["--mo-rate", "200", "--mo-text", "mo {n} {t}"])
        .args(["--processing-delay-ms", "1"])
        .arg("--record")
        .arg(dir.join("mt.jsonl"))
        .arg("--record-mo")
        .arg(dir.join("mo.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    // "smsc-sim: listening on ADDR"
    let line = wait_line(&err, "listening on");
    let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
    (Proc(child), addr)
}

struct BufferServer {
    proc: Proc,
    addr: SocketAddr,
    metrics: SocketAddr,
}

/// The link runs TLS as in production: each end presents `<dir>/<me>.crt` and pins
/// the other's key (made once by the test, kept across restarts).
fn tls_args(dir: &Path, me: &str, peer: &str, prefix: &str) -> Vec<String> {
    let peer_id = std::fs::read_to_string(dir.join(format!("{peer}.fingerprint"))).unwrap();
    vec![
        format!(
            "{prefix}tls-cert={}",
            dir.join(format!("{me}.crt")).display()
        ),
        format!(
            "{prefix}tls-key={}",
            dir.join(format!("{me}.key")).display()
        ),
        format!("{prefix}tls-peer-fingerprint={peer_id}"),
    ]
}

fn make_identities(dir: &Path) {
    for name in ["bs", "im"] {
        let id = smslink_tools::certs::generate_site(name, dir).unwrap();
        let hex = smslink::runtime::tls::fingerprint_hex(&id.fingerprint);
        std::fs::write(dir.join(format!("{name}.fingerprint")), hex).unwrap();
    }
}

fn start_bs(dir: &Path, sim: SocketAddr, listen: SocketAddr) -> BufferServer {
    let mut child = smslink()
        .args([
            "buffer-server",
            "--smsc-user",
            "smslink",
            "--smsc-password",
            "secret",
        ])
        .args(["--smsc-addr", &sim.to_string()])
        .args(["--link-name", "bs", "--link-peer", "im", "--link-psk", PSK])
        .args(["--link-listen", &listen.to_string()])
        .args(tls_args(dir, "bs", "im", "--link-"))
        .args(["--link-heartbeat-ms", "200", "--link-dead-after-ms", "1000"])
        .args(["--reconnect-min-ms", "20", "--reconnect-max-ms", "200"])
        .args(["--stats-interval-secs", "0", "--log-level", "info"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--journal-dir")
        .arg(dir.join("bs-journal"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let addr = word_after(&wait_line(&err, "event=started"), "listen=")
        .parse()
        .unwrap();
    let metrics = word_after(&wait_line(&err, "event=metrics_listening"), "addr=")
        .parse()
        .unwrap();
    BufferServer {
        proc: Proc(child),
        addr,
        metrics,
    }
}

/// A counter of the buffer server's `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key.split('{').next() == Some(name)).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Submits the buffer server made of an MT submitted before: in this process, and
/// restored from the journal after a restart (the SMSC may have taken them already).
fn resubmissions(metrics: SocketAddr) -> u64 {
    metric(metrics, "smslink_smsc_mt_resubmitted_total")
        + metric(metrics, "smslink_smsc_mt_resubmitted_after_restart_total")
}

fn start_wan(upstream: SocketAddr) -> (Proc, SocketAddr) {
    let mut child = smslink()
        .args([
            "wan",
            "--listen",
            "127.0.0.1:0",
            "--delay-ms",
            "2",
            "--seed",
            "7",
        ])
        .args(["--upstream", &upstream.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    // "wan: listening on ADDR -> UPSTREAM ..."
    let line = wait_line(&out, "wan: listening on");
    let addr = line
        .split_whitespace()
        .skip_while(|w| *w != "on")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (Proc(child), addr)
}

struct ImEndpoint {
    proc: Proc,
    stdin: ChildStdin,
    out: mpsc::Receiver<String>,
}

fn start_im(dir: &Path, wan: SocketAddr, first_line: u64) -> ImEndpoint {
    let mut child = smslink()
        .args(["im-endpoint", "--name", "im", "--peer", "bs", "--psk", PSK])
        .args(["--dial", &wan.to_string()])
        .args(tls_args(dir, "im", "bs", "--"))
        .args(["--heartbeat-ms", "200", "--dead-after-ms", "1000"])
        .args(["--reconnect-min-ms", "20", "--reconnect-max-ms", "200"])
        .args([
            "--first-line",
            &first_line.to_string(),
            "--log-level",
            "warn",
        ])
        .arg("--journal-dir")
        .arg(dir.join("im-journal"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    ImEndpoint {
        proc: Proc(child),
        stdin,
        out,
    }
}

fn mt_line(n: u64) -> String {
    format!("12345 +4670000001 mt {n}\n")
}

/// What the test has seen of im-endpoint's stdout, over all its runs.
#[derive(Default)]
struct Seen {
    /// MT lines reported durable.
    durable: BTreeSet<u64>,
    /// MO printed: seq -> text.
    mo: BTreeMap<u64, String>,
    /// MO printed again under a seq already seen (same text).
    mo_reprinted: usize,
    /// Resent lines im-endpoint recognised as already in its journal.
    restored: usize,
    /// Counts since the last restart of either end.
    durable_since: usize,
    mo_since: usize,
}

impl Seen {
    fn take(&mut self, line: &str) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        match v["event"].as_str() {
            Some("durable") if self.durable.insert(v["line"].as_u64().unwrap()) => {
                self.durable_since += 1;
            }
            Some("mo") => {
                let seq = v["seq"].as_u64().unwrap();
                let text = v["text"].as_str().unwrap().to_owned();
                match self.mo.get(&seq) {
                    Some(before) => {
                        assert_eq!(before, &text, "seq {seq} printed with two texts");
                        self.mo_reprinted += 1;
                    }
                    None => {
                        self.mo.insert(seq, text);
                        self.mo_since += 1;
                    }
                }
            }
            Some("restored") => self.restored += 1,
            Some("error") => panic!("a good line refused: {line}"),
            _ => {}
        }
    }

    /// Read im-endpoint's output until `done(self)` holds.
    fn until(&mut self, im: &ImEndpoint, what: &str, mut done: impl FnMut(&Seen) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match im.out.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => self.take(&line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    assert!(Instant::now() < deadline, "timed out waiting for {what}");
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("im-endpoint died ({what})"),
            }
        }
    }

    /// Take what a killed im-endpoint printed before it died.
    fn drain(&mut self, im: ImEndpoint) {
        let ImEndpoint { mut proc, out, .. } = im;
        proc.kill();
        for line in out.iter() {
            self.take(&line);
        }
    }

    /// The line a restarted feeder resumes from: one after the last durable line.
    fn resume_from(&self) -> u64 {
        self.durable.last().map_or(1, |l| l + 1)
    }
}

/// The records the simulator has written in full so far.
fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    complete_lines(&std::fs::read_to_string(path).unwrap_or_default())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// MT texts the simulator accepted, with how often.
fn mt_accepted(dir: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for v in read_jsonl(&dir.join("mt.jsonl")) {
        *counts
            .entry(v["text"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

#[test]
fn either_end_killed_with_sigkill_loses_and_repeats_nothing() {
    let tmp = TempDir::new("smslink-crash-kill").unwrap();
    let dir: PathBuf = tmp.path().to_owned();
    make_identities(&dir);
    let (mut sim, sim_addr) = start_sim(&dir);
    let mut bs = start_bs(&dir, sim_addr, "127.0.0.1:0".parse().unwrap());
    let bs_addr = bs.addr;
    let (mut wan, wan_addr) = start_wan(bs_addr);
    let mut im = start_im(&dir, wan_addr, 1);
    let mut seen = Seen::default();
    let mut written = 0u64;
    let mut resubmits_reported = 0u64;

    let write_upto = |im: &mut ImEndpoint, from: u64, to: u64| {
        for n in from..=to {
            im.stdin.write_all(mt_line(n).as_bytes()).unwrap();
        }
        im.stdin.flush().unwrap();
    };

    for phase in 0..2 * KILLS {
        let upto = written + LINES_PER_PHASE;
        write_upto(&mut im, written + 1, upto);
        written = upto;
        seen.until(&im, "traffic both ways before a kill", |s| {
            s.durable_since >= PROGRESS_BEFORE_KILL && s.mo_since >= PROGRESS_BEFORE_KILL
        });
        if phase % 2 == 0 {
            resubmits_reported += resubmissions(bs.metrics);
            bs.proc.kill();
            bs = start_bs(&dir, sim_addr, bs_addr);
        } else {
            seen.drain(im);
            let from = seen.resume_from();
            im = start_im(&dir, wan_addr, from);
            if from <= written {
                write_upto(&mut im, from, written);
            }
        }
        seen.durable_since = 0;
        seen.mo_since = 0;
    }
    write_upto(&mut im, written + 1, LINES);
    seen.until(&im, "every MT line durable", |s| {
        s.durable.len() as u64 == LINES
    });
    // The simulator records each submit as it accepts it; its outcome then comes
    // out of im-endpoint, so its output paces the look at the record.
    let deadline = Instant::now() + WAIT;
    while (1..=LINES).any(|n| !mt_accepted(&dir).contains_key(&format!("mt {n}"))) {
        assert!(Instant::now() < deadline, "the SMSC never got every MT");
        if let Ok(line) = im.out.recv_timeout(Duration::from_millis(50)) {
            seen.take(&line);
        }
    }
    // Every MO the simulator has answered by now must come out.
    let answered: Vec<String> = read_jsonl(&dir.join("mo.jsonl"))
        .iter()
        .map(|v| v["text"].as_str().unwrap().to_owned())
        .collect();
    seen.until(&im, "every answered MO printed", |s| {
        let printed: BTreeSet<&String> = s.mo.values().collect();
        answered.iter().all(|t| printed.contains(t))
    });
    resubmits_reported += resubmissions(bs.metrics);
    // Stop the buffer server first: what it answered is then all the SMSC answers.
    bs.proc.kill();
    seen.drain(im);
    wan.kill();
    sim.kill();
    let accepted = mt_accepted(&dir);
    let answered_at_end: BTreeSet<String> = read_jsonl(&dir.join("mo.jsonl"))
        .iter()
        .map(|v| v["text"].as_str().unwrap().to_owned())
        .collect();

    // MO: no seq gap, no MO under two seqs, stored-but-unanswered only per bs kill.
    let seqs: Vec<u64> = seen.mo.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "MO seqs have a gap"
    );
    let mut by_text: HashMap<&String, usize> = HashMap::new();
    for t in seen.mo.values() {
        *by_text.entry(t).or_default() += 1;
    }
    let twice: Vec<_> = by_text.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "MO delivered twice: {twice:?}");
    // "mo {n} {t}": t is the simulator's send time, so in seq order it only grows.
    let sent_at: Vec<u128> = seen
        .mo
        .values()
        .map(|t| t.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        sent_at.windows(2).all(|w| w[0] <= w[1]),
        "MO reached im-endpoint out of order"
    );
    // One MO in flight per CIMD2 session can lose its answer at each kill of the
    // buffer server (the last one included).
    let unanswered = by_text
        .keys()
        .filter(|t| !answered_at_end.contains(t.as_str()))
        .count();
    assert!(
        unanswered <= KILLS + 1,
        "{unanswered} MO printed that the SMSC never had answered ({} buffer-server kills)",
        KILLS + 1
    );

    // MT: first acceptances in input order; all accepted; repeats only as the buffer
    // server reports resubmissions.
    let mut firsts = Vec::new();
    let mut first_seen = BTreeSet::new();
    for v in read_jsonl(&dir.join("mt.jsonl")) {
        let n: u64 = v["text"].as_str().unwrap()["mt ".len()..].parse().unwrap();
        if first_seen.insert(n) {
            firsts.push(n);
        }
    }
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "MT reached the SMSC out of order"
    );
    let repeats: usize = (1..=LINES).map(|n| accepted[&format!("mt {n}")] - 1).sum();
    eprintln!(
        "crash test: {LINES} MT lines, {} MO; {KILLS} kills of each end; MO printed again under \
         their seq: {}; MO stored but unanswered at a kill: {unanswered}; resent MT lines the \
         journal already held: {}; MT accepted twice: {repeats} (resubmissions reported: \
         {resubmits_reported})",
        seen.mo.len(),
        seen.mo_reprinted,
        seen.restored,
    );
    assert!(
        repeats as u64 <= resubmits_reported,
        "{repeats} MT accepted twice, {resubmits_reported} resubmissions reported"
    );
    drop(tmp);
}
