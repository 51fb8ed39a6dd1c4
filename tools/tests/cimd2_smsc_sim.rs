//! The SMSC simulator over real loopback TCP: our ClientSession (blocking test
//! driver) and raw sockets against `SmscSim`.

mod cimd2_driver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cimd2_driver::Driver;
use smslink::cimd2::session::{ClientConfig, ClientEvent, CloseReason};
use smslink::cimd2::{encode, param, Decoded, Decoder, Operation, Packet};
use smslink::message::Message;
use smslink_tools::child::{sim_listening_addr, KillOnDrop};
use smslink_tools::smsc_sim::{Counters, SimConfig, SmscSim};

const WAIT: Duration = Duration::from_secs(10);

fn sim_config() -> SimConfig {
    SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        user: "alice".into(),
        password: "pw".into(),
        log: false,
        ..SimConfig::default()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        user: "alice".into(),
        password: "pw".into(),
        keepalive: Duration::ZERO,
        response_timeout: Duration::from_secs(2),
        max_retries: 2,
        ..ClientConfig::default()
    }
}

fn msg(n: u64) -> Message {
    let mut m =
        Message::text("4670000001", "12345", &format!("hello #{n} {{\"q\"}}")).expect("msg");
    m.client_ref = n;
    m
}

fn login(sim: &SmscSim, config: ClientConfig) -> Driver {
    let mut d = Driver::connect(sim.local_addr(), config).expect("connect");
    let e = d.wait_for_login(WAIT).expect("io");
    assert_eq!(e, Some(ClientEvent::LoggedIn), "{:?}", d.events);
    d
}

/// Submit `count` messages one after another; returns the final event of each.
fn submit_all(d: &mut Driver, first: u64, count: u64) -> Vec<ClientEvent> {
    let mut results = Vec::new();
    for n in first..first + count {
        let e = d
            .submit_and_wait(&msg(n), WAIT)
            .expect("io")
            .unwrap_or_else(|| panic!("no answer to submit {n}: {:?}", d.events));
        results.push(e);
    }
    results
}

