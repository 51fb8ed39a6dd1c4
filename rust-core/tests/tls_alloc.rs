//! Heap an idle TLS connection keeps, end by end: a counting allocator tags every
//! block with the end (client or server) that was being driven when it was
//! allocated, so each end's live bytes are exact, wherever they are freed.

use smslink::link::Side;
use smslink::runtime::tls::{spki_fingerprint, TlsContext};
use smslink::runtime::{Conn, PeerAuth, ReadOutcome, TlsSpec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// Live bytes by tag: 0 untagged, 1 the TLS client end, 2 the server end.
static LIVE: [AtomicIsize; 3] = [
    AtomicIsize::new(0),
    AtomicIsize::new(0),
    AtomicIsize::new(0),
];

thread_local! {
    /// The end whose allocations this thread is making now.
    static TAG: Cell<usize> = const { Cell::new(0) };
}

const CLIENT: usize = 1;
const SERVER: usize = 2;

/// Room in front of each block for its tag, keeping the block's alignment.
fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

struct Tagging;

unsafe impl GlobalAlloc for Tagging {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let h = header(layout);
        let Ok(outer) = Layout::from_size_align(layout.size() + h, layout.align().max(16)) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a non-zero size; the tag is written inside the block just allocated.
        unsafe {
            let p = System.alloc(outer);
            if p.is_null() {
                return p;
            }
            let tag = TAG.try_with(Cell::get).unwrap_or(0);
            (p as *mut usize).write(tag);
            LIVE[tag].fetch_add(layout.size() as isize, Ordering::Relaxed);
            p.add(h)
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let h = header(layout);
        // SAFETY: `ptr` came from `alloc` above with this layout: the tag sits `h`
        // bytes in front of it, and the outer layout is the one allocated.
        unsafe {
            let p = ptr.sub(h);
            let tag = (p as *const usize).read();
            LIVE[tag].fetch_sub(layout.size() as isize, Ordering::Relaxed);
            let outer =
                Layout::from_size_align_unchecked(layout.size() + h, layout.align().max(16));
            System.dealloc(p, outer);
        }
    }
}

#[global_allocator]
static GLOBAL: Tagging = Tagging;

fn live(tag: usize) -> isize {
    LIVE[tag].load(Ordering::Relaxed)
}

/// Run `f` with its allocations counted for `tag`.
fn as_end<R>(tag: usize, f: impl FnOnce() -> R) -> R {
    TAG.with(|t| t.set(tag));
    let r = f();
    TAG.with(|t| t.set(0));
    r
}

fn identity(name: &str, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, [u8; 32]) {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, spki_fingerprint(cert.der()).unwrap())
}

/// Both ends of one loopback TLS connection, and whether each reported it ready.
struct Pair {
    ends: [Conn; 2],
    up: [bool; 2],
    inbox: [Vec<u8>; 2],
}

const TAGS: [usize; 2] = [CLIENT, SERVER];

fn connect(client_tls: &TlsContext, server_tls: &TlsContext) -> Pair {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dialled = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    dialled.set_nonblocking(true).unwrap();
    accepted.set_nonblocking(true).unwrap();
    let client = as_end(CLIENT, || {
        Conn::with_tls(
            mio::net::TcpStream::from_std(dialled),
            true,
            client_tls.session(Side::Dialer).unwrap(),
        )
    });
    let server = as_end(SERVER, || {
        Conn::with_tls(
            mio::net::TcpStream::from_std(accepted),
            true,
            server_tls.session(Side::Listener).unwrap(),
        )
    });
    Pair {
        ends: [client, server],
        up: [false; 2],
        inbox: [Vec::new(), Vec::new()],
    }
}

impl Pair {
    /// Each end's turn: write what it has, read what arrived (plaintext into its inbox).
    fn turn(&mut self) {
        for (i, tag) in TAGS.into_iter().enumerate() {
            let (conn, inbox, up) = (&mut self.ends[i], &mut self.inbox[i], &mut self.up[i]);
            as_end(tag, || {
                conn.flush().unwrap();
                match conn.read_into(inbox).unwrap() {
                    ReadOutcome::Open(_) => {}
                    ReadOutcome::Closed(_) => panic!("peer closed"),
                }
                if conn.established().unwrap().is_some() {
                    *up = true;
                }
                conn.flush().unwrap();
                conn.shrink_buffers();
            });
        }
    }

    /// Turns until `done` holds (loopback delivers at once: the deadline only
    /// bounds a broken connection).
    fn drive(&mut self, done: impl Fn(&Pair) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if done(self) {
                return;
            }
            self.turn();
        }
        panic!("connection did not get there");
    }
}

/// Per idle end over `N` connections: (client, server) bytes after the handshake and
/// a few small records each way, as a link's own handshake and heartbeats make.
fn idle_heap_per_end() -> (isize, isize) {
    let dir = std::env::temp_dir().join(format!("smslink-tls-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a_cert, a_key, a_fp) = identity("a.example", &dir);
    let (b_cert, b_key, b_fp) = identity("b.example", &dir);
    let client_tls = TlsContext::new(
        &TlsSpec::new(&a_cert, &a_key, PeerAuth::Fingerprint(b_fp)),
        None,
    )
    .unwrap();
    let server_tls = TlsContext::new(
        &TlsSpec::new(&b_cert, &b_key, PeerAuth::Fingerprint(a_fp)),
        None,
    )
    .unwrap();
    const N: usize = 20;
    const RECORDS: usize = 3;
    let before = [live(CLIENT), live(SERVER)];
    let mut pairs = Vec::new();
    for _ in 0..N {
        let mut p = connect(&client_tls, &server_tls);
        p.drive(|p| p.up[0] && p.up[1]);
        for round in 1..=RECORDS {
            for (i, tag) in TAGS.into_iter().enumerate() {
                let conn = &mut p.ends[i];
                as_end(tag, || conn.out_buf().extend_from_slice(&[7u8; 40]));
            }
            p.drive(|p| p.inbox.iter().all(|b| b.len() == 40 * round));
        }
        for b in &mut p.inbox {
            *b = Vec::new();
        }
        pairs.push(p);
    }
    let held = [live(CLIENT) - before[0], live(SERVER) - before[1]];
    drop(pairs);
    let _ = std::fs::remove_dir_all(&dir);
    (held[0] / N as isize, held[1] / N as isize)
}

/// The TLS share of the 16 kB an idle link end may cost (the link's own state takes
/// about 6 kB): rustls keeps a 4 KiB receive buffer (`DeframerVecBuffer`, which its
/// buffered API never makes smaller than that), the session's boxed state, record
/// keys, key schedule and the peer's certificate.
const TLS_IDLE_BUDGET: isize = 9 * 1024;

#[test]
fn an_idle_tls_end_holds_at_most_its_budget_either_side() {
    let (client, server) = idle_heap_per_end();
    eprintln!("idle TLS heap per end: client {client} bytes, server {server} bytes");
    assert!(
        client <= TLS_IDLE_BUDGET,
        "an idle TLS client end holds {client} bytes (budget {TLS_IDLE_BUDGET})"
    );
    assert!(
        server <= TLS_IDLE_BUDGET,
        "an idle TLS server end holds {server} bytes (budget {TLS_IDLE_BUDGET})"
    );
}
