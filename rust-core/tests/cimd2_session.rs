//! ClientSession against ServerSession in virtual time: a pair harness in the manner
//! of quinn-proto's tests/util.rs (latency, byte splitting, loss by cutting chunks),
//! plus raw-packet tests of the behaviours a well-behaved peer never triggers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use smslink::cimd2::session::{
    ClientConfig, ClientEvent, ClientSession, CloseReason, FailReason, ServerConfig, ServerEvent,
    ServerSession, SessionError, StatusReport, Violation,
};
use smslink::cimd2::{encode, param, Decoded, Decoder, Operation, Packet};
use smslink::message::Message;

const TIMEOUT: Duration = Duration::from_secs(2);

fn client_config() -> ClientConfig {
    ClientConfig {
        user: "alice".into(),
        password: "pw".into(),
        keepalive: Duration::ZERO,
        response_timeout: TIMEOUT,
        max_retries: 2,
        checksum: true,
        max_packet: 4096,
        ..ClientConfig::default()
    }
}

fn server_config() -> ServerConfig {
    ServerConfig {
        user: "alice".into(),
        password: "pw".into(),
        response_timeout: TIMEOUT,
        max_retries: 2,
        checksum: true,
        max_packet: 4096,
    }
}

/// One direction of the virtual wire.
#[derive(Default)]
struct Pipe {
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    /// Drop this many of the next chunks written into the pipe.
    cut_next: usize,
    /// Drop everything (a dead peer).
    black_hole: bool,
    /// Per chunk, in order: drop it when true (random loss for property tests).
    loss: VecDeque<bool>,
    /// Every packet that entered the pipe (dropped or not): (op, number).
    log: Vec<(u8, u8)>,
    tap: Option<Decoder>,
}

impl Pipe {
    fn send(&mut self, bytes: Vec<u8>, arrive: Instant) {
        let tap = self.tap.get_or_insert_with(|| Decoder::new(4096));
        tap.push(&bytes);
        while let Some(d) = tap.poll() {
            if let Decoded::Packet(p) = d {
                self.log.push((p.op.code(), p.number));
            }
        }
        if self.black_hole {
            return;
        }
        if self.cut_next > 0 {
            self.cut_next -= 1;
            return;
        }
        if self.loss.pop_front() == Some(true) {
            return;
        }
        self.in_flight.push_back((arrive, bytes));
    }

    fn sent(&self, op: Operation) -> Vec<u8> {
        self.log
            .iter()
            .filter(|(o, _)| *o == op.code())
            .map(|(_, n)| *n)
            .collect()
    }
}

struct Pair {
    now: Instant,
    latency: Duration,
    /// Deliver each chunk in pieces of this many bytes (0 = whole).
    split: usize,
    client: ClientSession,
    server: ServerSession,
    to_server: Pipe,
    to_client: Pipe,
    client_events: Vec<ClientEvent>,
    server_events: Vec<ServerEvent>,
}

impl Pair {
    fn new(client: ClientConfig, server: ServerConfig) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            latency: Duration::from_millis(10),
            split: 0,
            client: ClientSession::new(client, now),
            server: ServerSession::new(server, now),
            to_server: Pipe::default(),
            to_client: Pipe::default(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn default_pair() -> Pair {
        Pair::new(client_config(), server_config())
    }

    /// A pair whose client is logged in, with the login events cleared.
    fn logged_in() -> Pair {
        let mut p = Pair::default_pair();
        p.run(Duration::from_millis(100));
        assert_eq!(p.client_events, vec![ClientEvent::LoggedIn]);
        assert!(p.client.can_submit());
        p.client_events.clear();
        p.server_events.clear();
        p
    }

    fn collect(&mut self) {
        let mut buf = Vec::new();
        if self.client.poll_transmit(&mut buf) > 0 {
            self.to_server.send(buf, self.now + self.latency);
        }
        let mut buf = Vec::new();
        if self.server.poll_transmit(&mut buf) > 0 {
            self.to_client.send(buf, self.now + self.latency);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// Run both sessions in virtual time up to `now + d`.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.collect();
            let next = [
                self.to_server.in_flight.front().map(|c| c.0),
                self.to_client.in_flight.front().map(|c| c.0),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|t| *t <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            while self.to_server.in_flight.front().is_some_and(|c| c.0 <= now) {
                if let Some((_, bytes)) = self.to_server.in_flight.pop_front() {
                    for piece in pieces(&bytes, self.split) {
                        self.server.handle_input(piece, now);
                    }
                }
            }
            while self.to_client.in_flight.front().is_some_and(|c| c.0 <= now) {
                if let Some((_, bytes)) = self.to_client.in_flight.pop_front() {
                    for piece in pieces(&bytes, self.split) {
                        self.client.handle_input(piece, now);
                    }
                }
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
            }
        }
    }

    fn take_client_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.client_events)
    }

    fn take_server_events(&mut self) -> Vec<ServerEvent> {
        std::mem::take(&mut self.server_events)
    }

    /// Submit `m` and let the server accept it; returns the client's events.
    fn submit_and_accept(&mut self, m: &Message) -> Vec<ClientEvent> {
        self.client
            .submit(m.client_ref, m, self.now)
            .expect("submit");
        self.run(Duration::from_millis(50));
        let submitted = self.take_server_events();
        assert!(
            matches!(submitted.as_slice(), [ServerEvent::Submit { message, .. }]
                if message.to == m.to && message.from == m.from && message.text_str() == m.text_str()),
            "{submitted:?}"
        );
        self.server
            .accept_submit(m.to.as_str(), "261130120000", self.now)
            .expect("accept");
        self.run(Duration::from_millis(50));
        self.take_client_events()
    }
}

