//! RAM per link: bytes an idle link costs, and what a full window adds and gives
//! back, for 100, 1,000 and 10,000 links.
//!
//! * `endpoint`: exact heap bytes per idle sans-IO `Endpoint` (a counting global
//!   allocator; every thread counts).
//! * `pair busy` / `pair done`: heap bytes per endpoint of connected in-memory pairs,
//!   with a full window in flight (255 messages of 160 characters sent by one end,
//!   stored and delivered but not processed by the other), then after every message
//!   came back Processed.
//! * `node listen`: heap and RSS per link of a `Node` with N idle listening links
//!   (RSS after `malloc_trim`, so it counts what the process holds, not what glibc
//!   keeps in its arenas).
//! * `node pairs` (and `node pairs tls`: TLS 1.3 with pinned keys): two nodes in
//!   one process, N links each, each link naming its peer, connected on loopback (up to 5,000 pairs for lack
//!   of descriptors): per link while idle and up, with a full window in flight on
//!   every link, and a heartbeat after it was processed.
//!
//! Each figure is measured in a fresh child process (so RSS starts clean).
//!
//! `cargo bench -p smslink-core --bench link_memory` (`-- 100 1000` picks the counts)

use smslink::link::{Endpoint, LinkConfig, Side};
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::tls::spki_fingerprint;
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};
use smslink::runtime::{PeerAuth, TlsSpec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

/// Heap bytes currently allocated, by every thread.
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PSK: &[u8] = b"link memory bench key";
const CHILD: &str = "SMSLINK_LINK_MEMORY_CHILD";
/// Connected pairs measured at most (three descriptors each).
const MAX_PAIRS: usize = 5_000;

fn heap() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size of this process, in bytes, after the allocator returned
/// what it can to the system (glibc keeps freed memory in its arenas otherwise).
fn rss() -> isize {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: isize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as isize
}

fn text160() -> Message {
    let text: String = "0123456789abcdef".repeat(10);
    Message::text("+61400000001", "12345", &text).expect("valid message")
}

fn per(bytes: isize, n: usize) -> isize {
    bytes / n as isize
}

fn endpoint(n: usize) -> String {
    let now = Instant::now();
    let before = heap();
    let eps: Vec<Endpoint> = (0..n)
        .map(|i| Endpoint::new(LinkConfig::new(&format!("l{i}"), PSK), now).expect("config"))
        .collect();
    let idle = heap() - before;
    drop(eps);
    format!("endpoint idle heap/link={}", per(idle, n))
}

/// Two endpoints joined in memory (one transfer buffer for all pairs, as the
/// runtime has one read buffer per loop).
struct Link {
    a: Endpoint,
    b: Endpoint,
}

/// What `from` writes, `to` reads. Returns whether bytes moved.
fn transfer(from: &mut Endpoint, to: &mut Endpoint, buf: &mut Vec<u8>, now: Instant) -> bool {
    buf.clear();
    if from.poll_transmit(now, buf) == 0 {
        return false;
    }
    to.handle_input(buf, now).expect("clean stream");
    true
}

/// Move bytes (handing every received message on if `process`) until nothing
/// moves; then give back buffer capacity as the runtime does between bursts.
fn settle(links: &mut [Link], buf: &mut Vec<u8>, now: Instant, process: bool) {
    for l in links.iter_mut() {
        loop {
            let moved =
                transfer(&mut l.a, &mut l.b, buf, now) | transfer(&mut l.b, &mut l.a, buf, now);
            for ep in [&mut l.a, &mut l.b] {
                while ep.poll_event().is_some() {}
                if process {
                    while let Some((seq, _)) = ep.next_received() {
                        ep.mark_processed(seq, Outcome::Accepted)
                            .expect("delivered");
                    }
                }
            }
            if !moved {
                break;
            }
        }
        l.a.shrink_buffers();
        l.b.shrink_buffers();
    }
}

fn pair(n: usize) -> String {
    let now = Instant::now();
    let msg = text160();
    let mut buf = Vec::with_capacity(1 << 20);
    let base = heap();
    let mut links: Vec<Link> = (0..n)
        .map(|i| {
            let mut l = Link {
                a: Endpoint::new(LinkConfig::new(&format!("a{i}"), PSK), now).expect("config"),
                b: Endpoint::new(LinkConfig::new(&format!("b{i}"), PSK), now).expect("config"),
            };
            l.a.connected(now, Side::Dialer);
            l.b.connected(now, Side::Listener);
            l
        })
        .collect();
    settle(&mut links, &mut buf, now, true);
    assert!(links.iter().all(|l| l.a.is_up() && l.b.is_up()));
    let up = heap() - base;
    for l in links.iter_mut() {
        while l.a.send(&msg).is_ok() {}
    }
    settle(&mut links, &mut buf, now, false);
    for l in links.iter_mut() {
        while l.b.next_received().is_some() {}
    }
    assert!(links.iter().all(|l| l.b.rx_ring().in_use() == 255));
    let busy = heap() - base;
    for l in links.iter_mut() {
        for seq in 1..=255 {
            l.b.mark_processed(seq, Outcome::Accepted)
                .expect("delivered");
        }
    }
    settle(&mut links, &mut buf, now, true);
    assert!(links.iter().all(|l| l.a.tx_ring().in_use() == 0));
    let done = heap() - base;
    format!(
        "pair heap/endpoint: up={} busy={} done={}",
        per(up, 2 * n),
        per(busy, 2 * n),
        per(done, 2 * n)
    )
}

/// A link's buffers are given back at its next write once nothing is in flight:
/// at the latest one heartbeat later. Shorter than the default 5 s here.
const HEARTBEAT: Duration = Duration::from_secs(1);

fn link_config(name: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.heartbeat_interval = HEARTBEAT;
    c.dead_after = 3 * HEARTBEAT;
    c
}

/// A link that names the peer it expects, as every IM-side link names its buffer
/// server (and, with TLS, the name its certificate must carry).
fn named_link_config(name: &str, peer: &str) -> LinkConfig {
    let mut c = link_config(name);
    c.expected_peer = Some(peer.to_owned());
    c
}

/// A throwaway TLS identity: certificate and key files, and the key's fingerprint.
struct Identity {
    cert: PathBuf,
    key: PathBuf,
    fingerprint: [u8; 32],
}

fn identity(name: &str, dir: &Path) -> Identity {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![name.to_owned()]).expect("name");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Identity {
        fingerprint: spki_fingerprint(cert.der()).expect("fingerprint"),
        cert: cert_path,
        key: key_path,
    }
}

