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

/// im-endpoint's stdout, one JSON value per line, as they come.
fn json_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).expect("every stdout line is JSON");
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}

/// A buffer-server node (no SMSC) dialling the im-endpoint at `addr`.
fn buffer_server(addr: std::net::SocketAddr) -> Node {
    let mut c = LinkConfig::new("bs", b"pipe key, 16 bytes+");
    c.expected_peer = Some("im".into());
    Node::start(NodeConfig::new(vec![LinkSpec::new(
        c,
        Transport::Dial(addr),
    )
    .insecure_plaintext()]))
    .unwrap()
}

/// The first `n` MT the buffer server receives, acknowledged: (seq, text).
fn receive_mt(bs: &Node, n: usize) -> Vec<(u64, String)> {
    let mut texts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while texts.len() < n {
        assert!(Instant::now() < deadline, "MT arrived: {texts:?}");
        if let Some(NodeEvent::Received { link, seq, message }) =
            bs.wait_event(Some(Duration::from_millis(100)))
        {
            texts.push((seq, message.text_str().unwrap().to_owned()));
            bs.ack(link, seq, Outcome::Accepted).unwrap();
        }
    }
    texts
}

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
    let rx = json_lines(child.stdout.take().unwrap());
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

    let bs = buffer_server(addr);
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

/// Bad input lines (invalid UTF-8, missing fields, too long, unsendable) each get an
/// `error` naming the line and the input goes on; good lines get `accepted` with the
/// seq they became, and their outcome names the line again. Line numbers start at
/// --first-line; the log quotes only a prefix of a bad line.
#[test]
fn bad_lines_get_an_error_naming_the_line_and_the_input_goes_on() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args([
            "im-endpoint",
            "--listen",
            "127.0.0.1:0",
            "--psk",
            "pipe key, 16 bytes+",
            "--insecure-plaintext",
        ])
        .args(["--peer", "bs", "--log-level", "warn", "--first-line", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = json_lines(child.stdout.take().unwrap());
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text).unwrap();
        text
    });
    let next = || -> serde_json::Value {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a stdout line")
    };
    let started = next();
    assert_eq!(started["event"], "started");
    let addr = started["listen"].as_str().unwrap().parse().unwrap();

    let mut stdin = child.stdin.take().unwrap();
    let long = format!("12345 +61400000001 {}\n", "x".repeat(200_000));
    let input: Vec<&[u8]> = vec![
        b"12345 +61400000001 first\n",              // 10
        b"12345 +61400000001 caf\xe9\n",            // 11: not UTF-8
        b"12345 +61400000001\n",                    // 12: no text
        long.as_bytes(),                            // 13: too long
        b"\n",                                      // 14: blank, skipped
        b"123456789012345678901234567890 +614 x\n", // 15: address too long
        b"12345 +61400000001 second\r\n",           // 16
    ];
    for part in input {
        stdin.write_all(part).unwrap();
    }
    stdin.flush().unwrap();
    let expected = [
        (10, "accepted"),
        (11, "error"),
        (12, "error"),
        (13, "error"),
        (15, "error"),
        (16, "accepted"),
    ];
    let mut seqs = Vec::new();
    for (line, event) in expected {
        let v = next();
        assert_eq!(v["event"], event, "{v}");
        assert_eq!(v["line"], line, "{v}");
        if event == "accepted" {
            assert_eq!(v["link"], "im");
            seqs.push(v["seq"].as_u64().unwrap());
        } else {
            assert!(!v["reason"].as_str().unwrap().is_empty(), "{v}");
        }
    }
    assert_eq!(seqs, [1, 2]);

    // The good lines reach the buffer server and their outcomes name their lines.
    let bs = buffer_server(addr);
    let texts: Vec<String> = receive_mt(&bs, 2).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["first", "second"]);
    let mut outcomes = Vec::new();
    while outcomes.len() < 2 {
        let v = next();
        if v["event"] == "mt_status" {
            outcomes.push((v["line"].as_u64().unwrap(), v["seq"].as_u64().unwrap()));
        }
    }
    assert_eq!(outcomes, [(10, 1), (16, 2)]);

    drop(stdin);
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let log = log.join().unwrap();
    assert!(log.contains("event=bad_input line=11"), "{log}");
    assert!(log.contains("event=bad_input line=13"), "{log}");
    assert!(
        log.len() < 4096,
        "the log quotes whole lines: {} bytes",
        log.len()
    );
    drop(bs);
}

/// With a journal, each accepted line is reported durable (after `accepted`, before its
/// outcome), and after a SIGKILL a restart on the same journal continues the sequence
/// numbers: a feeder resuming after the last `durable` line loses and repeats nothing.
#[test]
fn with_a_journal_lines_become_durable_and_survive_a_kill() {
    let dir = smslink_tools::scenario::TempDir::new("smslink-im-journal").unwrap();
    let start = |first_line: u64| {
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
            .args(["--first-line", &first_line.to_string()])
            .arg("--journal-dir")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = json_lines(child.stdout.take().unwrap());
        (child, rx)
    };
    let next = |rx: &mpsc::Receiver<serde_json::Value>| -> serde_json::Value {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a stdout line")
    };

    let (mut child, rx) = start(1);
    assert_eq!(next(&rx)["event"], "started");
    let mut stdin = child.stdin.take().unwrap();
    for n in 1..=3 {
        writeln!(stdin, "12345 +61400000001 mt {n}").unwrap();
    }
    stdin.flush().unwrap();
    let mut durable = Vec::new();
    let mut accepted = Vec::new();
    while durable.len() < 3 {
        let v = next(&rx);
        let line = v["line"].as_u64();
        match v["event"].as_str() {
            Some("accepted") => accepted.push((line.unwrap(), v["seq"].as_u64().unwrap())),
            Some("durable") => {
                let entry = (line.unwrap(), v["seq"].as_u64().unwrap());
                assert!(accepted.contains(&entry), "durable before accepted: {v}");
                durable.push(entry);
            }
            _ => {}
        }
    }
    assert_eq!(durable, [(1, 1), (2, 2), (3, 3)]);
    drop(stdin);
    child.kill().unwrap();
    child.wait().unwrap();

    // A feeder that missed the `durable` of line 3 resumes from line 3.
    let (mut child, rx) = start(3);
    let started = next(&rx);
    assert_eq!(started["event"], "started");
    let addr: std::net::SocketAddr = started["listen"].as_str().unwrap().parse().unwrap();
    let again: Vec<(u64, u64)> = (0..3)
        .map(|_| {
            let v = next(&rx);
            assert_eq!(v["event"], "durable", "{v}");
            (v["line"].as_u64().unwrap(), v["seq"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        again,
        [(1, 1), (2, 2), (3, 3)],
        "the journal's messages, again"
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "12345 +61400000001 mt 3").unwrap();
    writeln!(stdin, "12345 +61400000001 mt 4").unwrap();
    stdin.flush().unwrap();
    let answers: Vec<(String, u64, u64)> = std::iter::from_fn(|| Some(next(&rx)))
        .filter(|v| v["event"] == "accepted" || v["event"] == "restored")
        .take(2)
        .map(|v| {
            let event = v["event"].as_str().unwrap().to_owned();
            (
                event,
                v["line"].as_u64().unwrap(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [("restored".to_owned(), 3, 3), ("accepted".to_owned(), 4, 4)]
    );

    // A buffer server then gets all four, once each, in order.
    let bs = buffer_server(addr);
    let texts = receive_mt(&bs, 4);
    let expected: Vec<(u64, String)> = (1..=4).map(|n| (n, format!("mt {n}"))).collect();
    assert_eq!(texts, expected);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(bs);
}