fn pieces(bytes: &[u8], split: usize) -> Vec<&[u8]> {
    if split == 0 {
        vec![bytes]
    } else {
        bytes.chunks(split).collect()
    }
}

fn msg(n: u64) -> Message {
    let mut m = Message::text("4670000001", "12345", &format!("hello #{n}")).expect("message");
    m.client_ref = n;
    m
}

fn accepted(id: u64) -> ClientEvent {
    ClientEvent::SubmitAccepted {
        id,
        timestamp: Some("261130120000".into()),
        destination: Some("12345".into()),
    }
}

// ---- pair tests ----

#[test]
fn login_succeeds_with_packet_001() {
    let mut p = Pair::default_pair();
    assert!(!p.client.is_ready());
    assert_eq!(
        p.client.submit(1, &msg(1), p.now),
        Err(SessionError::NotReady)
    );
    p.run(Duration::from_millis(100));
    assert_eq!(p.client_events, vec![ClientEvent::LoggedIn]);
    assert_eq!(
        p.server_events,
        vec![ServerEvent::LoggedIn {
            user: "alice".into()
        }]
    );
    assert_eq!(p.to_server.log, vec![(1, 1)]);
    assert_eq!(p.to_client.log, vec![(51, 1)]);
    assert!(p.client.is_ready() && p.server.is_logged_in());
}

#[test]
fn login_with_wrong_password_fails_and_closes() {
    let mut cfg = client_config();
    cfg.password = "wrong".into();
    let mut p = Pair::new(cfg, server_config());
    p.run(Duration::from_millis(100));
    assert_eq!(
        p.client_events,
        vec![
            ClientEvent::LoginFailed {
                code: 100,
                text: Some("invalid login".into())
            },
            ClientEvent::Closed {
                reason: CloseReason::LoginRejected { code: 100 }
            }
        ]
    );
    assert_eq!(
        p.server_events,
        vec![ServerEvent::LoginRejected {
            user: "alice".into()
        }]
    );
    assert!(p.client.is_closed() && !p.server.is_logged_in());
    assert_eq!(
        p.client.submit(1, &msg(1), p.now),
        Err(SessionError::Closed)
    );
}

#[test]
fn submit_accepted_then_next_number() {
    let mut p = Pair::logged_in();
    assert_eq!(p.submit_and_accept(&msg(7)), vec![accepted(7)]);
    assert_eq!(p.submit_and_accept(&msg(8)), vec![accepted(8)]);
    assert_eq!(p.to_server.sent(Operation::Submit), vec![3, 5]);
    assert_eq!(p.to_client.sent(Operation::SubmitResponse), vec![3, 5]);
}

#[test]
fn one_outstanding_submit_at_a_time() {
    let mut p = Pair::logged_in();
    p.client.submit(1, &msg(1), p.now).expect("first");
    assert!(!p.client.can_submit());
    assert_eq!(p.client.submit(2, &msg(2), p.now), Err(SessionError::Busy));
    // The server takes its time (processing delay): the client just waits.
    p.run(Duration::from_millis(500));
    assert_eq!(p.server.pending_submit(), Some(3));
    assert!(p.take_client_events().is_empty());
    p.server
        .accept_submit("12345", "261130120000", p.now)
        .expect("accept");
    p.run(Duration::from_millis(50));
    assert_eq!(p.take_client_events(), vec![accepted(1)]);
    assert!(p.client.can_submit());
}

#[test]
fn submit_rejected_with_error_code() {
    let mut p = Pair::logged_in();
    p.client.submit(3, &msg(3), p.now).expect("submit");
    p.run(Duration::from_millis(50));
    p.server.reject_submit(300, p.now).expect("reject");
    p.run(Duration::from_millis(50));
    assert_eq!(
        p.take_client_events(),
        vec![ClientEvent::SubmitRejected {
            id: 3,
            code: 300,
            text: None
        }]
    );
    assert!(p.client.can_submit());
}

#[test]
fn lost_response_is_recovered_by_retransmission_without_duplicate() {
    let mut p = Pair::logged_in();
    p.client.submit(1, &msg(1), p.now).expect("submit");
    p.run(Duration::from_millis(50));
    p.to_client.cut_next = 1; // the 53 is lost
    p.server
        .accept_submit("12345", "261130120000", p.now)
        .expect("accept");
    p.run(Duration::from_millis(50));
    assert!(p.take_client_events().is_empty());
    p.run(TIMEOUT + Duration::from_millis(100));
    assert_eq!(p.take_client_events(), vec![accepted(1)]);
    // Same number twice on the wire; the server saw one submit and replayed its answer.
    assert_eq!(p.to_server.sent(Operation::Submit), vec![3, 3]);
    assert_eq!(p.to_client.sent(Operation::SubmitResponse), vec![3, 3]);
    assert_eq!(
        p.take_server_events().len(),
        1,
        "exactly one Submit event at the server"
    );
}

#[test]
fn lost_request_is_retransmitted() {
    let mut p = Pair::logged_in();
    p.to_server.cut_next = 1;
    assert_eq!(p.submit_and_accept_after_retry(), vec![accepted(1)]);
}