fn accepted_refs(results: &[ClientEvent]) -> Vec<u64> {
    results
        .iter()
        .filter_map(|e| match e {
            ClientEvent::SubmitAccepted { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn submits_are_accepted_and_recorded() {
    let dir = std::env::temp_dir().join(format!("smslink-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let record = dir.join("record.jsonl");
    let _ = std::fs::remove_file(&record);
    let sim = SmscSim::start(SimConfig {
        record: Some(record.clone()),
        ..sim_config()
    })
    .expect("sim");
    let mut d = login(&sim, client_config());
    let results = submit_all(&mut d, 1, 20);
    assert_eq!(accepted_refs(&results), (1..=20).collect::<Vec<_>>());
    assert!(matches!(
        &results[0],
        ClientEvent::SubmitAccepted { timestamp: Some(t), destination: Some(to), .. }
            if t.len() == 12 && to == "12345"
    ));
    assert_eq!(
        d.logout_and_wait(WAIT).expect("io"),
        Some(CloseReason::LoggedOut)
    );
    let counters = sim.stop().expect("stop");
    assert_eq!(counters.logins, 1);
    assert_eq!(counters.submits_accepted, 20);
    assert_eq!(counters.violations, 0);
    let lines: Vec<serde_json::Value> =
        BufReader::new(std::fs::File::open(&record).expect("record"))
            .lines()
            .map(|l| serde_json::from_str(&l.expect("line")).expect("json"))
            .collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["from"], "4670000001");
    assert_eq!(lines[0]["to"], "12345");
    assert_eq!(lines[19]["text"], "hello #20 {\"q\"}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wrong_password_is_refused() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    let mut cfg = client_config();
    cfg.password = "nope".into();
    let mut d = Driver::connect(sim.local_addr(), cfg).expect("connect");
    let e = d.wait_for_login(WAIT).expect("io");
    assert!(
        matches!(e, Some(ClientEvent::LoginFailed { code: 100, .. })),
        "{e:?}"
    );
    let (c, ok) = sim.wait_for(WAIT, |c| c.login_failures == 1);
    assert!(ok, "{c:?}");
    assert_eq!(c.logins, 0);
}

#[test]
fn mobile_originated_messages_arrive_in_order() {
    let sim = SmscSim::start(SimConfig {
        mo_rate: 1000.0,
        mo_count: 5,
        mo_text: "mo #{n}".into(),
        ..sim_config()
    })
    .expect("sim");
    let mut d = login(&sim, client_config());
    let mut texts = Vec::new();
    while texts.len() < 5 {
        let e = d
            .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
            .expect("io");
        let Some(ClientEvent::Deliver(m)) = e else {
            panic!("no deliver after {texts:?}: {:?}", d.events);
        };
        texts.push(m.text_str().unwrap_or_default().to_owned());
        d.session.ack_deliver(Instant::now()).expect("ack");
        d.flush().expect("flush");
    }
    assert_eq!(texts, ["mo #1", "mo #2", "mo #3", "mo #4", "mo #5"]);
    let (c, ok) = sim.wait_for(WAIT, |c| c.mo_acked == 5);
    assert!(ok, "{c:?}");
    assert_eq!(c.mo_sent, 5);
}

#[test]
fn withheld_deliver_answer_holds_back_the_next_mo() {
    let sim = SmscSim::start(SimConfig {
        mo_rate: 1000.0,
        mo_count: 3,
        ..sim_config()
    })
    .expect("sim");
    let mut d = login(&sim, client_config());
    let first = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
        .expect("io");
    assert!(first.is_some());
    // Not answered: the SMSC may not send another (stop-and-wait).
    let second = d
        .wait_for(Duration::from_millis(300), |e| {
            matches!(e, ClientEvent::Deliver(_))
        })
        .expect("io");
    assert_eq!(second, None);
    assert_eq!(sim.counters().mo_sent, 1);
    d.session.ack_deliver(Instant::now()).expect("ack");
    let second = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
        .expect("io");
    assert!(matches!(second, Some(ClientEvent::Deliver(m)) if m.text_str() == Some("mo #2")));
}

#[test]
fn queued_mo_go_out_back_to_back_once_the_client_answers() {
    let sim = SmscSim::start(SimConfig {
        mo_rate: 50.0,
        mo_count: 10,
        mo_queue: true,
        ..sim_config()
    })
    .expect("sim");
    let mut d = login(&sim, client_config());
    let first = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
        .expect("io");
    assert!(first.is_some());
    // Unanswered for 200 ms: the other 9 fall due at 50/s and queue.
    let _ = d
        .wait_for(Duration::from_millis(200), |e| {
            matches!(e, ClientEvent::Deliver(_))
        })
        .expect("io");
    let held_for = Instant::now();
    d.session.ack_deliver(Instant::now()).expect("ack");
    let mut texts = Vec::new();
    while texts.len() < 9 {
        match d
            .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
            .expect("io")
        {
            Some(ClientEvent::Deliver(m)) => {
                texts.push(m.text_str().unwrap_or_default().to_owned());
                d.session.ack_deliver(Instant::now()).expect("ack");
            }
            other => panic!("{other:?} after {texts:?}"),
        }
    }
    let expected: Vec<String> = (2..=10).map(|n| format!("mo #{n}")).collect();
    assert_eq!(texts, expected);
    // They were due already: sent as fast as answered, not 20 ms apart again
    // (paced, the 9 would take 180 ms at least).
    assert!(
        held_for.elapsed() < Duration::from_millis(180),
        "{:?}",
        held_for.elapsed()
    );
    // The last answer is still in the client's output; nine are in.
    let (c, ok) = sim.wait_for(WAIT, |c| c.mo_sent == 10 && c.mo_acked >= 9);
    assert!(ok, "{c:?}");
    assert!(c.mo_queue_peak >= 8, "{c:?}");
}

#[test]
fn injected_mo_arrives_in_order_and_survives_a_lost_connection() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    for n in 1..=3 {
        sim.inject_mo(&Message::text("+61400000001", "12345", &format!("inj {n}")).expect("msg"))
            .expect("inject");
    }
    // The first client takes "inj 1" and vanishes without answering.
    let mut d = login(&sim, client_config());
    let e = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
        .expect("io");
    assert!(matches!(e, Some(ClientEvent::Deliver(m)) if m.text_str() == Some("inj 1")));
    drop(d);
    let (c, ok) = sim.wait_for(WAIT, |c| c.disconnections == 1);
    assert!(ok, "{c:?}");
    assert_eq!(
        sim.injected_pending(),
        3,
        "the unanswered MO is queued again"
    );
    // The next client gets all three, in order, each once.
    let mut d = login(&sim, client_config());
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let e = d
            .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
            .expect("io");
        let Some(ClientEvent::Deliver(m)) = e else {
            panic!("no deliver after {texts:?}: {:?}", d.events);
        };
        assert_eq!(m.from.as_str(), "+61400000001");
        texts.push(m.text_str().unwrap_or_default().to_owned());
        d.session.ack_deliver(Instant::now()).expect("ack");
        d.flush().expect("flush");
    }
    assert_eq!(texts, ["inj 1", "inj 2", "inj 3"]);
    let (c, ok) = sim.wait_for(WAIT, |c| c.mo_acked == 3);
    assert!(ok, "{c:?}");
    assert_eq!(sim.injected_pending(), 0);
}

#[test]
fn accepted_submits_are_kept_and_reject_rules_pick_by_recipient() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    sim.reject_recipients("+6149", 34);
    sim.reject_recipients("+61499", 11);
    let mut d = login(&sim, client_config());
    let mut results = Vec::new();
    for (n, to) in [
        (1, "+61400000001"),
        (2, "+61490000000"),
        (3, "+61499000000"),
    ] {
        let mut m = Message::text("12345", to, &format!("mt {n}")).expect("msg");
        m.client_ref = n;
        d.session
            .submit(m.client_ref, &m, Instant::now())
            .expect("submit");
        let e = d
            .wait_for(WAIT, |e| {
                matches!(
                    e,
                    ClientEvent::SubmitAccepted { .. } | ClientEvent::SubmitRejected { .. }
                )
            })
            .expect("io");
        results.push(e);
    }
    assert!(matches!(
        results[0],
        Some(ClientEvent::SubmitAccepted { id: 1, .. })
    ));
    assert!(matches!(
        results[1],
        Some(ClientEvent::SubmitRejected { code: 34, .. })
    ));
    assert!(
        matches!(
            results[2],
            Some(ClientEvent::SubmitRejected { code: 11, .. })
        ),
        "the longest prefix decides"
    );
    let kept = sim.accepted();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].to.as_str(), "+61400000001");
    assert_eq!(kept[0].text_str(), Some("mt 1"));
    sim.clear_reject_rules();
    let mut m = Message::text("12345", "+61490000000", "again").expect("msg");
    m.client_ref = 4;
    d.session
        .submit(m.client_ref, &m, Instant::now())
        .expect("submit");
    let e = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::SubmitAccepted { .. }))
        .expect("io");
    assert!(e.is_some(), "{:?}", d.events);
    assert_eq!(sim.accepted().len(), 2);
}

