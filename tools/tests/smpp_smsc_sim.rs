//! The SMSC simulator in SMPP mode over real loopback TCP, driven by a small
//! blocking ESME built on the `smslink::smpp` codec.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use smslink::message::Message;
use smslink::smpp::{
    encode, message_from_sm, registered_delivery, submit_sm, Bind, Body, CommandId, CommandStatus,
    Decoder, Password, Pdu, SubmitSm, SystemId, TextConfig, INTERFACE_VERSION_34,
};
use smslink_tools::child::{sim_listening_addr, KillOnDrop};
use smslink_tools::smsc_sim::{AnswerOrder, Protocol, SimConfig, SmscSim};

const WAIT: Duration = Duration::from_secs(10);

fn sim_config() -> SimConfig {
    SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        user: "alice".into(),
        password: "pw".into(),
        log: false,
        ..SimConfig::for_protocol(Protocol::Smpp)
    }
}

/// A blocking ESME: writes PDUs, reads them back with a deadline.
struct Esme {
    stream: TcpStream,
    decoder: Decoder,
    seq: u32,
    buf: Vec<u8>,
}

impl Esme {
    fn connect(addr: SocketAddr) -> Esme {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Esme {
            stream,
            decoder: Decoder::default(),
            seq: 0,
            buf: vec![0; 64 * 1024],
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn send(&mut self, body: Body) -> u32 {
        let seq = self.next_seq();
        self.send_pdu(&Pdu::new(seq, body));
        seq
    }

    fn send_pdu(&mut self, pdu: &Pdu) {
        let mut bytes = Vec::new();
        encode(pdu, &mut bytes).expect("encode");
        self.stream.write_all(&bytes).expect("write");
    }

    /// The next PDU, or None when the connection closes or `timeout` passes.
    fn recv(&mut self, timeout: Duration) -> Option<Pdu> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pdu) = self.decoder.poll() {
                return Some(pdu.expect("the simulator sends well-formed PDUs"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut self.buf) {
                Ok(0) => return None,
                Ok(n) => self.decoder.push(&self.buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn expect(&mut self) -> Pdu {
        self.recv(WAIT).expect("a PDU from the simulator")
    }

    /// True once the simulator has closed the connection (within `WAIT`).
    fn closed(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.recv(deadline - Instant::now()).is_none() {
                return true;
            }
        }
        false
    }

    fn bind(&mut self, make: fn(Bind) -> Body, user: &str, password: &str) -> Pdu {
        self.send(make(Bind {
            system_id: SystemId::new(user).expect("system_id"),
            password: Password::new(password).expect("password"),
            interface_version: INTERFACE_VERSION_34,
            ..Bind::default()
        }));
        self.expect()
    }

    fn bound(addr: SocketAddr, make: fn(Bind) -> Body) -> Esme {
        let mut e = Esme::connect(addr);
        let resp = e.bind(make, "alice", "pw");
        assert_eq!(resp.command_status, CommandStatus::ESME_ROK, "{resp:?}");
        e
    }

    /// Acknowledge a deliver_sm.
    fn ack(&mut self, pdu: &Pdu) {
        self.send_pdu(&Pdu::new(
            pdu.sequence_number,
            Body::DeliverSmResp(Default::default()),
        ));
    }
}

fn submit(to: &str, text: &str) -> SubmitSm {
    let m = Message::text("4670000001", to, text).expect("msg");
    submit_sm(&m, &TextConfig::default()).expect("submit_sm")
}

fn message_id(pdu: &Pdu) -> String {
    match &pdu.body {
        Body::SubmitSmResp(r) => r.message_id.to_string(),
        other => panic!("not a submit_sm_resp: {other:?}"),
    }
}

fn deliver_text(pdu: &Pdu) -> String {
    let Body::DeliverSm(sm) = &pdu.body else {
        panic!("not a deliver_sm: {pdu:?}");
    };
    let m = message_from_sm(sm, &TextConfig::default()).expect("message");
    m.text_str().expect("text").to_owned()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smslink-smpp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn read_record(path: &std::path::Path) -> Vec<serde_json::Value> {
    BufReader::new(std::fs::File::open(path).expect("record"))
        .lines()
        .map(|l| serde_json::from_str(&l.expect("line")).expect("json"))
        .collect()
}

#[test]
fn a_window_answered_out_of_order_is_recorded_under_its_message_ids() {
    let dir = temp_dir("window");
    let record = dir.join("record.jsonl");
    let _ = std::fs::remove_file(&record);
    let sim = SmscSim::start(SimConfig {
        answer_order: AnswerOrder::Shuffled,
        processing_delay: Duration::from_millis(30),
        record: Some(record.clone()),
        ..sim_config()
    })
    .expect("sim");
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    const N: usize = 20;
    // The whole window in one write.
    let mut bytes = Vec::new();
    let mut texts = HashMap::new();
    for n in 0..N {
        let seq = e.next_seq();
        let text = format!("window #{n} \"q\" @£");
        encode(
            &Pdu::new(seq, Body::SubmitSm(submit("4670000009", &text))),
            &mut bytes,
        )
        .expect("encode");
        texts.insert(seq, text);
    }
    e.stream.write_all(&bytes).expect("write");
    let resps: Vec<Pdu> = (0..N).map(|_| e.expect()).collect();
    let order: Vec<u32> = resps.iter().map(|p| p.sequence_number).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1 + 1..=N as u32 + 1).collect::<Vec<_>>(),
        "each answered once"
    );
    assert_ne!(order, sorted, "answered out of order");
    let mut ids = HashSet::new();
    for r in &resps {
        assert_eq!(r.command_status, CommandStatus::ESME_ROK);
        assert!(ids.insert(message_id(r)), "message ids are unique");
    }
    let counters = sim.stop().expect("stop");
    assert_eq!(counters.submits_accepted, N as u64);
    assert_eq!(counters.violations, 0);
    // The record's seq is the message_id: each line is the text of the submit whose
    // answer carried that id.
    let lines = read_record(&record);
    assert_eq!(lines.len(), N);
    let by_id: HashMap<String, &serde_json::Value> =
        lines.iter().map(|l| (l["seq"].to_string(), l)).collect();
    for r in &resps {
        let line = by_id[&message_id(r)];
        assert_eq!(line["text"], texts[&r.sequence_number].as_str());
        assert_eq!(line["to"], "4670000009");
        assert_eq!(line["from"], "4670000001");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn in_order_answers_follow_the_arrival_order() {
    let sim = SmscSim::start(SimConfig {
        processing_delay: Duration::from_millis(5),
        ..sim_config()
    })
    .expect("sim");
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransmitter);
    let seqs: Vec<u32> = (0..10)
        .map(|n| e.send(Body::SubmitSm(submit("123", &format!("m{n}")))))
        .collect();
    let answered: Vec<u32> = (0..10).map(|_| e.expect().sequence_number).collect();
    assert_eq!(answered, seqs);
}

#[test]
fn binds_are_checked() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    let mut e = Esme::connect(sim.local_addr());
    let resp = e.bind(Body::BindTransceiver, "alice", "wrong");
    assert_eq!(
        (resp.command_id(), resp.command_status),
        (
            CommandId::BindTransceiverResp,
            CommandStatus::ESME_RINVPASWD
        )
    );
    let resp = e.bind(Body::BindTransmitter, "alice", "pw");
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let Body::BindTransmitterResp(r) = &resp.body else {
        panic!("{resp:?}");
    };
    assert_eq!(r.system_id.as_str(), Some("smslink-sim"));
    let resp = e.bind(Body::BindReceiver, "alice", "pw");
    assert_eq!(resp.command_status, CommandStatus::ESME_RALYBND);
    let (c, ok) = sim.wait_for(WAIT, |c| c.violations == 1);
    assert!(ok, "{c:?}");
    assert_eq!((c.logins, c.login_failures), (1, 1));
}

#[test]
fn throttling_nacks_and_rejects_are_injected() {
    let sim = SmscSim::start(SimConfig {
        throttle_fraction: 0.3,
        nack_fraction: 0.2,
        reject_fraction: 0.2,
        seed: 11,
        ..sim_config()
    })
    .expect("sim");
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    const N: usize = 60;
    for n in 0..N {
        e.send(Body::SubmitSm(submit("123", &format!("m{n}"))));
    }
    let mut seen: HashMap<(CommandId, CommandStatus), u64> = HashMap::new();
    for _ in 0..N {
        let p = e.expect();
        *seen.entry((p.command_id(), p.command_status)).or_default() += 1;
    }
    let count = |id, status| seen.get(&(id, status)).copied().unwrap_or(0);
    let throttled = count(CommandId::SubmitSmResp, CommandStatus::ESME_RTHROTTLED);
    let nacked = count(CommandId::GenericNack, CommandStatus::ESME_RSYSERR);
    let rejected = count(CommandId::SubmitSmResp, CommandStatus::ESME_RSUBMITFAIL);
    let accepted = count(CommandId::SubmitSmResp, CommandStatus::ESME_ROK);
    assert!(
        throttled > 0 && nacked > 0 && rejected > 0 && accepted > 0,
        "{seen:?}"
    );
    assert_eq!(
        throttled + nacked + rejected + accepted,
        N as u64,
        "{seen:?}"
    );
    let (c, ok) = sim.wait_for(WAIT, |c| c.submits_received == N as u64);
    assert!(ok, "{c:?}");
    assert_eq!(
        (
            c.submits_throttled,
            c.submits_nacked,
            c.submits_rejected,
            c.submits_accepted
        ),
        (throttled, nacked, rejected, accepted)
    );
    // Rules by recipient take the status given.
    sim.reject_recipients("999", CommandStatus::ESME_RINVDSTADR.0);
    e.send(Body::SubmitSm(submit("9991", "ruled")));
    assert_eq!(e.expect().command_status, CommandStatus::ESME_RINVDSTADR);
}

#[test]
fn mo_and_receipts_go_to_the_receiver_of_a_transmitter_receiver_pair() {
    let sim = SmscSim::start(SimConfig {
        mo_rate: 200.0,
        mo_count: 3,
        mo_text: "ping {n}".into(),
        report_delay: Duration::from_millis(100),
        ..sim_config()
    })
    .expect("sim");
    let mut tx = Esme::bound(sim.local_addr(), Body::BindTransmitter);
    let mut rx = Esme::bound(sim.local_addr(), Body::BindReceiver);
    let mut sm = submit("+4670000009", "receipt please, it is a long text");
    sm.registered_delivery = registered_delivery::RECEIPT_ALWAYS;
    let sent_at = Instant::now();
    tx.send(Body::SubmitSm(sm));
    let resp = tx.expect();
    assert_eq!(resp.command_status, CommandStatus::ESME_ROK);
    let id = message_id(&resp);
    let mut mo = Vec::new();
    let mut receipt = None;
    while mo.len() < 3 || receipt.is_none() {
        let p = rx.expect();
        let Body::DeliverSm(d) = &p.body else {
            panic!("{p:?}");
        };
        if d.is_delivery_receipt() {
            assert!(
                sent_at.elapsed() >= Duration::from_millis(100),
                "the receipt waits for report_delay"
            );
            receipt = Some(d.clone());
        } else {
            mo.push(deliver_text(&p));
        }
        rx.ack(&p);
    }
    assert_eq!(mo, ["ping 1", "ping 2", "ping 3"]);
    let r = receipt.expect("receipt");
    assert_eq!(r.tlvs.receipted_message_id(), Some(id.as_bytes()));
    assert_eq!(r.tlvs.message_state(), Some(2), "DELIVERED");
    assert_eq!(r.source.addr.as_str(), Some("4670000009"));
    assert_eq!(r.destination.addr.as_str(), Some("4670000001"));
    let text = String::from_utf8(r.short_message.clone()).expect("ASCII");
    assert!(
        text.starts_with(&format!("id:{id} sub:001 dlvrd:001 submit date:"))
            && text.contains(" stat:DELIVRD err:000 text:receipt please, it i"),
        "{text}"
    );
    let (c, ok) = sim.wait_for(WAIT, |c| c.mo_acked == 3 && c.reports_acked == 1);
    assert!(ok, "{c:?}");
    assert_eq!(c.logins, 2);
    // The transmitter got nothing but its answer.
    assert_eq!(tx.recv(Duration::from_millis(100)), None);
}

#[test]
fn delivers_keep_to_the_window_and_an_unanswered_one_is_requeued() {
    let sim = SmscSim::start(SimConfig {
        window: 3,
        response_timeout: Duration::from_secs(1),
        ..sim_config()
    })
    .expect("sim");
    for n in 1..=5 {
        sim.inject_mo(&Message::text("+61400000001", "12345", &format!("inj {n}")).expect("msg"))
            .expect("inject");
    }
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    let first: Vec<Pdu> = (0..3).map(|_| e.expect()).collect();
    let texts: Vec<String> = first.iter().map(deliver_text).collect();
    assert_eq!(texts, ["inj 1", "inj 2", "inj 3"]);
    // The window is full: nothing more until an answer.
    assert_eq!(e.recv(Duration::from_millis(100)), None);
    e.ack(&first[1]);
    assert_eq!(deliver_text(&e.expect()), "inj 4");
    e.ack(&first[0]);
    assert_eq!(deliver_text(&e.expect()), "inj 5");
    // "inj 3", "inj 4" and "inj 5" are never answered: the client is cut and they
    // go to the next one, in order.
    assert!(e.closed());
    let (c, ok) = sim.wait_for(WAIT, |c| c.disconnections == 1);
    assert!(ok, "{c:?}");
    assert_eq!(sim.injected_pending(), 3);
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    let mut again = Vec::new();
    for _ in 0..3 {
        let p = e.expect();
        again.push(deliver_text(&p));
        e.ack(&p);
    }
    assert_eq!(again, ["inj 3", "inj 4", "inj 5"]);
    let (c, ok) = sim.wait_for(WAIT, |c| c.mo_acked == 5);
    assert!(ok, "{c:?}");
    assert_eq!(c.mo_failed, 1, "the client was cut once");
}

#[test]
fn an_mo_refused_for_now_is_delivered_again_before_newer_ones() {
    let sim = SmscSim::start(SimConfig {
        window: 1,
        mo_retry_after: Duration::from_millis(200),
        ..sim_config()
    })
    .expect("sim");
    for n in 1..=2 {
        sim.inject_mo(&Message::text("+61400000001", "12345", &format!("inj {n}")).expect("msg"))
            .expect("inject");
    }
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    let first = e.expect();
    assert_eq!(deliver_text(&first), "inj 1");
    // ESME_RX_T_APPN: the buffer server's ring is full, try again later.
    let refused = std::time::Instant::now();
    e.send_pdu(&Pdu::response(
        first.sequence_number,
        CommandStatus::ESME_RX_T_APPN,
        Body::DeliverSmResp(Default::default()),
    ));
    let again = e.expect();
    assert!(
        refused.elapsed() >= Duration::from_millis(200),
        "not before the delay"
    );
    assert_eq!(deliver_text(&again), "inj 1", "the refused one first");
    e.ack(&again);
    let next = e.expect();
    assert_eq!(deliver_text(&next), "inj 2");
    e.ack(&next);
    let (c, ok) = sim.wait_for(WAIT, |c| c.mo_acked == 2);
    assert!(ok, "{c:?}");
    assert_eq!((c.mo_retried, c.mo_rejected), (1, 0));
}

#[test]
fn drop_after_cuts_the_connection_at_the_nth_pdu() {
    let sim = SmscSim::start(SimConfig {
        drop_after: Some(4),
        ..sim_config()
    })
    .expect("sim");
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    // The bind is PDU 1; submits 2 and 3 are answered; PDU 4 is lost with the link
    // (and so would be anything that came with it).
    for n in 0..2 {
        e.send(Body::SubmitSm(submit("123", &format!("m{n}"))));
        assert_eq!(e.expect().command_status, CommandStatus::ESME_ROK);
    }
    e.send(Body::SubmitSm(submit("123", "lost")));
    assert!(e.closed());
    let (c, ok) = sim.wait_for(WAIT, |c| c.drops == 1 && c.disconnections == 1);
    assert!(ok, "{c:?}");
    assert_eq!(c.submits_accepted, 2);
    // A new connection works again.
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    e.send(Body::SubmitSm(submit("123", "again")));
    assert_eq!(e.expect().command_status, CommandStatus::ESME_ROK);
}

#[test]
fn enquire_link_both_ways_and_unbind() {
    let sim = SmscSim::start(SimConfig {
        enquire_link_interval: Duration::from_millis(100),
        ..sim_config()
    })
    .expect("sim");
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    let seq = e.send(Body::EnquireLink);
    assert_eq!(e.expect(), Pdu::new(seq, Body::EnquireLinkResp));
    // Silence: the simulator asks.
    let ask = e.expect();
    assert_eq!(ask.body, Body::EnquireLink);
    e.send_pdu(&Pdu::new(ask.sequence_number, Body::EnquireLinkResp));
    let seq = e.send(Body::Unbind);
    // An enquire_link may cross the unbind on the wire.
    let resp = loop {
        let p = e.expect();
        if p.body != Body::EnquireLink {
            break p;
        }
    };
    assert_eq!(resp, Pdu::new(seq, Body::UnbindResp));
    assert!(e.closed());
    let (c, ok) = sim.wait_for(WAIT, |c| c.disconnections == 1);
    assert!(ok, "{c:?}");
    assert_eq!(c.violations, 0);
}

#[test]
fn malformed_pdus_get_generic_nack_and_a_bad_length_closes() {
    let sim = SmscSim::start(sim_config()).expect("sim");
    let mut e = Esme::bound(sim.local_addr(), Body::BindTransceiver);
    // Unknown command id 0x99, sequence 7.
    e.stream
        .write_all(&[0, 0, 0, 16, 0, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 7])
        .expect("write");
    assert_eq!(
        e.expect(),
        Pdu::response(7, CommandStatus::ESME_RINVCMDID, Body::GenericNack)
    );
    // command_length 8: the stream cannot be cut any more.
    e.stream
        .write_all(&[0, 0, 0, 8, 1, 2, 3, 4])
        .expect("write");
    assert_eq!(
        e.expect(),
        Pdu::response(0, CommandStatus::ESME_RINVCMDLEN, Body::GenericNack)
    );
    assert!(e.closed());
    let (c, ok) = sim.wait_for(WAIT, |c| c.violations == 2 && c.disconnections == 1);
    assert!(ok, "{c:?}");
}

#[test]
fn throttling_is_refused_for_cimd2() {
    let err = SmscSim::start(SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        throttle_fraction: 0.1,
        log: false,
        ..SimConfig::default()
    })
    .err()
    .expect("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = SmscSim::start(SimConfig {
        user: "a-system-id-too-long".into(),
        ..sim_config()
    })
    .err()
    .expect("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[test]
fn cli_runs_the_smpp_simulator() {
    use std::process::{Command, Stdio};
    let dir = temp_dir("cli");
    let record = dir.join("record.jsonl");
    let _ = std::fs::remove_file(&record);
    let mut child = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args(["smsc-sim", "--protocol", "smpp", "--listen", "127.0.0.1:0"])
        .args(["--user", "alice", "--password", "pw"])
        .args(["--answer-order", "shuffled", "--processing-delay-ms", "5"])
        .args(["--reject-code", "ESME_RINVDSTADR", "--record"])
        .arg(&record)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let child = KillOnDrop(child);
    // The first line names the bound address.
    let mut stderr = BufReader::new(stderr);
    let addr = sim_listening_addr(&mut stderr).expect("start line");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let mut e = Esme::bound(addr, Body::BindTransceiver);
    for n in 0..3 {
        e.send(Body::SubmitSm(submit("123", &format!("cli {n}"))));
    }
    for _ in 0..3 {
        assert_eq!(e.expect().command_status, CommandStatus::ESME_ROK);
    }
    drop(child);
    let lines = read_record(&record);
    let mut texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    texts.sort_unstable();
    assert_eq!(texts, ["cli 0", "cli 1", "cli 2"]);
    let _ = std::fs::remove_dir_all(&dir);
}