impl Pair {
    fn submit_and_accept_after_retry(&mut self) -> Vec<ClientEvent> {
        self.client.submit(1, &msg(1), self.now).expect("submit");
        self.run(TIMEOUT + Duration::from_millis(100));
        assert_eq!(self.server.pending_submit(), Some(3));
        self.server
            .accept_submit("12345", "261130120000", self.now)
            .expect("accept");
        self.run(Duration::from_millis(50));
        self.take_client_events()
    }
}

#[test]
fn unanswered_submit_fails_after_retries_and_closes() {
    let mut p = Pair::logged_in();
    p.to_server.black_hole = true;
    p.client.submit(9, &msg(9), p.now).expect("submit");
    p.run(TIMEOUT * 3 - Duration::from_millis(10));
    assert!(p.take_client_events().is_empty());
    p.run(Duration::from_millis(20));
    assert_eq!(
        p.take_client_events(),
        vec![
            ClientEvent::SubmitFailed {
                id: 9,
                reason: FailReason::ResponseTimeout
            },
            ClientEvent::Closed {
                reason: CloseReason::ResponseTimeout
            }
        ]
    );
    assert_eq!(p.to_server.sent(Operation::Submit), vec![3, 3, 3]);
    assert_eq!(p.client.poll_timeout(), None);
}

#[test]
fn connection_lost_fails_outstanding_submit() {
    let mut p = Pair::logged_in();
    p.client.submit(4, &msg(4), p.now).expect("submit");
    p.client.handle_connection_lost(p.now);
    p.collect();
    assert_eq!(
        p.take_client_events(),
        vec![
            ClientEvent::SubmitFailed {
                id: 4,
                reason: FailReason::ConnectionLost
            },
            ClientEvent::Closed {
                reason: CloseReason::ConnectionLost
            }
        ]
    );
}

#[test]
fn deliver_waits_for_the_application_answer() {
    let mut p = Pair::logged_in();
    let mo = msg(21);
    p.server.deliver(&mo, p.now).expect("deliver");
    assert!(!p.server.can_deliver());
    assert_eq!(p.server.deliver(&mo, p.now), Err(SessionError::Busy));
    p.run(Duration::from_millis(50));
    let events = p.take_client_events();
    assert!(
        matches!(events.as_slice(), [ClientEvent::Deliver(m)] if m.text_str() == Some("hello #21")),
        "{events:?}"
    );
    // Back-pressure: the client's buffer is full, so no 70 yet. The SMSC retransmits
    // (same number) and the client neither answers nor reports it twice.
    p.run(TIMEOUT + Duration::from_millis(100));
    assert!(p.take_client_events().is_empty());
    assert_eq!(p.to_client.sent(Operation::DeliverMessage), vec![0, 0]);
    assert!(p
        .to_server
        .sent(Operation::DeliverMessageResponse)
        .is_empty());
    p.client.ack_deliver(p.now).expect("ack");
    assert_eq!(
        p.client.ack_deliver(p.now),
        Err(SessionError::NothingPending)
    );
    p.run(Duration::from_millis(50));
    assert_eq!(
        p.take_server_events(),
        vec![ServerEvent::DeliverAcked { client_ref: 21 }]
    );
    // Next MO gets the next even number.
    p.server.deliver(&msg(22), p.now).expect("deliver");
    p.run(Duration::from_millis(50));
    p.client.reject_deliver(9, p.now).expect("reject");
    p.run(Duration::from_millis(50));
    assert_eq!(
        p.take_server_events(),
        vec![ServerEvent::DeliverRejected {
            client_ref: 22,
            code: 9,
            text: None
        }]
    );
    assert_eq!(p.to_client.sent(Operation::DeliverMessage), vec![0, 0, 2]);
}

#[test]
fn deliver_unanswered_too_long_fails_at_the_server() {
    let mut p = Pair::logged_in();
    p.server.deliver(&msg(1), p.now).expect("deliver");
    p.run(TIMEOUT * 3 + Duration::from_millis(100));
    assert_eq!(
        p.take_server_events(),
        vec![ServerEvent::DeliverFailed {
            client_ref: 1,
            reason: FailReason::ResponseTimeout
        }]
    );
    assert_eq!(p.take_client_events().len(), 1, "delivered once only");
}

#[test]
fn duplicate_deliver_is_acked_but_not_delivered_twice() {
    let mut p = Pair::logged_in();
    p.server.deliver(&msg(5), p.now).expect("deliver");
    p.run(Duration::from_millis(50));
    assert_eq!(p.take_client_events().len(), 1);
    p.to_server.cut_next = 1; // the 70 is lost
    p.client.ack_deliver(p.now).expect("ack");
    p.run(TIMEOUT + Duration::from_millis(100));
    assert!(p.take_client_events().is_empty(), "no second Deliver");
    assert_eq!(
        p.take_server_events(),
        vec![ServerEvent::DeliverAcked { client_ref: 5 }]
    );
    assert_eq!(
        p.to_server.sent(Operation::DeliverMessageResponse),
        vec![0, 0]
    );
}