/// The TLS identities of the two nodes.
struct Tls {
    a: Identity,
    b: Identity,
}

impl Tls {
    fn new() -> Tls {
        let dir = std::env::temp_dir().join(format!("smslink-link-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        Tls {
            a: identity("a.example", &dir),
            b: identity("b.example", &dir),
        }
    }
}

/// `spec` over TLS with its own identity, pinning the peer's key (`None`: plaintext).
fn secured(spec: LinkSpec, own_and_peer: Option<(&Identity, &Identity)>) -> LinkSpec {
    match own_and_peer {
        None => spec.insecure_plaintext(),
        Some((own, peer)) => spec.with_tls(TlsSpec::new(
            &own.cert,
            &own.key,
            PeerAuth::Fingerprint(peer.fingerprint),
        )),
    }
}

/// Wait until `done` holds (the loop publishes stats as it goes), at most `limit`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn node_listen(n: usize, tls: Option<Tls>) -> String {
    let ids = tls.as_ref().map(|t| (&t.a, &t.b));
    let (heap0, rss0) = (heap(), rss());
    let node = Node::start(NodeConfig::new(
        (0..n)
            .map(|i| {
                let spec = LinkSpec::new(
                    link_config(&format!("l{i}")),
                    Transport::Listen("127.0.0.1:0".parse().expect("address")),
                );
                secured(spec, ids)
            })
            .collect(),
    ))
    .expect("node");
    // A few turns of the loop, so that whatever it allocates lazily is there.
    std::thread::sleep(Duration::from_millis(300));
    let (h, r) = (heap() - heap0, rss() - rss0);
    node.shutdown(Duration::from_millis(100));
    format!(
        "node listen{} heap/link={} rss/link={}",
        if tls.is_some() { " tls" } else { "" },
        per(h, n),
        per(r, n)
    )
}

