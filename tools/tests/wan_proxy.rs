//! The WAN emulator over loopback: an echo (or scripted) upstream in a helper thread,
//! clients in the test thread. Waits are on conditions or events with deadlines.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use smslink_tools::wan::{CutReason, Jitter, Outage, Wan, WanConfig, WanEvent};

const PATIENCE: Duration = Duration::from_secs(10);

/// Echo every connection until EOF, then half-close back; reports each accept.
fn echo_upstream() -> (SocketAddr, Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = tx.send(());
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    (addr, rx)
}

/// Start with an event channel so tests can wait for what the emulator did.
fn start(config: WanConfig) -> (Wan, Receiver<WanEvent>) {
    let (tx, rx) = mpsc::channel();
    let wan = Wan::start_with_events(config, move |e| {
        let _ = tx.send(e.clone());
    })
    .expect("start wan");
    (wan, rx)
}

fn wait_for(events: &Receiver<WanEvent>, what: &str, pred: impl Fn(&WanEvent) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(e) if pred(&e) => return,
            Ok(_) => {}
            Err(_) => panic!("no {what} event within {PATIENCE:?}"),
        }
    }
}

fn connect(wan: &Wan) -> TcpStream {
    let s = TcpStream::connect(wan.local_addr()).expect("connect to wan");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn ping(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("echo");
    assert_eq!(back, msg);
}

/// Payload from a small LCG, so the test needs no extra crate.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn is_reset_or_eof(r: io::Result<usize>) -> bool {
    match r {
        Ok(0) => true,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[test]
fn bytes_arrive_intact_and_in_order_under_jitter() {
    let (upstream, _) = echo_upstream();
    let config = WanConfig::new(upstream)
        .with_delay(Duration::from_millis(3))
        .with_jitter(Jitter::Uniform(Duration::from_millis(3)));
    let (wan, _events) = start(WanConfig { seed: 99, ..config });
    let mut client = connect(&wan);
    let data = payload(4 << 20, 5);
    let mut writer = client.try_clone().expect("clone");
    let sent = data.clone();
    let feeder = thread::spawn(move || {
        // Odd-sized writes, so chunk boundaries fall everywhere.
        for part in sent.chunks(7919) {
            writer.write_all(part).expect("write payload");
        }
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut back = Vec::with_capacity(data.len());
    client.read_to_end(&mut back).expect("read echo to EOF");
    feeder.join().expect("feeder");
    assert_eq!(back.len(), data.len());
    assert_eq!(fnv1a(&back), fnv1a(&data));
    assert!(back == data, "bytes reordered or changed");
    let stats = wan.stats();
    assert_eq!(stats.bytes_up, data.len() as u64);
    assert_eq!(stats.bytes_down, data.len() as u64);
}

#[test]
fn normal_jitter_keeps_order_too() {
    let (upstream, _) = echo_upstream();
    let config = WanConfig::new(upstream)
        .with_delay(Duration::from_millis(2))
        .with_jitter(Jitter::Normal(Duration::from_millis(4)));
    let (wan, _events) = start(WanConfig { seed: 7, ..config });
    let mut client = connect(&wan);
    // Many small writes: each becomes its own chunk with its own random delay.
    for i in 0..300u32 {
        client.write_all(&i.to_be_bytes()).expect("write");
    }
    for i in 0..300u32 {
        let mut b = [0u8; 4];
        client.read_exact(&mut b).expect("read");
        assert_eq!(u32::from_be_bytes(b), i);
    }
}

#[test]
fn round_trip_is_at_least_twice_the_one_way_delay() {
    let (upstream, _) = echo_upstream();
    let (wan, _events) = start(WanConfig::new(upstream).with_delay(Duration::from_millis(50)));
    let mut client = connect(&wan);
    for _ in 0..3 {
        let t = Instant::now();
        ping(&mut client, b"ping");
        let rtt = t.elapsed();
        assert!(rtt >= Duration::from_millis(100), "rtt {rtt:?}");
        assert!(rtt < Duration::from_secs(2), "rtt {rtt:?}");
    }
}

#[test]
fn per_direction_delay_and_set_delay() {
    let (upstream, _) = echo_upstream();
    let mut config = WanConfig::new(upstream);
    config.up.delay = Duration::from_millis(80);
    let (wan, events) = start(config);
    let mut client = connect(&wan);
    let t = Instant::now();
    ping(&mut client, b"a");
    assert!(t.elapsed() >= Duration::from_millis(80));
    wan.set_delay(Duration::ZERO, Duration::from_millis(120));
    wait_for(&events, "delay", |e| matches!(e, WanEvent::Delay { .. }));
    let t = Instant::now();
    ping(&mut client, b"b");
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[test]
fn bandwidth_limits_throughput() {
    let (upstream, _) = echo_upstream();
    let rate = 100_000u64; // bytes per second, each direction
    let (wan, _events) = start(WanConfig::new(upstream).with_bandwidth(rate));
    let mut client = connect(&wan);
    let data = payload(150_000, 9);
    let t = Instant::now();
    let mut writer = client.try_clone().expect("clone");
    let sent = data.clone();
    let feeder = thread::spawn(move || writer.write_all(&sent).expect("write"));
    let mut back = vec![0u8; data.len()];
    client.read_exact(&mut back).expect("read");
    let took = t.elapsed();
    feeder.join().expect("feeder");
    assert_eq!(back, data);
    // Each byte passes the 100 kB/s limit; 150 kB cannot take less than 1.5 s.
    assert!(took >= Duration::from_millis(1450), "took {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn cut_all_resets_both_sides() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut b = [0u8; 5];
        s.read_exact(&mut b).expect("hello");
        s.write_all(b"ok").expect("reply");
        let mut more = [0u8; 1];
        let _ = tx.send(s.read(&mut more).map_err(|e| e.kind()));
    });
    let (wan, events) = start(WanConfig::new(upstream));
    let mut client = connect(&wan);
    client.write_all(b"hello").expect("write");
    let mut ok = [0u8; 2];
    client.read_exact(&mut ok).expect("reply");
    let t = Instant::now();
    wan.cut_all();
    let mut b = [0u8; 1];
    let r = client.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "client saw {r:?}"
    );
    let upstream_saw = rx.recv_timeout(PATIENCE).expect("upstream result");
    assert_eq!(upstream_saw, Err(io::ErrorKind::ConnectionReset));
    assert!(t.elapsed() < Duration::from_secs(2));
    wait_for(&events, "cut", |e| {
        matches!(
            e,
            WanEvent::Cut {
                reason: CutReason::Command,
                ..
            }
        )
    });
    let stats = wan.stats();
    assert_eq!(stats.cuts, 1);
    assert_eq!(stats.active, 0);
}

#[test]
fn scheduled_cuts_happen() {
    let (upstream, _) = echo_upstream();
    let mut config = WanConfig::new(upstream);
    config.cut_every = Some((Duration::from_millis(100), Duration::from_millis(200)));
    let (wan, events) = start(config);
    let mut client = connect(&wan);
    ping(&mut client, b"x");
    wait_for(&events, "scheduled cut", |e| {
        matches!(
            e,
            WanEvent::Cut {
                reason: CutReason::Scheduled,
                ..
            }
        )
    });
    let mut b = [0u8; 1];
    assert!(is_reset_or_eof(client.read(&mut b)));
    // The proxy keeps serving new connections after a cut.
    let mut again = connect(&wan);
    again.write_all(b"y").expect("write");
    match again.read(&mut b) {
        Ok(1) => assert_eq!(&b, b"y"),
        other => assert!(is_reset_or_eof(other), "neither echo nor cut"),
    }
    assert!(wan.stats().connections >= 2);
}

#[test]
fn stall_holds_data_and_keeps_the_connection() {
    let (upstream, _) = echo_upstream();
    let (wan, events) = start(WanConfig::new(upstream));
    let mut client = connect(&wan);
    ping(&mut client, b"before");
    wan.stall(true);
    wait_for(&events, "stall", |e| *e == WanEvent::Stall(true));
    client.write_all(b"during").expect("write while stalled");
    client
        .set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    let mut b = [0u8; 6];
    let r = client.read(&mut b);
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "data passed a stalled link: {r:?}"
    );
    wan.stall(false);
    client.set_read_timeout(Some(PATIENCE)).expect("timeout");
    client.read_exact(&mut b).expect("data after resume");
    assert_eq!(&b, b"during");
    let stats = wan.stats();
    assert_eq!((stats.cuts, stats.active, stats.connections), (0, 1, 1));
}

#[test]
fn outage_refuse_cuts_and_refuses() {
    let (upstream, _) = echo_upstream();
    let (wan, events) = start(WanConfig::new(upstream));
    let mut old = connect(&wan);
    ping(&mut old, b"1");
    wan.set_outage(Outage::Refuse);
    wait_for(&events, "outage", |e| {
        *e == WanEvent::Outage(Outage::Refuse)
    });
    let mut b = [0u8; 1];
    assert!(is_reset_or_eof(old.read(&mut b)));
    // The connect itself completes in the kernel; the reset follows at once.
    if let Ok(mut fresh) = TcpStream::connect(wan.local_addr()) {
        fresh.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let r = fresh.read(&mut b);
        assert!(
            matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "refused connection saw {r:?}"
        );
    }
    wait_for(&events, "refused", |e| {
        matches!(e, WanEvent::Refused { .. })
    });
    assert_eq!(wan.stats().refused, 1);
    wan.set_outage(Outage::None);
    let mut back = connect(&wan);
    ping(&mut back, b"2");
}

#[test]
fn outage_hang_holds_new_connections_until_it_ends() {
    let (upstream, upstream_accepts) = echo_upstream();
    let (wan, events) = start(WanConfig::new(upstream));
    let mut old = connect(&wan);
    ping(&mut old, b"1");
    upstream_accepts
        .recv_timeout(PATIENCE)
        .expect("first upstream conn");
    wan.set_outage(Outage::Hang);
    wait_for(&events, "outage", |e| *e == WanEvent::Outage(Outage::Hang));
    let mut b = [0u8; 4];
    assert!(is_reset_or_eof(old.read(&mut b)));

    let mut hung = connect(&wan);
    hung.write_all(b"wait").expect("write");
    wait_for(&events, "held", |e| matches!(e, WanEvent::Held { .. }));
    hung.set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    assert!(
        hung.read(&mut b).is_err(),
        "a hung connection made progress"
    );
    assert!(
        upstream_accepts.try_recv().is_err(),
        "hang must not reach upstream"
    );

    wan.set_outage(Outage::None);
    hung.set_read_timeout(Some(PATIENCE)).expect("timeout");
    hung.read_exact(&mut b).expect("data once the outage ends");
    assert_eq!(&b, b"wait");
}

#[test]
fn half_close_is_forwarded_after_the_data() {
    let (upstream, _) = echo_upstream();
    let (wan, events) = start(WanConfig::new(upstream).with_delay(Duration::from_millis(30)));
    let mut client = connect(&wan);
    client.write_all(b"last words").expect("write");
    client.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    client.read_to_end(&mut back).expect("read to EOF");
    assert_eq!(back, b"last words");
    wait_for(&events, "closed", |e| matches!(e, WanEvent::Closed { .. }));
    assert_eq!(wan.stats().cuts, 0);
}

#[test]
fn full_queue_stops_reading_instead_of_growing() {
    // An upstream that accepts and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let accepted = listener.accept();
        let _ = hold_rx.recv();
        drop(accepted);
    });
    let mut config = WanConfig::new(upstream);
    config.max_queue_bytes = 64 * 1024;
    let (wan, events) = start(config);
    let mut client = connect(&wan);
    wait_for(&events, "upstream", |e| {
        matches!(e, WanEvent::UpstreamConnected { .. })
    });
    // Write until nothing moves for a whole interval: the kernel buffers, the
    // emulator's queue and the upstream's receive buffer are then all full.
    client
        .set_write_timeout(Some(Duration::from_millis(300)))
        .expect("write timeout");
    let block = vec![7u8; 64 * 1024];
    let mut written = 0usize;
    while written < 256 << 20 {
        match client.write(&block) {
            Ok(n) => written += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(written < 256 << 20, "the emulator swallowed everything");
    let queued = wan.stats().queued_up;
    assert!(queued >= 32 * 1024, "queue did not fill: {queued}");
    assert!(queued <= 64 * 1024, "queue grew to {queued}");
    let _ = hold_tx.send(());
}

#[test]
fn stop_ends_the_thread_and_resets_connections() {
    let (upstream, _) = echo_upstream();
    let (mut wan, _events) = start(WanConfig::new(upstream));
    let addr = wan.local_addr();
    let mut client = connect(&wan);
    ping(&mut client, b"x");
    assert!(wan.is_running());
    let t = Instant::now();
    wan.stop();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(!wan.is_running());
    let mut b = [0u8; 1];
    assert!(is_reset_or_eof(client.read(&mut b)));
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
    wan.stop(); // idempotent
}

#[test]
fn drop_stops_the_emulator() {
    let (upstream, _) = echo_upstream();
    let wan = Wan::start(WanConfig::new(upstream)).expect("start");
    let addr = wan.local_addr();
    drop(wan);
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
}

#[test]
fn failed_upstream_resets_the_client() {
    // A port with nothing behind it.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = dead.local_addr().expect("addr");
    drop(dead);
    let (wan, events) = start(WanConfig::new(upstream));
    let mut client = connect(&wan);
    wait_for(&events, "closed", |e| matches!(e, WanEvent::Closed { .. }));
    let mut b = [0u8; 1];
    assert!(is_reset_or_eof(client.read(&mut b)));
    assert_eq!(wan.stats().active, 0);
}

/// Close with RST, as a crashed or aborting peer does.
fn abort(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open and the option value is a live `linger` of that size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

#[test]
fn a_reset_arrives_after_the_data_sent_before_it() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let (read_tx, read_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(b"bye").expect("write");
        // Reset only once the emulator has read the bytes: a reset that reaches the
        // kernel first makes it discard them before anyone can read them.
        let _ = read_rx.recv_timeout(Duration::from_secs(10));
        abort(s);
    });
    let (wan, events) = start(WanConfig::new(upstream).with_delay(Duration::from_millis(100)));
    let mut client = connect(&wan);
    let deadline = Instant::now() + Duration::from_secs(10);
    while wan.stats().bytes_down < 3 {
        assert!(Instant::now() < deadline, "emulator never read the data");
        thread::yield_now();
    }
    read_tx.send(()).expect("signal");
    let mut b = [0u8; 3];
    client.read_exact(&mut b).expect("data before the reset");
    assert_eq!(&b, b"bye");
    let r = client.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "client saw {r:?}"
    );
    wait_for(&events, "closed", |e| matches!(e, WanEvent::Closed { .. }));
    assert_eq!(wan.stats().cuts, 0);
}

#[test]
fn scheduled_stalls_come_and_go_without_losing_data() {
    let (upstream, _) = echo_upstream();
    let mut config = WanConfig::new(upstream);
    config.stall_every = Some((Duration::from_millis(30), Duration::from_millis(60)));
    config.stall_for = (Duration::from_millis(30), Duration::from_millis(60));
    let (wan, events) = start(config);
    let mut client = connect(&wan);
    for i in 0..20u8 {
        ping(&mut client, &[i; 100]);
    }
    wait_for(&events, "stall", |e| *e == WanEvent::Stall(true));
    wait_for(&events, "resume", |e| *e == WanEvent::Stall(false));
    ping(&mut client, b"still here");
    assert_eq!(wan.stats().cuts, 0);
}