#[test]
fn status_report_round_trip() {
    let mut p = Pair::logged_in();
    let report = StatusReport {
        destination: "12345".into(),
        originator: None,
        sc_timestamp: "261130120000".into(),
        status: 4,
        status_error: None,
        discharge_time: Some("261130120001".into()),
    };
    p.server.status_report(&report, p.now).expect("report");
    p.run(Duration::from_millis(50));
    assert_eq!(
        p.take_client_events(),
        vec![ClientEvent::StatusReport(report)]
    );
    assert!(p.client.has_pending_deliver());
    p.client.ack_deliver(p.now).expect("ack");
    p.run(Duration::from_millis(50));
    assert_eq!(p.take_server_events(), vec![ServerEvent::StatusReportAcked]);
    assert_eq!(
        p.to_server.sent(Operation::DeliverStatusReportResponse),
        vec![0]
    );
}

#[test]
fn submits_and_delivers_interleave() {
    let mut p = Pair::logged_in();
    p.client.submit(1, &msg(1), p.now).expect("submit");
    p.server.deliver(&msg(100), p.now).expect("deliver");
    p.run(Duration::from_millis(50));
    p.client.ack_deliver(p.now).expect("ack");
    p.server
        .accept_submit("12345", "261130120000", p.now)
        .expect("accept");
    p.run(Duration::from_millis(50));
    let events = p.take_client_events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], accepted(1));
    assert_eq!(
        p.take_server_events()
            .into_iter()
            .filter(|e| matches!(e, ServerEvent::DeliverAcked { client_ref: 100 }))
            .count(),
        1
    );
}

#[test]
fn keepalive_after_idle_and_dead_smsc_closes() {
    let mut cfg = client_config();
    cfg.keepalive = Duration::from_secs(30);
    let mut p = Pair::new(cfg, server_config());
    p.run(Duration::from_secs(29));
    assert!(p.to_server.sent(Operation::Alive).is_empty());
    p.run(Duration::from_secs(2));
    assert_eq!(p.to_server.sent(Operation::Alive), vec![3]);
    assert_eq!(p.to_client.sent(Operation::AliveResponse), vec![3]);
    assert!(p.client.can_submit());
    assert_eq!(p.take_client_events(), vec![ClientEvent::LoggedIn]);
    p.take_server_events();
    // Traffic postpones keep-alive.
    assert_eq!(p.submit_and_accept(&msg(1)), vec![accepted(1)]);
    p.run(Duration::from_secs(29));
    assert_eq!(p.to_server.sent(Operation::Alive).len(), 1);
    // A dead SMSC: alive goes unanswered, the session closes.
    p.to_server.black_hole = true;
    p.run(Duration::from_secs(1) + TIMEOUT * 3 + Duration::from_millis(10));
    let events = p.take_client_events();
    assert!(
        events.ends_with(&[ClientEvent::Closed {
            reason: CloseReason::ResponseTimeout
        }]),
        "{events:?}"
    );
}

#[test]
fn keepalive_probes_a_line_that_only_delivers_and_a_dead_send_direction_closes() {
    let mut cfg = client_config();
    cfg.keepalive = Duration::from_secs(30);
    let mut p = Pair::new(cfg, server_config());
    p.run(Duration::from_millis(100));
    assert!(p.client.is_ready());
    // Half-open: what the client writes is lost, while the SMSC keeps delivering (and
    // delivering again what it got no answer for). Incoming traffic says nothing
    // about the way out, so it must not postpone the probe.
    p.to_server.black_hole = true;
    let start = p.now;
    while !p.client.is_closed() && p.now < start + Duration::from_secs(120) {
        if p.server.can_deliver() {
            p.server.deliver(&msg(1), p.now).expect("deliver");
        }
        if p.client.has_pending_deliver() {
            p.client.ack_deliver(p.now).expect("ack");
        }
        p.run(Duration::from_millis(500));
    }
    assert!(
        p.to_server.sent(Operation::Alive).len() == 1 + 2,
        "alive and its retries"
    );
    assert!(
        p.now <= start + Duration::from_secs(30) + TIMEOUT * 3 + Duration::from_secs(1),
        "closed after {:?}",
        p.now - start
    );
    assert!(p.take_client_events().ends_with(&[ClientEvent::Closed {
        reason: CloseReason::ResponseTimeout
    }]));
}

#[test]
fn smsc_alive_is_answered_with_90() {
    let mut p = Pair::logged_in();
    let mut buf = Vec::new();
    encode(&Packet::new(Operation::Alive, 8), true, &mut buf);
    p.to_client.send(buf, p.now);
    p.run(Duration::from_millis(50));
    assert_eq!(p.to_server.sent(Operation::AliveResponse), vec![8]);
    assert!(p.take_client_events().is_empty());
}

#[test]
fn nack_makes_the_client_resend_with_the_same_number() {
    let mut p = Pair::logged_in();
    p.client.submit(1, &msg(1), p.now).expect("submit");
    p.run(Duration::from_millis(50));
    p.server.nack_submit(p.now).expect("nack");
    p.run(Duration::from_millis(50));
    assert_eq!(p.to_client.sent(Operation::Nack), vec![3]);
    assert_eq!(p.to_server.sent(Operation::Submit), vec![3, 3]);
    assert_eq!(p.server.pending_submit(), Some(3));
    let events = p.take_server_events();
    assert_eq!(events.len(), 2, "the resend is a new submit: {events:?}");
    p.server
        .accept_submit("12345", "261130120000", p.now)
        .expect("accept");
    p.run(Duration::from_millis(50));
    assert_eq!(p.take_client_events(), vec![accepted(1)]);
}

