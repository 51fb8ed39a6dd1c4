//! `smslink im-endpoint` as a pipe-driven process: MO from a buffer-server node come out
//! on stdout in order, MT lines on stdin reach the buffer server, outcomes come back,
//! and SIGTERM stops it drained.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};

#[test]
fn carries_mo_out_and_mt_in_through_pipes() {
    const N: usize = 50;
    let mut child = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args([
            "im-endpoint",
            "--listen",
            "127.0.0.1:0",
            "--psk",
            "pipe key, 16 bytes+",
            "--insecure-plaintext",
        ])
        .args(["--peer", "bs", "--log-level", "warn"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).expect("every stdout line is JSON");
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) if v["event"] == what => return v,
                Ok(_) => {}
                Err(_) => panic!("no {what:?} line"),
            }
        }
    };
    let started = next("started");
    let addr = started["listen"].as_str().unwrap().parse().unwrap();
    let metrics: std::net::SocketAddr = started["metrics"].as_str().unwrap().parse().unwrap();

    let mut c = LinkConfig::new("bs", b"pipe key, 16 bytes+");
    c.expected_peer = Some("im".into());
    let bs = Node::start(NodeConfig::new(vec![LinkSpec::new(
        c,
        Transport::Dial(addr),
    )
    .insecure_plaintext()]))
    .unwrap();
    for i in 0..N {
        bs.send(&Message::text("+61400000001", "12345", &format!("mo {i}")).unwrap())
            .unwrap();
    }
    for i in 0..N {
        let mo = next("mo");
        assert_eq!(mo["text"], format!("mo {i}"));
        assert_eq!(mo["from"], "+61400000001");
    }

    let mut stdin = child.stdin.take().unwrap();
    for i in 0..N {
        writeln!(stdin, "12345 +61400000001 mt {i}").unwrap();
    }
    stdin.flush().unwrap();
    let mut mt = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mt.len() < N {
        assert!(Instant::now() < deadline, "{} of {N} MT arrived", mt.len());
        if let Some(NodeEvent::Received { link, seq, message }) =
            bs.wait_event(Some(Duration::from_millis(100)))
        {
            mt.push(message.text_str().unwrap().to_owned());
            bs.ack(link, seq, Outcome::Accepted).unwrap();
        }
    }
    let expected: Vec<String> = (0..N).map(|i| format!("mt {i}")).collect();
    assert_eq!(mt, expected);
    for _ in 0..N {
        assert_eq!(next("mt_status")["outcome"], "accepted");
    }
    // The metrics listener counts the same traffic (the snapshot follows the
    // loop's turns: look until it has caught up).
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = [
        format!("smslink_link_messages_total{{link=\"im\",direction=\"in\"}} {N}\n"),
        format!("smslink_link_messages_total{{link=\"im\",direction=\"out\"}} {N}\n"),
        format!("smslink_link_tx_cursor{{link=\"im\",cursor=\"processed\"}} {N}\n"),
    ];
    loop {
        let text = http_get(metrics, "/metrics");
        if wanted.iter().all(|w| text.contains(w.as_str())) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never caught up:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let stopped = next("stopped");
    assert_eq!(stopped["drained"], true);
    assert!(child.wait().unwrap().success());
    drop(bs);
}

/// The whole response to `GET path` (the server closes after answering).
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    out
}