#[test]
fn nacked_submits_are_retried_until_accepted() {
    let sim = SmscSim::start(SimConfig {
        nack_fraction: 0.3,
        seed: 7,
        ..sim_config()
    })
    .expect("sim");
    let mut cfg = client_config();
    cfg.max_retries = 20;
    let mut d = login(&sim, cfg);
    let results = submit_all(&mut d, 1, 30);
    assert_eq!(accepted_refs(&results).len(), 30);
    let c = sim.counters();
    assert!(c.submits_nacked > 0, "{c:?}");
    assert_eq!(c.submits_accepted, 30);
    assert_eq!(c.submits_received, 30 + c.submits_nacked);
}

#[test]
fn rejected_submits_carry_the_error_code() {
    let sim = SmscSim::start(SimConfig {
        reject_fraction: 1.0,
        reject_code: 309,
        ..sim_config()
    })
    .expect("sim");
    let mut d = login(&sim, client_config());
    let results = submit_all(&mut d, 1, 3);
    for r in &results {
        assert!(
            matches!(r, ClientEvent::SubmitRejected { code: 309, .. }),
            "{r:?}"
        );
    }
    assert_eq!(sim.counters().submits_rejected, 3);
}

#[test]
fn late_answer_is_waited_for_and_counted_once() {
    let sim = SmscSim::start(SimConfig {
        late: Duration::from_millis(700),
        late_fraction: 1.0,
        ..sim_config()
    })
    .expect("sim");
    let mut cfg = client_config();
    cfg.response_timeout = Duration::from_millis(300);
    cfg.max_retries = 5;
    let mut d = login(&sim, cfg);
    let results = submit_all(&mut d, 1, 2);
    assert_eq!(accepted_refs(&results), vec![1, 2]);
    let c = sim.counters();
    assert_eq!(c.submits_received, 2, "retransmissions are not new submits");
    assert_eq!(c.submits_accepted, 2);
}