#[test]
fn general_error_for_a_submit_is_a_refusal_and_frees_the_slot() {
    let mut p = Pair::logged_in();
    p.client.submit(1, &msg(1), p.now).expect("submit");
    p.run(Duration::from_millis(50));
    p.server
        .general_error_submit(9, p.now)
        .expect("general error");
    assert_eq!(
        p.server.general_error_submit(9, p.now),
        Err(SessionError::NothingPending)
    );
    p.run(Duration::from_millis(50));
    assert_eq!(p.to_client.sent(Operation::GeneralError), vec![3]);
    assert_eq!(
        p.take_client_events(),
        vec![ClientEvent::SubmitRejected {
            id: 1,
            code: 9,
            text: None
        }]
    );
    // Both sides carry on with the next submit.
    p.client.submit(2, &msg(2), p.now).expect("next submit");
    p.run(Duration::from_millis(50));
    assert_eq!(p.server.pending_submit(), Some(5));
}

#[test]
fn garbage_between_packets_is_skipped_and_reported() {
    let mut p = Pair::logged_in();
    let mut to_client = b"noise\r\n\x00\xff".to_vec();
    encode(&Packet::new(Operation::Alive, 0), true, &mut to_client);
    let mut to_server = b"more noise".to_vec();
    encode(&Packet::new(Operation::Alive, 201), false, &mut to_server);
    to_server.extend_from_slice(b"trailing");
    p.to_client.send(to_client, p.now);
    p.to_server.send(to_server, p.now);
    p.run(Duration::from_millis(50));
    let events = p.take_client_events();
    assert!(
        matches!(
            events.as_slice(),
            [
                ClientEvent::ProtocolViolation(Violation::Garbage { bytes: 9 }),
                // The server's 90 to the alive we injected in the client's name.
                ClientEvent::ProtocolViolation(Violation::UnexpectedResponse {
                    op: 90,
                    number: 201
                })
            ]
        ),
        "{events:?}"
    );
    let events = p.take_server_events();
    assert!(
        matches!(
            events.as_slice(),
            [
                ServerEvent::ProtocolViolation(Violation::Garbage { bytes: 10 }),
                ..
            ]
        ),
        "{events:?}"
    );
    // The packets after the noise were read and answered.
    assert_eq!(p.to_server.sent(Operation::AliveResponse), vec![0]);
    assert_eq!(p.to_client.sent(Operation::AliveResponse), vec![201]);
    assert_eq!(p.submit_and_accept(&msg(1)), vec![accepted(1)]);
}

#[test]
fn packet_numbers_wrap_past_255() {
    let mut p = Pair::logged_in();
    for n in 0..130 {
        assert_eq!(
            p.submit_and_accept(&msg(n)),
            vec![accepted(n)],
            "submit {n}"
        );
    }
    let numbers = p.to_server.sent(Operation::Submit);
    assert_eq!(&numbers[..3], &[3, 5, 7]);
    assert_eq!(&numbers[125..130], &[253, 255, 1, 3, 5]);
    for n in 0..130u64 {
        p.server.deliver(&msg(1000 + n), p.now).expect("deliver");
        p.run(Duration::from_millis(50));
        p.client.ack_deliver(p.now).expect("ack");
        p.run(Duration::from_millis(50));
    }
    let numbers = p.to_client.sent(Operation::DeliverMessage);
    assert_eq!(&numbers[126..130], &[252, 254, 0, 2]);
    let delivered = p
        .take_client_events()
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::Deliver(_)))
        .count();
    assert_eq!(
        delivered, 130,
        "a wrapped number is not mistaken for a duplicate"
    );
}

#[test]
fn byte_by_byte_and_latency() {
    let mut p = Pair::default_pair();
    p.split = 1;
    p.latency = Duration::from_millis(150);
    let start = p.now;
    p.run(Duration::from_millis(299));
    assert!(p.client_events.is_empty(), "login needs a full round trip");
    p.run(Duration::from_millis(2));
    assert_eq!(p.take_client_events(), vec![ClientEvent::LoggedIn]);
    p.client.submit(1, &msg(1), p.now).expect("submit");
    p.run(Duration::from_millis(150));
    p.server
        .accept_submit("12345", "261130120000", p.now)
        .expect("accept");
    p.run(Duration::from_millis(150));
    assert_eq!(p.take_client_events(), vec![accepted(1)]);
    assert_eq!(p.now - start, Duration::from_millis(601));
}

#[test]
fn logout_closes_both_sides() {
    let mut p = Pair::logged_in();
    p.client.submit(1, &msg(1), p.now).expect("submit");
    // Logout waits for the outstanding submit.
    p.client.logout(p.now).expect("logout");
    assert!(!p.client.can_submit());
    p.run(Duration::from_millis(50));
    p.server
        .accept_submit("12345", "261130120000", p.now)
        .expect("accept");
    p.run(Duration::from_millis(100));
    assert_eq!(
        p.take_client_events(),
        vec![
            accepted(1),
            ClientEvent::Closed {
                reason: CloseReason::LoggedOut
            }
        ]
    );
    assert!(p.server.is_closed());
    assert_eq!(p.to_server.sent(Operation::Logout), vec![5]);
}

// ---- raw-packet tests ----

fn bytes_of(p: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode(p, true, &mut out);
    out
}