fn node_pairs(n: usize, tls: Option<Tls>) -> String {
    let (heap0, rss0) = (heap(), rss());
    let a_ids = tls.as_ref().map(|t| (&t.a, &t.b));
    let b_ids = tls.as_ref().map(|t| (&t.b, &t.a));
    let a = Node::start(NodeConfig::new(
        (0..n)
            .map(|i| {
                let spec = LinkSpec::new(
                    named_link_config(&format!("a{i}"), &format!("b{i}")),
                    Transport::Listen("127.0.0.1:0".parse().expect("address")),
                );
                secured(spec, a_ids)
            })
            .collect(),
    ))
    .expect("node a");
    let links = (0..n)
        .map(|i| {
            let addr = a.local_addr(i).expect("listening");
            secured(
                LinkSpec::new(
                    named_link_config(&format!("b{i}"), &format!("a{i}")),
                    Transport::Dial(addr),
                ),
                b_ids,
            )
        })
        .collect();
    let b = Node::start(NodeConfig::new(links)).expect("node b");
    let all = |node: &Node, f: &dyn Fn(&smslink::runtime::LinkStats) -> bool| {
        (0..n).all(|i| node.link_stats(i).is_some_and(|s| f(&s)))
    };
    assert!(
        wait_until(Duration::from_secs(120), || all(&a, &|s| s.up)
            && all(&b, &|s| s.up)),
        "links did not come up"
    );
    std::thread::sleep(HEARTBEAT + HEARTBEAT / 2);
    let (up_h, up_r) = (heap() - heap0, rss() - rss0);
    let msg = text160();
    for i in 0..n {
        for _ in 0..255 {
            a.send_on(i, &msg).expect("room");
        }
        while a.try_event().is_some() {}
    }
    let mut received = 0;
    assert!(
        wait_until(Duration::from_secs(120), || {
            // The sender's application reads its status events as it goes.
            while a.try_event().is_some() {}
            while let Some(e) = b.try_event() {
                if let NodeEvent::Received { .. } = e {
                    received += 1;
                }
            }
            received == 255 * n
        }),
        "messages did not arrive"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (busy_h, busy_r) = (heap() - heap0, rss() - rss0);
    // Each link's messages arrived as seqs 1..=255 of its receiving ring.
    for link in 0..n {
        for seq in 1..=255 {
            while b.ack(link, seq, Outcome::Accepted).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while a.try_event().is_some() {}
    }
    assert!(
        wait_until(Duration::from_secs(120), || {
            while a.try_event().is_some() {}
            all(&a, &|s| s.tx_in_use == 0)
        }),
        "messages were not processed"
    );
    while a.try_event().is_some() {}
    std::thread::sleep(HEARTBEAT + HEARTBEAT / 2);
    let (done_h, done_r) = (heap() - heap0, rss() - rss0);
    b.shutdown(Duration::from_millis(100));
    a.shutdown(Duration::from_millis(100));
    let per2 = |x| per(x, 2 * n);
    format!(
        "node pairs{} heap/link: up={} busy={} done={}; rss/link: up={} busy={} done={}",
        if tls.is_some() { " tls" } else { "" },
        per2(up_h),
        per2(busy_h),
        per2(done_h),
        per2(up_r),
        per2(busy_r),
        per2(done_r)
    )
}

fn child(mode: &str, n: usize) -> String {
    match mode {
        "endpoint" => endpoint(n),
        "pair" => pair(n),
        "listen" => node_listen(n, None),
        "listen-tls" => node_listen(n, Some(Tls::new())),
        "pairs" => node_pairs(n, None),
        "pairs-tls" => node_pairs(n, Some(Tls::new())),
        other => panic!("unknown mode {other}"),
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        let (mode, n) = spec.split_once(' ').expect("mode and count");
        println!("{}", child(mode, n.parse().expect("count")));
        return;
    }
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![100, 1_000, 10_000]
    } else {
        counts
    };
    let exe = std::env::current_exe().expect("own path");
    println!("bytes per link (heap: counted exactly; rss: /proc/self/statm)");
    for mode in [
        "endpoint",
        "pair",
        "listen",
        "listen-tls",
        "pairs",
        "pairs-tls",
    ] {
        let mut done = Vec::new();
        for &n in &counts {
            // Three descriptors a pair (a soft limit of 20,000 here): pairs stop
            // at 5,000.
            let n = if mode.starts_with("pairs") {
                n.min(MAX_PAIRS)
            } else {
                n
            };
            if done.contains(&n) {
                continue;
            }
            done.push(n);
            let out = Command::new(&exe)
                .env(CHILD, format!("{mode} {n}"))
                .output()
                .expect("child runs");
            let line = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                println!("n={n:>6} {}", line.trim());
            } else {
                println!(
                    "n={n:>6} {mode} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
}