#[test]
fn drop_after_cuts_the_connection() {
    let sim = SmscSim::start(SimConfig {
        drop_after: Some(4),
        ..sim_config()
    })
    .expect("sim");
    let mut d = login(&sim, client_config());
    // login is packet 1; submits 2 and 3 are answered; packet 4 is cut.
    let results = submit_all(&mut d, 1, 3);
    assert_eq!(accepted_refs(&results), vec![1, 2]);
    assert!(
        matches!(results[2], ClientEvent::SubmitFailed { id: 3, .. }),
        "{:?}",
        results[2]
    );
    let (c, ok) = sim.wait_for(WAIT, |c| c.drops == 1 && c.disconnections == 1);
    assert!(ok, "{c:?}");
    // A new connection works again.
    let mut d = login(&sim, client_config());
    assert_eq!(accepted_refs(&submit_all(&mut d, 10, 2)), vec![10, 11]);
}

fn raw_packets(stream: &mut TcpStream, want: usize) -> Vec<Packet> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + WAIT;
    let mut dec = Decoder::new(4096);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => dec.push(&buf[..n]),
            Err(_) => continue,
        }
        while let Some(d) = dec.poll() {
            if let Decoded::Packet(p) = d {
                out.push(p);
            }
        }
    }
    out
}

fn send(stream: &mut TcpStream, p: &Packet) {
    let mut b = Vec::new();
    encode(p, true, &mut b);
    stream.write_all(&b).expect("write");
}

fn raw_login(sim: &SmscSim) -> TcpStream {
    let mut s = TcpStream::connect(sim.local_addr()).expect("connect");
    send(
        &mut s,
        &Packet::new(Operation::Login, 1)
            .with(param::USER_IDENTITY, "alice")
            .with(param::PASSWORD, "pw"),
    );
    let p = raw_packets(&mut s, 1);
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].op, p[0].error_code()),
        (Operation::LoginResponse, None)
    );
    s
}

#[test]
fn status_report_follows_when_requested() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    let mut s = raw_login(&sim);
    send(
        &mut s,
        &Packet::new(Operation::Submit, 3)
            .with(param::DESTINATION_ADDRESS, "4670000001")
            .with(param::ORIGINATING_ADDRESS, "12345")
            .with(param::STATUS_REPORT_REQUEST, "14")
            .with(param::USER_DATA, "dlr please"),
    );
    let p = raw_packets(&mut s, 2);
    assert_eq!(p.len(), 2, "53 then 23");
    assert_eq!((p[0].op, p[0].number), (Operation::SubmitResponse, 3));
    assert_eq!((p[1].op, p[1].number), (Operation::DeliverStatusReport, 0));
    assert_eq!(p[1].get_str(param::DESTINATION_ADDRESS), Some("4670000001"));
    assert_eq!(p[1].get_u32(param::STATUS_CODE), Some(4));
    assert_eq!(
        p[1].get(param::SERVICE_CENTRE_TIMESTAMP),
        p[0].get(param::SERVICE_CENTRE_TIMESTAMP)
    );
    send(
        &mut s,
        &Packet::new(Operation::DeliverStatusReportResponse, 0),
    );
    let (c, ok) = sim.wait_for(WAIT, |c| c.reports_acked == 1);
    assert!(ok, "{c:?}");
}