fn decode_all(bytes: &[u8]) -> Vec<Packet> {
    let mut d = Decoder::new(4096);
    d.push(bytes);
    let mut out = Vec::new();
    while let Some(x) = d.poll() {
        if let Decoded::Packet(p) = x {
            out.push(p);
        }
    }
    out
}

fn ops(packets: &[Packet]) -> Vec<(u8, u8)> {
    packets.iter().map(|p| (p.op.code(), p.number)).collect()
}

fn server_out(s: &mut ServerSession) -> Vec<Packet> {
    let mut buf = Vec::new();
    s.poll_transmit(&mut buf);
    decode_all(&buf)
}

fn client_out(c: &mut ClientSession) -> Vec<Packet> {
    let mut buf = Vec::new();
    c.poll_transmit(&mut buf);
    decode_all(&buf)
}

fn login(number: u8) -> Packet {
    Packet::new(Operation::Login, number)
        .with(param::USER_IDENTITY, "alice")
        .with(param::PASSWORD, "pw")
}

fn submit(number: u8) -> Packet {
    Packet::new(Operation::Submit, number)
        .with(param::DESTINATION_ADDRESS, "12345")
        .with(param::USER_DATA, "hi")
}

fn logged_in_server(now: Instant) -> ServerSession {
    let mut s = ServerSession::new(server_config(), now);
    s.handle_input(&bytes_of(&login(1)), now);
    assert_eq!(ops(&server_out(&mut s)), vec![(51, 1)]);
    while s.poll_event().is_some() {}
    s
}

#[test]
fn server_refuses_requests_before_login() {
    let now = Instant::now();
    let mut s = ServerSession::new(server_config(), now);
    s.handle_input(&bytes_of(&submit(3)), now);
    let out = server_out(&mut s);
    assert_eq!(ops(&out), vec![(53, 3)]);
    assert_eq!(out[0].error_code(), Some(1));
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::ProtocolViolation(Violation::NotLoggedIn {
            op: 3,
            number: 3
        }))
    ));
    assert_eq!(s.deliver(&msg(1), now), Err(SessionError::NotReady));
}

#[test]
fn server_nacks_a_second_request_while_one_is_pending() {
    let now = Instant::now();
    let mut s = logged_in_server(now);
    s.handle_input(&bytes_of(&submit(3)), now);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::Submit { number: 3, .. })
    ));
    // The same request again: still working on it, no answer, no event.
    s.handle_input(&bytes_of(&submit(3)), now);
    assert!(server_out(&mut s).is_empty());
    assert!(s.poll_event().is_none());
    // A different request before the answer: stop-and-wait broken.
    s.handle_input(&bytes_of(&submit(5)), now);
    assert_eq!(ops(&server_out(&mut s)), vec![(99, 5)]);
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::ProtocolViolation(Violation::SecondRequest {
            op: 3,
            number: 5
        }))
    );
    assert_eq!(s.violations(), 1);
    // The first submit is still answerable.
    s.accept_submit("12345", "261130000000", now)
        .expect("accept");
    let out = server_out(&mut s);
    assert_eq!(ops(&out), vec![(53, 3)]);
    assert_eq!(
        out[0].get_str(param::SERVICE_CENTRE_TIMESTAMP),
        Some("261130000000")
    );
}

#[test]
fn server_answers_malformed_packets_and_goes_on() {
    let now = Instant::now();
    let mut s = logged_in_server(now);
    // A submit with a wrong checksum: NACK, so the client sends it again.
    s.handle_input(b"\x0203:003\t021:12345\t033:hi\t00\x03", now);
    assert_eq!(ops(&server_out(&mut s)), vec![(99, 3)]);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::ProtocolViolation(Violation::Malformed {
            op: Some(3),
            number: Some(3),
            ..
        }))
    ));
    // An unknown operation: general error 98 with 900:1.
    s.handle_input(&bytes_of(&Packet::new(Operation::Other(77), 5)), now);
    let out = server_out(&mut s);
    assert_eq!(ops(&out), vec![(98, 5)]);
    assert_eq!(out[0].error_code(), Some(1));
    // A submit without a destination: 53 with error 300.
    s.handle_input(
        &bytes_of(&Packet::new(Operation::Submit, 7).with(param::USER_DATA, "x")),
        now,
    );
    let out = server_out(&mut s);
    assert_eq!(ops(&out), vec![(53, 7)]);
    assert_eq!(out[0].error_code(), Some(300));
    // And a good submit still works.
    while s.poll_event().is_some() {}
    s.handle_input(&bytes_of(&submit(9)), now);
    assert!(matches!(
        s.poll_event(),
        Some(ServerEvent::Submit { number: 9, .. })
    ));
}

#[test]
fn client_adopts_the_number_of_an_odd_nack() {
    let now = Instant::now();
    let mut c = ClientSession::new(client_config(), now);
    assert_eq!(ops(&client_out(&mut c)), vec![(1, 1)]);
    c.handle_input(&bytes_of(&Packet::new(Operation::LoginResponse, 1)), now);
    c.submit(1, &msg(1), now).expect("submit");
    assert_eq!(ops(&client_out(&mut c)), vec![(3, 3)]);
    c.handle_input(&bytes_of(&Packet::new(Operation::Nack, 9)), now);
    assert_eq!(ops(&client_out(&mut c)), vec![(3, 9)]);
    c.handle_input(&bytes_of(&Packet::new(Operation::SubmitResponse, 9)), now);
    while let Some(e) = c.poll_event() {
        if let ClientEvent::SubmitAccepted { id, .. } = e {
            assert_eq!(id, 1);
        }
    }
    c.submit(2, &msg(2), now).expect("submit");
    assert_eq!(ops(&client_out(&mut c)), vec![(3, 11)]);
}

