//! The node's monitoring listener over real loopback sockets: `/metrics`,
//! `/status` and `/healthz` of a buffer server (with the SMSC simulator) and an IM
//! node while traffic flows, and the listener's limits (head size, connection
//! count, deadline).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use smslink::cimd2::session::ClientConfig;
use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeError, NodeEvent, SmscSpec, Transport};
use smslink_tools::smsc_sim::{SimConfig, SmscSim};

const PSK: &[u8] = b"runtime test key, 16+";
const ANY_PORT: &str = "127.0.0.1:0";

fn link_config(name: &str, peer: &str) -> LinkConfig {
    let mut c = LinkConfig::new(name, PSK);
    c.expected_peer = Some(peer.to_owned());
    c.heartbeat_interval = Duration::from_millis(200);
    c.dead_after = Duration::from_secs(2);
    c
}

fn im_node() -> Node {
    let spec = LinkSpec::new(
        link_config("im", "bs"),
        Transport::Listen(ANY_PORT.parse().unwrap()),
    )
    .insecure_plaintext();
    let mut config = NodeConfig::new(vec![spec]);
    config.metrics_listen = Some(ANY_PORT.parse().unwrap());
    Node::start(config).unwrap()
}

/// One request on a fresh connection; the status code and the body (code 0: the
/// connection was closed without an answer).
fn request(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    if s.write_all(raw).is_err() || s.read_to_end(&mut out).is_err() || out.is_empty() {
        return (0, String::new());
    }
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(head.contains("Connection: close"), "{head}");
    (code, body.to_owned())
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// The value of the sample `series` (name with its labels, as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Scrape `path` until `ok` holds for the response or the deadline passes.
fn scrape_until(addr: SocketAddr, path: &str, ok: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = get(addr, path);
        if ok(code, &body) {
            return (code, body);
        }
        assert!(
            Instant::now() < end,
            "{path} never as expected: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind(ANY_PORT).unwrap().local_addr().unwrap()
}

#[test]
fn metrics_and_status_follow_traffic_through_a_buffer_server() {
    const N: u64 = 300;
    let im = im_node();
    // The SMSC is not there yet: the buffer server is not healthy.
    let smsc_addr = free_addr();
    let spec = LinkSpec::buffer_server(
        link_config("bs", "im"),
        Transport::Dial(im.local_addr(0).unwrap()),
        SmscSpec::cimd2(
            smsc_addr,
            ClientConfig {
                user: "smslink".into(),
                password: "secret".into(),
                ..ClientConfig::default()
            },
        ),
    )
    .insecure_plaintext();
    let mut config = NodeConfig::new(vec![spec]);
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(100);
    config.metrics_listen = Some(ANY_PORT.parse().unwrap());
    let bs = Node::start(config).unwrap();
    let bs_metrics = bs.metrics_addr().unwrap();
    let im_metrics = im.metrics_addr().unwrap();
    assert_eq!(get(bs_metrics, "/healthz").0, 503);
    // An IM node has no SMSC: healthy while its loop runs.
    assert_eq!(get(im_metrics, "/healthz"), (200, "ok\n".into()));

    let sim = SmscSim::start(SimConfig {
        listen: smsc_addr,
        mo_rate: 2000.0,
        mo_count: N,
        log: false,
        ..SimConfig::default()
    })
    .unwrap();
    scrape_until(bs_metrics, "/healthz", |code, _| code == 200);

    // Send N MT and take N MO on the IM node while another thread scrapes both
    // nodes: every scrape parses, and no counter goes backwards.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let scraper = s.spawn(|| {
            let mut last = (0.0, 0.0);
            let mut scrapes = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let (code, text) = get(im_metrics, "/metrics");
                assert_eq!(code, 200);
                let out = sample(
                    &text,
                    "smslink_link_messages_total{link=\"im\",direction=\"out\"}",
                )
                .unwrap();
                let (code, text) = get(bs_metrics, "/metrics");
                assert_eq!(code, 200);
                let accepted =
                    sample(&text, "smslink_smsc_mt_accepted_total{link=\"bs\"}").unwrap();
                assert!(out >= last.0 && accepted >= last.1);
                last = (out, accepted);
                scrapes += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            scrapes
        });
        let mut next = 0;
        let (mut received, mut processed) = (0, 0);
        let end = Instant::now() + Duration::from_secs(60);
        while received < N || processed < N {
            assert!(Instant::now() < end, "traffic did not complete");
            while next < N {
                let m = Message::text("100", "200", &format!("mt {next}")).unwrap();
                match im.send(&m) {
                    Ok(_) => next += 1,
                    Err(NodeError::Full { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            match im.wait_event(Some(Duration::from_millis(20))) {
                Some(NodeEvent::Received { link, seq, .. }) => {
                    received += 1;
                    im.ack(link, seq, Outcome::Accepted).unwrap();
                }
                Some(NodeEvent::Status {
                    state: smslink::ring::SlotState::Processed,
                    ..
                }) => processed += 1,
                _ => {}
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        assert!(scraper.join().unwrap() > 0);
    });

    // The snapshot is published at the end of the loop's turn: wait for the last one.
    let n = N as f64;
    let (_, text) = scrape_until(im_metrics, "/metrics", |_, t| {
        sample(
            t,
            "smslink_link_tx_cursor{link=\"im\",cursor=\"processed\"}",
        ) == Some(n)
            && sample(
                t,
                "smslink_link_rx_cursor{link=\"im\",cursor=\"processed\"}",
            ) == Some(n)
    });
    assert_eq!(sample(&text, "smslink_link_up{link=\"im\"}"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "smslink_link_messages_total{link=\"im\",direction=\"out\"}"
        ),
        Some(n)
    );
    assert_eq!(
        sample(
            &text,
            "smslink_link_messages_total{link=\"im\",direction=\"in\"}"
        ),
        Some(n)
    );
    assert_eq!(
        sample(
            &text,
            "smslink_link_ring_in_use{link=\"im\",direction=\"tx\"}"
        ),
        Some(0.0)
    );
    // Every message sent once and confirmed once: one latency observation each.
    assert_eq!(
        sample(&text, "smslink_link_ack_latency_seconds_count{link=\"im\"}"),
        Some(n)
    );
    assert_eq!(
        sample(
            &text,
            "smslink_link_ack_latency_seconds_bucket{link=\"im\",le=\"+Inf\"}"
        ),
        Some(n)
    );
    assert!(text.contains("# TYPE smslink_link_ack_latency_seconds histogram\n"));

    let (_, text) = scrape_until(bs_metrics, "/metrics", |_, t| {
        sample(t, "smslink_smsc_mt_accepted_total{link=\"bs\"}") == Some(n)
            && sample(
                t,
                "smslink_link_tx_cursor{link=\"bs\",cursor=\"processed\"}",
            ) == Some(n)
    });
    assert_eq!(sample(&text, "smslink_smsc_up{link=\"bs\"}"), Some(1.0));
    assert_eq!(
        sample(&text, "smslink_smsc_mo_received_total{link=\"bs\"}"),
        Some(n)
    );
    assert_eq!(
        sample(&text, "smslink_smsc_mt_submitted_total{link=\"bs\"}"),
        Some(n)
    );
    assert_eq!(
        sample(&text, "smslink_smsc_mt_rejected_total{link=\"bs\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "smslink_link_messages_total{link=\"bs\",direction=\"in\"}"
        ),
        Some(n)
    );
    assert_eq!(sim.counters().submits_accepted, N);
    // The handle serves the same text.
    assert!(bs
        .metrics_text()
        .contains("smslink_smsc_mt_accepted_total{link=\"bs\"} 300\n"));

    let (code, body) = get(bs_metrics, "/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let from_handle: serde_json::Value = serde_json::from_str(&bs.status_json()).unwrap();
    assert_eq!(from_handle["links"][0]["tx"], status["links"][0]["tx"]);
    assert_eq!(status["healthy"], true);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let link = &status["links"][0];
    assert_eq!(link["name"], "bs");
    assert_eq!(link["up"], true);
    assert_eq!(link["peer"], "im");
    assert_eq!(link["tx"]["processed"], N);
    assert_eq!(link["tx"]["confirmed"], N);
    assert_eq!(link["rx"]["processed"], N);
    assert_eq!(link["counters"]["messages_in"], N);
    assert_eq!(link["smsc"]["protocol"], "cimd2");
    assert_eq!(link["smsc"]["logged_in"], true);
    assert_eq!(link["smsc"]["mt_accepted"], N);
    // No reports asked for here, so none awaited: the counters are there, and zero.
    for counter in [
        "mo_unattributable",
        "reports_forwarded",
        "reports_unknown",
        "reports_awaited",
        "resubmitted_after_restart",
    ] {
        assert_eq!(link["smsc"][counter], 0, "{counter}");
    }
    let _ = sim.stop();
    // The SMSC is gone: the buffer server is no longer healthy.
    scrape_until(bs_metrics, "/healthz", |code, _| code == 503);
}

#[test]
fn bad_requests_are_answered_and_the_node_keeps_serving() {
    let node = im_node();
    let addr = node.metrics_addr().unwrap();
    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(request(addr, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(request(addr, b"nonsense\r\n\r\n").0, 400);
    let mut oversize = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    oversize.resize(8 * 1024, b'a');
    oversize.extend_from_slice(b"\r\n\r\n");
    assert_eq!(request(addr, &oversize).0, 431);
    let (code, text) = get(addr, "/metrics?x=1");
    assert_eq!(code, 200);
    assert_eq!(sample(&text, "smslink_link_up{link=\"im\"}"), Some(0.0));
}

#[test]
fn slow_and_surplus_clients_do_not_block_scrapes() {
    let node = im_node();
    let addr = node.metrics_addr().unwrap();
    // Half a request, then silence.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let slow_since = Instant::now();
    assert_eq!(get(addr, "/metrics").0, 200);

    // The slow one and 15 idle ones fill the connection slots; the next is
    // accepted and closed at once.
    let idle: Vec<TcpStream> = (0..15).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut surplus = TcpStream::connect(addr).unwrap();
    surplus
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 16];
    let closed_at_once = matches!(surplus.read(&mut buf), Ok(0) | Err(_))
        && slow_since.elapsed() < Duration::from_secs(4);
    assert!(closed_at_once, "a 17th connection was kept");
    // One slot freed: scrapes get through again.
    drop(idle);
    scrape_until(addr, "/healthz", |code, _| code == 200);

    // The slow client is cut at the deadline, not before.
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the slow client got an answer");
    let waited = slow_since.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(9),
        "slow client closed after {waited:?}"
    );
    assert_eq!(get(addr, "/metrics").0, 200);
}