#[test]
fn stop_and_wait_violation_and_garbage_are_reported_and_harm_no_one_else() {
    let sim = SmscSim::start(SimConfig {
        processing_delay: Duration::from_millis(200),
        ..sim_config()
    })
    .expect("sim");
    let mut good = login(&sim, client_config());
    let mut s = raw_login(&sim);
    let submit = |n| {
        Packet::new(Operation::Submit, n)
            .with(param::DESTINATION_ADDRESS, "4670000001")
            .with(param::USER_DATA, "x")
    };
    send(&mut s, &submit(3));
    send(&mut s, &submit(5));
    s.write_all(b"\x00\x01garbage\xff").expect("write");
    send(&mut s, &Packet::new(Operation::Alive, 7));
    let p = raw_packets(&mut s, 3);
    let got: Vec<_> = p.iter().map(|p| (p.op, p.number)).collect();
    assert_eq!(
        got,
        vec![
            (Operation::Nack, 5),
            (Operation::AliveResponse, 7),
            (Operation::SubmitResponse, 3)
        ]
    );
    let (c, ok) = sim.wait_for(WAIT, |c: &Counters| c.violations >= 2);
    assert!(ok, "{c:?}");
    assert_eq!(accepted_refs(&submit_all(&mut good, 1, 3)), vec![1, 2, 3]);
}

#[test]
fn many_clients_at_once() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    let addr = sim.local_addr();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut d = Driver::connect(addr, client_config()).expect("connect");
                let e = d.wait_for_login(WAIT).expect("io");
                assert_eq!(e, Some(ClientEvent::LoggedIn));
                accepted_refs(&submit_all(&mut d, t * 1000, 50)).len()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(total, 400);
    let (c, ok) = sim.wait_for(WAIT, |c| c.submits_accepted == 400);
    assert!(ok, "{c:?}");
    assert_eq!(c.connections, 8);
}

#[test]
fn cli_runs_the_simulator() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("smslink-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let record = dir.join("record.jsonl");
    let _ = std::fs::remove_file(&record);
    let mut child = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args(["smsc-sim", "--listen", "127.0.0.1:0", "--user", "alice"])
        .args(["--password", "pw", "--processing-delay-ms", "5", "--record"])
        .arg(&record)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let child = KillOnDrop(child);
    // The first line names the bound address: no guessing, no waiting.
    let mut stderr = BufReader::new(stderr);
    let addr = sim_listening_addr(&mut stderr).expect("start line");
    // Keep reading the log so the simulator never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let mut d = Driver::connect(addr, client_config()).expect("connect");
    assert_eq!(
        d.wait_for_login(WAIT).expect("io"),
        Some(ClientEvent::LoggedIn)
    );
    assert_eq!(accepted_refs(&submit_all(&mut d, 1, 3)), vec![1, 2, 3]);
    drop(child);
    let text = std::fs::read_to_string(&record).expect("record");
    assert_eq!(text.lines().count(), 3, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_sends_mo_read_from_stdin() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args(["smsc-sim", "--listen", "127.0.0.1:0", "--user", "alice"])
        .args(["--password", "pw", "--mo-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let stderr = child.stderr.take().expect("stderr");
    let _child = KillOnDrop(child);
    let mut stderr = BufReader::new(stderr);
    let addr = sim_listening_addr(&mut stderr).expect("start line");
    let mut d = Driver::connect(addr, client_config()).expect("connect");
    assert_eq!(
        d.wait_for_login(WAIT).expect("io"),
        Some(ClientEvent::LoggedIn)
    );
    stdin
        .write_all(b"46700;00001 12345 bad sender\n+4670000002 12345 hello there\n")
        .expect("write");
    stdin.flush().expect("flush");
    // The log says which line was refused (after the connection's own lines).
    let complaint = (&mut stderr)
        .lines()
        .map(|l| l.expect("read"))
        .take(10)
        .find(|l| l.starts_with("smsc-sim: stdin line"));
    assert!(
        complaint
            .as_deref()
            .is_some_and(|l| l.starts_with("smsc-sim: stdin line 1:")),
        "{complaint:?}"
    );
    let e = d
        .wait_for(WAIT, |e| matches!(e, ClientEvent::Deliver(_)))
        .expect("io");
    let Some(ClientEvent::Deliver(m)) = e else {
        panic!("no MO: {e:?}");
    };
    assert_eq!(m.from.as_str(), "+4670000002");
    assert_eq!(m.text_str(), Some("hello there"));
}