#[test]
fn client_ignores_a_response_with_another_number() {
    let now = Instant::now();
    let mut c = ClientSession::new(client_config(), now);
    client_out(&mut c);
    c.handle_input(&bytes_of(&Packet::new(Operation::LoginResponse, 1)), now);
    assert_eq!(c.poll_event(), Some(ClientEvent::LoggedIn));
    c.submit(1, &msg(1), now).expect("submit");
    client_out(&mut c);
    c.handle_input(&bytes_of(&Packet::new(Operation::SubmitResponse, 7)), now);
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::ProtocolViolation(
            Violation::UnexpectedResponse { op: 53, number: 7 }
        ))
    );
    assert!(!c.can_submit(), "still waiting for 53:003");
    // Right number, wrong operation: retransmit.
    c.handle_input(&bytes_of(&Packet::new(Operation::LogoutResponse, 3)), now);
    assert_eq!(ops(&client_out(&mut c)), vec![(3, 3)]);
    // General error 98 for our submit: a rejection.
    while c.poll_event().is_some() {}
    c.handle_input(
        &bytes_of(&Packet::new(Operation::GeneralError, 3).with(param::ERROR_CODE, "2")),
        now,
    );
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::SubmitRejected {
            id: 1,
            code: 2,
            text: None
        })
    );
    assert!(c.can_submit());
}

#[test]
fn client_handles_delivers_before_login_and_refuses_a_second_one() {
    // test_cimd2 --activity 3 starts delivering before it answers the login.
    let now = Instant::now();
    let mut c = ClientSession::new(client_config(), now);
    client_out(&mut c);
    let deliver = |n| {
        Packet::new(Operation::DeliverMessage, n)
            .with(param::DESTINATION_ADDRESS, "12345")
            .with(param::ORIGINATING_ADDRESS, "4670000001")
            .with(param::USER_DATA, "hi")
    };
    c.handle_input(&bytes_of(&deliver(0)), now);
    assert!(matches!(c.poll_event(), Some(ClientEvent::Deliver(_))));
    c.handle_input(&bytes_of(&deliver(2)), now);
    assert_eq!(ops(&client_out(&mut c)), vec![(99, 2)]);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::ProtocolViolation(Violation::SecondRequest {
            op: 20,
            number: 2
        }))
    ));
    c.ack_deliver(now).expect("ack");
    assert_eq!(ops(&client_out(&mut c)), vec![(70, 0)]);
    // A garbled deliver: NACK asks for it again.
    c.handle_input(b"\x0220:002\t021:1\tZZ\x03", now);
    assert_eq!(ops(&client_out(&mut c)), vec![(99, 2)]);
    // An operation a client never accepts: 98.
    c.handle_input(&bytes_of(&submit(4)), now);
    let out = client_out(&mut c);
    assert_eq!(ops(&out), vec![(98, 4)]);
    assert_eq!(out[0].error_code(), Some(1));
}

// ---- property: random loss, splitting and latency never duplicate or reorder ----

mod lossy {
    use super::*;
    use proptest::prelude::*;

    fn run_scenario(
        split: usize,
        latency_ms: u64,
        to_server_loss: Vec<bool>,
        to_client_loss: Vec<bool>,
        submits: u64,
        mos: u64,
    ) -> bool {
        let lossy = to_server_loss
            .iter()
            .chain(&to_client_loss)
            .any(|&lost| lost);
        let mut p = Pair::default_pair();
        p.split = split;
        p.latency = Duration::from_millis(latency_ms);
        p.to_server.loss = to_server_loss.into();
        p.to_client.loss = to_client_loss.into();
        let (mut next_submit, mut next_mo) = (1u64, 1u64);
        let mut client_final: Vec<(u64, &'static str)> = Vec::new();
        let mut client_delivered: Vec<String> = Vec::new();
        let mut server_submits: Vec<String> = Vec::new();
        let mut server_mo_final: Vec<(u64, &'static str)> = Vec::new();
        let mut closed_because: Option<CloseReason> = None;
        let end = p.now + Duration::from_secs(120);
        while p.now < end {
            if p.client.can_submit() && next_submit <= submits {
                p.client
                    .submit(next_submit, &msg(next_submit), p.now)
                    .expect("submit");
                next_submit += 1;
            }
            if p.server.can_deliver() && next_mo <= mos {
                p.server
                    .deliver(&msg(1000 + next_mo), p.now)
                    .expect("deliver");
                next_mo += 1;
            }
            p.run(Duration::from_millis(5));
            for e in p.take_client_events() {
                match e {
                    ClientEvent::SubmitAccepted { id, .. } => client_final.push((id, "accepted")),
                    ClientEvent::SubmitRejected { id, .. } => client_final.push((id, "rejected")),
                    ClientEvent::SubmitFailed { id, .. } => client_final.push((id, "failed")),
                    ClientEvent::Deliver(m) => {
                        client_delivered.push(m.text_str().unwrap_or_default().to_owned());
                        // The same batch of events may also close the session (a
                        // submit that lost every try): then there is nothing to ack.
                        match p.client.ack_deliver(p.now) {
                            Ok(()) => {}
                            Err(SessionError::Closed) => assert!(p.client.is_closed()),
                            Err(e) => panic!("ack: {e}"),
                        }
                    }
                    ClientEvent::Closed { reason } => closed_because = Some(reason),
                    _ => {}
                }
            }
            for e in p.take_server_events() {
                match e {
                    ServerEvent::Submit { message, .. } => {
                        server_submits.push(message.text_str().unwrap_or_default().to_owned());
                        p.server
                            .accept_submit("12345", "261130120000", p.now)
                            .expect("accept");
                    }
                    ServerEvent::DeliverAcked { client_ref } => {
                        server_mo_final.push((client_ref, "acked"))
                    }
                    ServerEvent::DeliverFailed { client_ref, .. } => {
                        server_mo_final.push((client_ref, "failed"))
                    }
                    ServerEvent::DeliverRejected { client_ref, .. } => {
                        server_mo_final.push((client_ref, "rejected"))
                    }
                    _ => {}
                }
            }
            let submits_done = client_final.len() as u64 == next_submit - 1
                && (next_submit > submits || p.client.is_closed());
            let mos_done = server_mo_final.len() as u64 == next_mo - 1
                && (next_mo > mos || p.client.is_closed());
            if submits_done && mos_done {
                break;
            }
        }
        // Every submit that went out ended exactly once, in order.
        let refs: Vec<u64> = client_final.iter().map(|(r, _)| *r).collect();
        assert_eq!(
            refs,
            (1..next_submit).collect::<Vec<_>>(),
            "{client_final:?}"
        );
        assert!(client_final.iter().all(|(_, k)| *k != "rejected"));
        // The SMSC saw each message at most once, in order, and every accepted one.
        let expected: Vec<String> = (1..next_submit).map(|n| format!("hello #{n}")).collect();
        assert!(
            expected.starts_with(&server_submits),
            "duplicates or reordering at the SMSC: {server_submits:?}"
        );
        for (r, k) in &client_final {
            if *k == "accepted" {
                assert!(server_submits.contains(&format!("hello #{r}")));
            }
        }
        // Same for MO in the other direction.
        let expected: Vec<String> = (1..next_mo)
            .map(|n| format!("hello #{}", 1000 + n))
            .collect();
        // A deliver the SMSC gave up on (every try lost) may be missing, since this
        // SMSC moves on to the next one; what arrived is in order, each once.
        let positions: Vec<usize> = client_delivered
            .iter()
            .map(|t| expected.iter().position(|e| e == t).expect("unknown MO"))
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "duplicates or reordering at the client: {client_delivered:?}"
        );
        for (r, k) in &server_mo_final {
            if *k != "failed" {
                assert!(
                    client_delivered.contains(&format!("hello #{r}")),
                    "MO {r} ended {k} but never reached the client"
                );
            }
        }
        for (r, k) in &server_mo_final {
            if *k == "acked" {
                assert!(client_delivered.contains(&format!("hello #{r}")));
            }
        }
        // Unless the client gave up (too many losses in a row), everything went out;
        // and giving up has no other cause.
        if p.client.is_closed() {
            assert_eq!(closed_because, Some(CloseReason::ResponseTimeout));
            assert!(lossy, "the session closed although nothing was lost");
        } else {
            assert_eq!(closed_because, None);
            assert_eq!(next_submit - 1, submits);
            assert_eq!(next_mo - 1, mos);
        }
        !p.client.is_closed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn loss_split_latency_keep_exactly_once_in_order(
            split in 0usize..6,
            latency_ms in 1u64..300,
            to_server_loss in proptest::collection::vec(proptest::bool::weighted(0.15), 0..60),
            to_client_loss in proptest::collection::vec(proptest::bool::weighted(0.15), 0..60),
            submits in 1u64..15,
            mos in 0u64..8,
        ) {
            run_scenario(split, latency_ms, to_server_loss, to_client_loss, submits, mos);
        }
    }

    /// Found by the property test: a deliver arrives in the same batch in which the
    /// client gives up on a submit whose tries were all lost.
    #[test]
    fn deliver_next_to_a_failed_submit() {
        let to_server = vec![false, false, false, true, true, true, true, false, false];
        let to_client = vec![false, false, false, false, true];
        run_scenario(0, 3, to_server, to_client, 3, 4);
    }

    /// Found by the property test: the SMSC gives up on deliver 1002 (its tries all
    /// lost toward the client) and goes on with 1003.
    #[test]
    fn deliver_given_up_by_the_smsc_is_skipped_not_reordered() {
        let to_client = vec![false, true, false, true, true];
        run_scenario(0, 8, vec![], to_client, 1, 3);
    }

    #[test]
    fn no_loss_delivers_everything() {
        assert!(run_scenario(3, 40, vec![], vec![], 12, 6));
    }

    #[test]
    fn scattered_loss_is_recovered() {
        // Every fourth chunk lost in one direction: no request can lose all three
        // tries, so retransmission recovers everything.
        let pattern: Vec<bool> = (0..80).map(|i| i % 4 == 3).collect();
        assert!(run_scenario(0, 25, pattern.clone(), vec![], 10, 5));
        assert!(run_scenario(2, 25, vec![], pattern, 10, 5));
    }
}
