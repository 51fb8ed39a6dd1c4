//! The ESME session against a scripted SMSC: hand-built PDUs in, the session's PDUs
//! decoded out, time moved by hand.

use std::time::{Duration, Instant};

use super::*;
use crate::smpp::{
    deliver_sm, esm_class, message_state, npi, ton, BindResp, Decoder, IdFormat, MessageId,
    TextConfig, Tlv, Tlvs,
};

const SECOND: Duration = Duration::from_secs(1);

/// The SMSC's side of the session: what the session sent, decoded, and what it reported.
struct Smsc {
    client: SmppClient,
    now: Instant,
    decoders: Vec<Decoder>,
}

impl Smsc {
    fn new(config: SmppConfig) -> Smsc {
        let n = config.bind.connection_count();
        Smsc {
            client: SmppClient::new(config),
            now: Instant::now(),
            decoders: (0..n).map(|_| Decoder::default()).collect(),
        }
    }

    fn transceiver() -> Smsc {
        Smsc::new(config())
    }

    /// A transceiver session already bound, its bind and Up consumed.
    fn bound() -> Smsc {
        let mut s = Smsc::transceiver();
        s.bind_all();
        s
    }

    /// Connect and bind every connection, answering each bind with success.
    fn bind_all(&mut self) {
        for conn in 0..self.client.connection_count() {
            self.client.connected(conn, self.now);
            let bind = self.one(conn);
            let resp = bind.command_id().response().expect("a bind");
            self.feed(
                conn,
                Pdu::new(
                    bind.sequence_number,
                    Body::empty(resp).with_system_id("smsc"),
                ),
            );
        }
        assert_eq!(self.events(), vec![SmscEvent::Up]);
    }

    /// PDUs the session wrote on `conn` since the last look.
    fn sent(&mut self, conn: ConnIndex) -> Vec<Pdu> {
        let mut buf = Vec::new();
        self.client.poll_transmit(conn, &mut buf);
        let decoder = &mut self.decoders[conn];
        decoder.push(&buf);
        std::iter::from_fn(|| decoder.poll())
            .map(|r| r.expect("the session writes valid PDUs"))
            .collect()
    }

    /// Exactly one PDU was written on `conn`.
    fn one(&mut self, conn: ConnIndex) -> Pdu {
        let mut sent = self.sent(conn);
        assert_eq!(sent.len(), 1, "one PDU expected: {sent:?}");
        sent.remove(0)
    }

    fn feed(&mut self, conn: ConnIndex, pdu: Pdu) {
        let mut bytes = Vec::new();
        encode(&pdu, &mut bytes).expect("test PDU encodes");
        self.client.handle_input(conn, &bytes, self.now);
    }

    fn events(&mut self) -> Vec<SmscEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    /// Move the clock, running the session's timer whenever it is due.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(t) = self.client.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.client.handle_timeout(self.now);
        }
        self.now = end;
    }

    fn submit(&mut self, id: SubmitId, text: &str) -> Pdu {
        let m = Message::text("1000", "+4670123", text).unwrap();
        self.client.submit(id, &m, self.now).expect("room");
        self.one(0)
    }

    fn answer_submit(&mut self, sequence: u32, status: CommandStatus, message_id: &str) {
        let body = Body::SubmitSmResp(SubmitSmResp {
            message_id: MessageId::new(message_id).unwrap(),
            tlvs: Tlvs::new(),
        });
        self.feed(0, Pdu::response(sequence, status, body));
    }
}

trait WithSystemId {
    fn with_system_id(self, id: &str) -> Body;
}

impl WithSystemId for Body {
    fn with_system_id(self, id: &str) -> Body {
        let resp = BindResp {
            system_id: id.try_into().unwrap(),
            tlvs: Tlvs::new(),
        };
        match self {
            Body::BindTransceiverResp(_) => Body::BindTransceiverResp(resp),
            Body::BindTransmitterResp(_) => Body::BindTransmitterResp(resp),
            Body::BindReceiverResp(_) => Body::BindReceiverResp(resp),
            other => other,
        }
    }
}

fn config() -> SmppConfig {
    SmppConfig {
        system_id: "smslink".into(),
        password: "secret".into(),
        system_type: "VMA".into(),
        ..SmppConfig::default()
    }
}

fn mo_sm(from: &str, to: &str, text: &str) -> SubmitSm {
    deliver_sm(
        &Message::text(from, to, text).unwrap(),
        &TextConfig::default(),
    )
    .unwrap()
}

fn receipt_sm(text: &str, tlvs: Tlvs) -> SubmitSm {
    SubmitSm {
        source: SmeAddr::new(ton::INTERNATIONAL, npi::ISDN, "4670123").unwrap(),
        destination: SmeAddr::new(ton::UNKNOWN, npi::ISDN, "1000").unwrap(),
        esm_class: esm_class::SMSC_DELIVERY_RECEIPT,
        short_message: text.as_bytes().to_vec(),
        tlvs,
        ..SubmitSm::default()
    }
}

fn accepted_ids(events: &[SmscEvent]) -> Vec<(SubmitId, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SmscEvent::Accepted { id, smsc_id } => Some((*id, smsc_id.clone())),
            _ => None,
        })
        .collect()
}

fn is_violation(e: &SmscEvent) -> bool {
    matches!(e, SmscEvent::Violation { .. })
}

// ---- binding ----

#[test]
fn binds_as_a_transceiver_and_opens_the_window() {
    let mut s = Smsc::transceiver();
    assert!(!s.client.is_open());
    assert_eq!(s.client.connection_count(), 1);
    s.client.connected(0, s.now);
    assert!(s.client.is_open());
    let bind = s.one(0);
    assert_eq!(bind.sequence_number, 1);
    let Body::BindTransceiver(b) = &bind.body else {
        panic!("{bind:?}")
    };
    assert_eq!(b.system_id.as_str(), Some("smslink"));
    assert_eq!(b.password.as_str(), Some("secret"));
    assert_eq!(b.system_type.as_str(), Some("VMA"));
    assert_eq!(b.interface_version, 0x34);
    assert_eq!(s.client.submit_room(), 0, "not bound yet");
    assert!(s.events().is_empty());
    s.feed(
        0,
        Pdu::new(1, Body::BindTransceiverResp(BindResp::default())),
    );
    assert_eq!(s.events(), vec![SmscEvent::Up]);
    assert!(s.client.is_bound());
    assert_eq!(s.client.submit_room(), 10);
}

#[test]
fn binds_a_transmitter_and_a_receiver_as_one_session() {
    let mut s = Smsc::new(SmppConfig {
        bind: BindMode::TransmitterReceiver,
        ..config()
    });
    assert_eq!(s.client.connection_count(), 2);
    s.client.connected(0, s.now);
    let tx = s.one(0);
    assert!(matches!(tx.body, Body::BindTransmitter(_)), "{tx:?}");
    s.feed(
        0,
        Pdu::new(
            tx.sequence_number,
            Body::BindTransmitterResp(BindResp::default()),
        ),
    );
    assert!(s.events().is_empty(), "up only once both are bound");
    assert_eq!(s.client.submit_room(), 0);
    s.client.connected(1, s.now);
    let rx = s.one(1);
    assert!(matches!(rx.body, Body::BindReceiver(_)), "{rx:?}");
    assert_eq!(rx.sequence_number, 2, "one counter for the session");
    s.feed(
        1,
        Pdu::new(
            rx.sequence_number,
            Body::BindReceiverResp(BindResp::default()),
        ),
    );
    assert_eq!(s.events(), vec![SmscEvent::Up]);
    // Submits go on the transmitter, deliveries are answered where they came.
    let submit = s.submit(7, "hi");
    assert!(matches!(submit.body, Body::SubmitSm(_)));
    assert!(s.sent(1).is_empty());
    s.feed(
        1,
        Pdu::new(40, Body::DeliverSm(mo_sm("+4670", "1000", "mo"))),
    );
    let [SmscEvent::Mo { token, .. }] = s.events()[..] else {
        panic!("one MO expected")
    };
    s.client.answer(token, MoAnswer::Accept, s.now);
    let resp = s.one(1);
    assert_eq!(
        (resp.command_id(), resp.sequence_number),
        (CommandId::DeliverSmResp, 40)
    );
    // Either connection lost ends the session; the submit is unanswered.
    s.client.connection_lost(1, s.now);
    assert_eq!(
        s.events(),
        vec![
            SmscEvent::Unanswered { id: 7 },
            SmscEvent::Down {
                reason: "connection 1 to the SMSC lost".into()
            }
        ]
    );
    assert!(!s.client.is_open());
    s.client.connection_lost(0, s.now);
    assert!(s.events().is_empty(), "one Down per session");
}

#[test]
fn a_connection_of_an_ended_pair_joins_no_session_until_all_are_closed() {
    let mut s = Smsc::new(SmppConfig {
        bind: BindMode::TransmitterReceiver,
        ..config()
    });
    s.client.connected(0, s.now);
    let tx = s.one(0);
    s.feed(
        0,
        Pdu::response(
            tx.sequence_number,
            CommandStatus::ESME_RBINDFAIL,
            Body::BindTransmitterResp(BindResp::default()),
        ),
    );
    assert!(matches!(s.events()[..], [SmscEvent::Down { .. }]));
    // Connection 1 finishes connecting after the session ended: the driver is about
    // to close everything, so it must not start a session of its own.
    s.client.connected(1, s.now);
    assert!(!s.client.is_open());
    assert!(s.sent(1).is_empty());
    s.client.connection_lost(0, s.now);
    s.client.connection_lost(1, s.now);
    // Both redialled: a fresh session, sequence numbers from 1.
    s.client.connected(0, s.now);
    assert!(s.client.is_open());
    assert_eq!(s.one(0).sequence_number, 1);
}

#[test]
fn a_refused_bind_says_why_and_ends_the_session() {
    let cases = [
        (CommandStatus::ESME_RINVPASWD, "the password is wrong"),
        (
            CommandStatus::ESME_RINVSYSID,
            "does not know this system_id",
        ),
        (
            CommandStatus::ESME_RINVSYSTYP,
            "does not accept this system_type",
        ),
        (CommandStatus::ESME_RALYBND, "still holds an earlier bind"),
        (CommandStatus::ESME_RBINDFAIL, "ESME_RBINDFAIL"),
    ];
    for (status, words) in cases {
        let mut s = Smsc::transceiver();
        s.client.connected(0, s.now);
        let bind = s.one(0);
        s.feed(
            0,
            Pdu::response(
                bind.sequence_number,
                status,
                Body::BindTransceiverResp(BindResp::default()),
            ),
        );
        let events = s.events();
        let [SmscEvent::Down { reason }] = &events[..] else {
            panic!("{events:?}")
        };
        assert!(reason.contains("bind_transceiver refused"), "{reason}");
        assert!(reason.contains(words), "{status:?}: {reason}");
        assert!(!s.client.is_open());
        assert!(s.sent(0).is_empty(), "nothing to unbind");
    }
}

#[test]
fn a_receiver_refused_after_the_transmitter_bound_unbinds_the_transmitter() {
    let mut s = Smsc::new(SmppConfig {
        bind: BindMode::TransmitterReceiver,
        ..config()
    });
    s.client.connected(0, s.now);
    s.client.connected(1, s.now);
    let tx = s.one(0);
    let rx = s.one(1);
    s.feed(
        0,
        Pdu::new(
            tx.sequence_number,
            Body::BindTransmitterResp(BindResp::default()),
        ),
    );
    s.feed(
        1,
        Pdu::response(
            rx.sequence_number,
            CommandStatus::ESME_RINVPASWD,
            Body::GenericNack,
        ),
    );
    let events = s.events();
    let [SmscEvent::Down { reason }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(
        reason.starts_with("bind_receiver refused (generic_nack)"),
        "{reason}"
    );
    assert_eq!(s.one(0).body, Body::Unbind);
    assert!(s.sent(1).is_empty());
}

#[test]
fn credentials_too_long_for_their_fields_end_the_session_with_the_reason() {
    let mut s = Smsc::new(SmppConfig {
        password: "far too long".into(),
        ..config()
    });
    s.client.connected(0, s.now);
    let events = s.events();
    let [SmscEvent::Down { reason }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(reason.starts_with("password cannot be sent"), "{reason}");
    assert!(s.sent(0).is_empty());
}

// ---- submits ----

#[test]
fn a_window_of_ten_takes_responses_in_any_order() {
    let mut s = Smsc::bound();
    let mut sequences = Vec::new();
    for id in 100..110 {
        sequences.push(s.submit(id, &format!("m{id}")).sequence_number);
    }
    assert_eq!(s.client.submit_room(), 0);
    let m = Message::text("1000", "4670", "one too many").unwrap();
    assert_eq!(s.client.submit(110, &m, s.now), Err(SubmitError::NoRoom));
    let order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4];
    for &i in &order {
        s.answer_submit(sequences[i], CommandStatus::ESME_ROK, &format!("ID{i}"));
    }
    let expected: Vec<_> = order
        .iter()
        .map(|&i| (100 + i as u64, Some(format!("id{i}"))))
        .collect();
    assert_eq!(accepted_ids(&s.events()), expected);
    assert_eq!(s.client.submit_room(), 10);
}

#[test]
fn submit_sm_carries_the_configured_numbering_and_receipt_request() {
    let mut s = Smsc::new(SmppConfig {
        source_numbering: Numbering {
            numeric: TonNpi::new(ton::NATIONAL, npi::ISDN),
            ..Numbering::default()
        },
        registered_delivery: 0,
        ..config()
    });
    s.bind_all();
    let m = Message::text("1000", "+4670123", "hello").unwrap();
    s.client.submit(1, &m, s.now).unwrap();
    let Body::SubmitSm(sm) = s.one(0).body else {
        panic!()
    };
    assert_eq!((sm.source.ton, sm.source.npi), (ton::NATIONAL, npi::ISDN));
    assert_eq!(sm.source.addr.as_str(), Some("1000"));
    assert_eq!(
        (sm.destination.ton, sm.destination.npi),
        (ton::INTERNATIONAL, npi::ISDN)
    );
    assert_eq!(sm.destination.addr.as_str(), Some("4670123"));
    assert_eq!(sm.registered_delivery, 0);
    assert_eq!(sm.short_message, b"hello");
    // The default asks for a receipt; an alphanumeric sender keeps 5/0.
    let mut s = Smsc::bound();
    let m = Message::text("Shop", "4670", "x").unwrap();
    s.client.submit(2, &m, s.now).unwrap();
    let Body::SubmitSm(sm) = s.one(0).body else {
        panic!()
    };
    assert_eq!(sm.registered_delivery, 1);
    assert_eq!(
        (sm.source.ton, sm.source.npi),
        (ton::ALPHANUMERIC, npi::UNKNOWN)
    );
}

#[test]
fn a_message_smpp_cannot_carry_is_unencodable_for_good() {
    let mut s = Smsc::bound();
    let m = Message::text("1000", "shop", "x").unwrap();
    match s.client.submit(1, &m, s.now) {
        Err(SubmitError::Unencodable { code, .. }) => {
            assert_eq!(CommandStatus(code), CommandStatus::ESME_RINVDSTADR)
        }
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(161);
    let m = Message::text("1000", "4670", &long).unwrap();
    match s.client.submit(2, &m, s.now) {
        Err(SubmitError::Unencodable { code, .. }) => {
            assert_eq!(CommandStatus(code).class(), StatusClass::Permanent)
        }
        other => panic!("{other:?}"),
    }
    assert!(s.sent(0).is_empty());
    assert_eq!(s.client.submit_room(), 10);
}

#[test]
fn sequence_numbers_wrap_to_one_and_skip_those_still_awaited() {
    let mut s = Smsc::bound();
    s.client.set_next_sequence(MAX_SEQUENCE - 1);
    let a = s.submit(1, "a").sequence_number;
    let b = s.submit(2, "b").sequence_number;
    let c = s.submit(3, "c").sequence_number;
    assert_eq!((a, b, c), (MAX_SEQUENCE - 1, MAX_SEQUENCE, 1));
    // Around again: MAX_SEQUENCE - 1 is still awaited, so it is skipped.
    s.client.set_next_sequence(MAX_SEQUENCE - 1);
    assert_eq!(s.submit(4, "d").sequence_number, 2);
    for (sequence, id) in [(a, "A"), (b, "B"), (c, "C"), (2, "D")] {
        s.answer_submit(sequence, CommandStatus::ESME_ROK, id);
    }
    assert_eq!(
        accepted_ids(&s.events()),
        vec![
            (1, Some("a".into())),
            (2, Some("b".into())),
            (3, Some("c".into())),
            (4, Some("d".into()))
        ]
    );
}

#[test]
fn statuses_are_classified_temporary_or_permanent() {
    let cases = [
        (CommandStatus::ESME_RSYSERR, Permanence::Temporary),
        (CommandStatus::ESME_RX_T_APPN, Permanence::Temporary),
        (CommandStatus::ESME_RINVDSTADR, Permanence::Permanent),
        (CommandStatus::ESME_RSUBMITFAIL, Permanence::Permanent),
        (CommandStatus(0x0000_0400), Permanence::Permanent),
    ];
    for (status, permanence) in cases {
        let mut s = Smsc::bound();
        let seq = s.submit(9, "x").sequence_number;
        s.answer_submit(seq, status, "");
        let events = s.events();
        match &events[..] {
            [SmscEvent::Rejected {
                id: 9,
                code,
                permanence: p,
                text: Some(_),
            }] => {
                assert_eq!((*code, *p), (status.0, permanence), "{status:?}");
            }
            other => panic!("{status:?}: {other:?}"),
        }
        assert_eq!(s.client.submit_room(), 10, "{status:?} does not throttle");
    }
}

#[test]
fn generic_nack_for_a_submit_rejects_it_with_its_status() {
    let mut s = Smsc::bound();
    let seq = s.submit(5, "x").sequence_number;
    s.feed(
        0,
        Pdu::response(seq, CommandStatus::ESME_RINVCMDLEN, Body::GenericNack),
    );
    assert!(matches!(
        s.events()[..],
        [SmscEvent::Rejected {
            id: 5,
            code: 2,
            permanence: Permanence::Permanent,
            ..
        }]
    ));
    assert_eq!(s.client.outstanding_submits(), 0);
}

#[test]
fn throttling_pauses_every_submit_then_resumes_with_a_doubling_pause() {
    let mut s = Smsc::bound();
    let seqs: Vec<u32> = (1..=3)
        .map(|id| s.submit(id, "x").sequence_number)
        .collect();
    let t0 = s.now;
    s.answer_submit(seqs[0], CommandStatus::ESME_RTHROTTLED, "");
    assert_eq!(
        s.events(),
        vec![SmscEvent::Rejected {
            id: 1,
            code: 0x58,
            permanence: Permanence::Temporary,
            text: Some(CommandStatus::ESME_RTHROTTLED.to_string()),
        }]
    );
    assert_eq!(s.client.submit_room(), 0, "paused");
    assert_eq!(s.client.throttled_until(), Some(t0 + SECOND));
    let m = Message::text("1000", "4670", "x").unwrap();
    assert_eq!(s.client.submit(4, &m, s.now), Err(SubmitError::NoRoom));
    // The rest of the burst: sent before the pause, it does not lengthen it.
    s.now += Duration::from_millis(300);
    s.feed(
        0,
        Pdu::response(seqs[1], CommandStatus::ESME_RMSGQFUL, Body::GenericNack),
    );
    s.answer_submit(seqs[2], CommandStatus::ESME_ROK, "abc");
    let events = s.events();
    assert!(matches!(
        events[..],
        [
            SmscEvent::Rejected {
                id: 2,
                code: 0x14,
                permanence: Permanence::Temporary,
                ..
            },
            SmscEvent::Accepted { id: 3, .. }
        ]
    ));
    assert_eq!(s.client.throttled_until(), Some(t0 + SECOND));
    assert_eq!(s.client.poll_timeout(), Some(t0 + SECOND));
    s.advance(Duration::from_millis(699));
    assert_eq!(s.client.submit_room(), 0);
    s.advance(Duration::from_millis(1));
    assert_eq!(s.client.submit_room(), 10, "resumed after 1 s");
    // Throttled again before any success: the pause doubles.
    let seq = s.submit(4, "x").sequence_number;
    s.answer_submit(seq, CommandStatus::ESME_RTHROTTLED, "");
    assert_eq!(s.client.throttled_until(), Some(s.now + 2 * SECOND));
    s.advance(2 * SECOND);
    // A success resets it.
    let seq = s.submit(5, "x").sequence_number;
    s.answer_submit(seq, CommandStatus::ESME_ROK, "1");
    let seq = s.submit(6, "x").sequence_number;
    s.answer_submit(seq, CommandStatus::ESME_RTHROTTLED, "");
    assert_eq!(s.client.throttled_until(), Some(s.now + SECOND));
}

#[test]
fn the_throttling_pause_is_capped() {
    // No enquire_link during the long pauses: the test reads one PDU per submit.
    let mut s = Smsc::new(SmppConfig {
        enquire_link_interval: Duration::ZERO,
        ..config()
    });
    s.bind_all();
    let mut pauses = Vec::new();
    for id in 0..9 {
        let seq = s.submit(id, "x").sequence_number;
        s.answer_submit(seq, CommandStatus::ESME_RTHROTTLED, "");
        let until = s.client.throttled_until().expect("paused");
        pauses.push((until - s.now).as_secs());
        s.advance(until - s.now);
    }
    assert_eq!(pauses, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

#[test]
fn an_unanswered_request_breaks_the_session() {
    let mut s = Smsc::bound();
    s.submit(1, "a");
    s.now += 10 * SECOND;
    s.submit(2, "b");
    s.advance(20 * SECOND - Duration::from_millis(1));
    assert!(s.events().is_empty());
    s.advance(Duration::from_millis(1));
    assert_eq!(s.one(0).body, Body::Unbind);
    let events = s.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[..2],
        [
            SmscEvent::Unanswered { id: 1 },
            SmscEvent::Unanswered { id: 2 }
        ]
    );
    let SmscEvent::Down { reason } = &events[2] else {
        panic!("{events:?}")
    };
    assert!(reason.starts_with("no answer to submit_sm"), "{reason}");
    assert!(!s.client.is_open());
    assert_eq!(s.client.poll_timeout(), None);
    // A late answer after the end changes nothing.
    s.answer_submit(2, CommandStatus::ESME_ROK, "x");
    assert!(s.events().is_empty());
}

#[test]
fn an_unanswered_bind_ends_the_session_without_unbind() {
    let mut s = Smsc::transceiver();
    s.client.connected(0, s.now);
    s.one(0);
    s.advance(30 * SECOND);
    assert!(matches!(s.events()[..], [SmscEvent::Down { .. }]));
    assert!(s.sent(0).is_empty());
}

// ---- deliveries ----

#[test]
fn mo_is_answered_as_the_bridge_says_in_any_order() {
    let mut s = Smsc::bound();
    s.feed(
        0,
        Pdu::new(11, Body::DeliverSm(mo_sm("+4670", "1000", "first"))),
    );
    s.feed(
        0,
        Pdu::new(12, Body::DeliverSm(mo_sm("4671", "1000", "second"))),
    );
    let events = s.events();
    let [SmscEvent::Mo {
        token: first,
        message: m1,
    }, SmscEvent::Mo {
        token: second,
        message: m2,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(m1.from.as_str(), "+4670");
    assert_eq!(m1.text_str(), Some("first"));
    assert_eq!(m2.text_str(), Some("second"));
    assert!(s.sent(0).is_empty(), "no answer before the bridge's");
    s.client.answer(*second, MoAnswer::RetryLater, s.now);
    s.client.answer(*first, MoAnswer::Accept, s.now);
    let sent = s.sent(0);
    let answers: Vec<_> = sent
        .iter()
        .map(|p| (p.command_id(), p.sequence_number, p.command_status))
        .collect();
    assert_eq!(
        answers,
        vec![
            (CommandId::DeliverSmResp, 12, CommandStatus::ESME_RX_T_APPN),
            (CommandId::DeliverSmResp, 11, CommandStatus::ESME_ROK),
        ]
    );
    assert_eq!(CommandStatus::ESME_RX_T_APPN.0, 0x64);
    // A token is answered once.
    s.client.answer(*first, MoAnswer::Accept, s.now);
    assert!(s.sent(0).is_empty());
}

#[test]
fn an_answer_after_a_reconnect_is_dropped() {
    let mut s = Smsc::bound();
    s.feed(
        0,
        Pdu::new(3, Body::DeliverSm(mo_sm("4670", "1000", "old"))),
    );
    let [SmscEvent::Mo { token: old, .. }] = s.events()[..] else {
        panic!()
    };
    s.client.connection_lost(0, s.now);
    assert!(matches!(s.events()[..], [SmscEvent::Down { .. }]));
    s.bind_all();
    // The SMSC offers the same delivery again with the same sequence number.
    s.feed(
        0,
        Pdu::new(3, Body::DeliverSm(mo_sm("4670", "1000", "old"))),
    );
    let [SmscEvent::Mo { token: new, .. }] = s.events()[..] else {
        panic!()
    };
    assert_ne!(old, new);
    s.client.answer(old, MoAnswer::Accept, s.now);
    assert!(s.sent(0).is_empty(), "the stale token answers nothing");
    s.client.answer(new, MoAnswer::Accept, s.now);
    assert_eq!(s.one(0).sequence_number, 3);
}

#[test]
fn data_sm_is_an_mo_answered_with_data_sm_resp() {
    let mut s = Smsc::bound();
    let data = DataSm {
        source: SmeAddr::new(ton::INTERNATIONAL, npi::ISDN, "4670").unwrap(),
        destination: SmeAddr::new(ton::UNKNOWN, npi::ISDN, "1000").unwrap(),
        tlvs: Tlvs::new().with(Tlv::MessagePayload(b"via data sm".to_vec())),
        ..DataSm::default()
    };
    s.feed(0, Pdu::new(21, Body::DataSm(data)));
    let [SmscEvent::Mo { token, ref message }] = s.events()[..] else {
        panic!()
    };
    assert_eq!(message.text_str(), Some("via data sm"));
    assert_eq!(message.from.as_str(), "+4670");
    s.client.answer(token, MoAnswer::Accept, s.now);
    let resp = s.one(0);
    assert_eq!(
        (resp.command_id(), resp.sequence_number, resp.command_status),
        (CommandId::DataSmResp, 21, CommandStatus::ESME_ROK)
    );
}

#[test]
fn an_mo_that_cannot_be_a_message_is_refused_for_good() {
    let mut s = Smsc::bound();
    let mut sm = mo_sm("4670", "1000", "x");
    sm.source.addr = "name@example.org".try_into().unwrap();
    s.feed(0, Pdu::new(8, Body::DeliverSm(sm)));
    assert!(matches!(s.events()[..], [SmscEvent::Violation { .. }]));
    let resp = s.one(0);
    assert_eq!(
        (resp.sequence_number, resp.command_status),
        (8, CommandStatus::ESME_RX_P_APPN)
    );
}

// ---- receipts ----

fn report_of(s: &mut Smsc, sm: SubmitSm) -> StatusReport {
    s.feed(0, Pdu::new(77, Body::DeliverSm(sm)));
    let events = s.events();
    let reports: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SmscEvent::StatusReport { token, report } => Some((*token, report.clone())),
            _ => None,
        })
        .collect();
    let [(token, report)] = &reports[..] else {
        panic!("{events:?}")
    };
    s.client.answer(*token, MoAnswer::Accept, s.now);
    let resp = s.one(0);
    assert_eq!(
        (resp.command_id(), resp.sequence_number, resp.command_status),
        (CommandId::DeliverSmResp, 77, CommandStatus::ESME_ROK)
    );
    report.clone()
}

#[test]
fn a_receipt_is_read_from_its_tlvs_first() {
    let mut s = Smsc::bound();
    let tlvs = Tlvs::new()
        .with(Tlv::ReceiptedMessageId("00B8BE19".try_into().unwrap()))
        .with(Tlv::MessageState(message_state::UNDELIVERABLE))
        .with(Tlv::NetworkErrorCode {
            network_type: 3,
            error_code: 27,
        });
    // The text disagrees on purpose: the TLVs win.
    let sm = receipt_sm("id:999 stat:DELIVRD err:000", tlvs);
    let report = report_of(&mut s, sm);
    assert_eq!(
        report,
        StatusReport {
            smsc_id: "b8be19".into(),
            recipient: "+4670123".into(),
            delivered: false,
            failed: true,
            expired: false,
            status: u32::from(message_state::UNDELIVERABLE),
            error: Some(27),
        }
    );
}

#[test]
fn receipts_in_the_text_forms_met_in_practice() {
    let cases: [(&str, &str, bool, bool, Option<u32>); 7] = [
        (
            "id:1234567890 sub:001 dlvrd:001 submit date:1001011200 done date:1001011201 \
             stat:DELIVRD err:000 text:Hello there",
            "1234567890",
            true,
            false,
            Some(0),
        ),
        // No sub/dlvrd, 12-digit dates, lower case, a hex id with leading zeros.
        (
            "id:00A1B2 submit date:100101120000 done date:100101120105 stat:undeliv err:034",
            "a1b2",
            false,
            true,
            Some(34),
        ),
        // Upper-case keys, 14-digit dates, no text.
        (
            "ID:77 SUB:1 DLVRD:0 SUBMIT DATE:20240131235959 DONE DATE:20240201000001 \
             STAT:EXPIRED ERR:000",
            "77",
            false,
            true,
            Some(0),
        ),
        ("id:5 stat:ENROUTE", "5", false, false, None),
        (
            "id:6 sub:001 dlvrd:000 stat:ACCEPTD err:000 text:",
            "6",
            false,
            false,
            Some(0),
        ),
        ("id:7 stat:BUFFRED err:000", "7", false, false, Some(0)),
        (
            "id:8 submit_date:2401011200 done_date:2401011201 stat:REJECTD",
            "8",
            false,
            true,
            None,
        ),
    ];
    for (text, id, delivered, failed, error) in cases {
        let mut s = Smsc::bound();
        let report = report_of(&mut s, receipt_sm(text, Tlvs::new()));
        assert_eq!(report.smsc_id, id, "{text}");
        assert_eq!(
            (report.delivered, report.failed),
            (delivered, failed),
            "{text}"
        );
        assert_eq!(report.error, error, "{text}");
    }
}

#[test]
fn hex_submit_ids_and_decimal_receipt_ids_compare_equal() {
    let mut s = Smsc::new(SmppConfig {
        submit_id_format: IdFormat::Hex,
        receipt_id_format: IdFormat::Decimal,
        ..config()
    });
    s.bind_all();
    let seq = s.submit(1, "x").sequence_number;
    s.answer_submit(seq, CommandStatus::ESME_ROK, "00B8BE19");
    let [SmscEvent::Accepted {
        id: 1,
        smsc_id: Some(ref accepted),
    }] = s.events()[..]
    else {
        panic!()
    };
    let report = report_of(
        &mut s,
        receipt_sm("id:12107289 sub:001 dlvrd:001 stat:DELIVRD", Tlvs::new()),
    );
    assert_eq!(&report.smsc_id, accepted);
    assert!(report.delivered);
    // receipted_message_id is the submit_sm_resp's id: read as hex here.
    let tlvs = Tlvs::new().with(Tlv::ReceiptedMessageId("b8be19".try_into().unwrap()));
    let report = report_of(&mut s, receipt_sm("", tlvs));
    assert_eq!(&report.smsc_id, accepted);
    assert!(!report.delivered && !report.failed, "no state given");
}

#[test]
fn a_receipt_without_an_id_is_still_reported_and_answered() {
    let mut s = Smsc::bound();
    s.feed(
        0,
        Pdu::new(5, Body::DeliverSm(receipt_sm("stat:DELIVRD", Tlvs::new()))),
    );
    let events = s.events();
    assert!(is_violation(&events[0]), "{events:?}");
    let SmscEvent::StatusReport { token, report } = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(report.smsc_id, "");
    assert!(report.delivered);
    s.client.answer(*token, MoAnswer::Accept, s.now);
    assert_eq!(s.one(0).sequence_number, 5);
}

// ---- malformed input, keep-alive, unknown responses ----

#[test]
fn a_malformed_request_is_answered_with_its_error_and_the_session_goes_on() {
    let mut s = Smsc::bound();
    // A deliver_sm cut after its service_type and source_addr_ton.
    let mut bad = Vec::new();
    bad.extend_from_slice(&18u32.to_be_bytes());
    bad.extend_from_slice(&CommandId::DeliverSm.value().to_be_bytes());
    bad.extend_from_slice(&0u32.to_be_bytes());
    bad.extend_from_slice(&31u32.to_be_bytes());
    bad.extend_from_slice(&[0, 1]);
    // An unknown command id.
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&16u32.to_be_bytes());
    unknown.extend_from_slice(&0x0000_0999u32.to_be_bytes());
    unknown.extend_from_slice(&0u32.to_be_bytes());
    unknown.extend_from_slice(&32u32.to_be_bytes());
    s.client.handle_input(0, &[bad, unknown].concat(), s.now);
    let events = s.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(is_violation), "{events:?}");
    let replies: Vec<_> = s
        .sent(0)
        .iter()
        .map(|p| (p.command_id(), p.sequence_number, p.command_status))
        .collect();
    assert_eq!(
        replies,
        vec![
            (CommandId::DeliverSmResp, 31, CommandStatus::ESME_RINVCMDLEN),
            (CommandId::GenericNack, 32, CommandStatus::ESME_RINVCMDID),
        ]
    );
    assert!(s.client.is_open());
    let seq = s.submit(1, "still here").sequence_number;
    s.answer_submit(seq, CommandStatus::ESME_ROK, "1");
    assert_eq!(accepted_ids(&s.events()), vec![(1, Some("1".into()))]);
}

#[test]
fn a_broken_submit_sm_resp_counts_for_what_its_header_says() {
    let mut s = Smsc::bound();
    let seq = s.submit(1, "x").sequence_number;
    // message_id without its NUL terminator.
    let mut bad = Vec::new();
    bad.extend_from_slice(&19u32.to_be_bytes());
    bad.extend_from_slice(&CommandId::SubmitSmResp.value().to_be_bytes());
    bad.extend_from_slice(&0u32.to_be_bytes());
    bad.extend_from_slice(&seq.to_be_bytes());
    bad.extend_from_slice(b"abc");
    s.client.handle_input(0, &bad, s.now);
    let events = s.events();
    assert!(is_violation(&events[0]), "{events:?}");
    assert_eq!(
        events[1],
        SmscEvent::Accepted {
            id: 1,
            smsc_id: None
        }
    );
    assert!(s.sent(0).is_empty(), "a response is never nacked");
}

#[test]
fn a_framing_error_ends_the_session() {
    for command_length in [8u32, 0x0100_0000] {
        let mut s = Smsc::bound();
        s.submit(1, "x");
        let mut bytes = command_length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 12]);
        s.client.handle_input(0, &bytes, s.now);
        let events = s.events();
        assert!(is_violation(&events[0]), "{events:?}");
        assert_eq!(events[1], SmscEvent::Unanswered { id: 1 });
        assert!(matches!(events[2], SmscEvent::Down { .. }), "{events:?}");
        assert!(!s.client.is_open());
    }
}

#[test]
fn enquire_link_both_ways() {
    let mut s = Smsc::bound();
    // The SMSC asks.
    s.feed(0, Pdu::new(500, Body::EnquireLink));
    let resp = s.one(0);
    assert_eq!(
        (resp.body, resp.sequence_number),
        (Body::EnquireLinkResp, 500)
    );
    // We ask after 30 s without traffic.
    s.advance(30 * SECOND - Duration::from_millis(1));
    assert!(s.sent(0).is_empty());
    s.advance(Duration::from_millis(1));
    let ask = s.one(0);
    assert_eq!(ask.body, Body::EnquireLink);
    s.advance(10 * SECOND);
    assert!(s.sent(0).is_empty(), "one at a time");
    s.feed(0, Pdu::new(ask.sequence_number, Body::EnquireLinkResp));
    s.advance(30 * SECOND);
    let again = s.one(0);
    assert_eq!(again.body, Body::EnquireLink);
    // Unanswered: the session breaks.
    s.advance(30 * SECOND);
    assert_eq!(s.one(0).body, Body::Unbind);
    let events = s.events();
    let [SmscEvent::Down { reason }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(reason.starts_with("no answer to enquire_link"), "{reason}");
    assert!(s.events().is_empty());
}

#[test]
fn enquire_link_runs_on_each_connection_of_a_pair() {
    let mut s = Smsc::new(SmppConfig {
        bind: BindMode::TransmitterReceiver,
        ..config()
    });
    s.bind_all();
    s.advance(30 * SECOND);
    assert_eq!(s.one(0).body, Body::EnquireLink);
    assert_eq!(s.one(1).body, Body::EnquireLink);
}

#[test]
fn a_response_to_no_request_is_a_violation_and_nothing_else() {
    let mut s = Smsc::bound();
    let seq = s.submit(1, "x").sequence_number;
    s.answer_submit(999, CommandStatus::ESME_ROK, "stray");
    s.feed(
        0,
        Pdu::response(998, CommandStatus::ESME_RTHROTTLED, Body::GenericNack),
    );
    // The right sequence number with the wrong command.
    s.feed(0, Pdu::new(seq, Body::EnquireLinkResp));
    let events = s.events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(is_violation));
    assert!(s.sent(0).is_empty());
    assert_eq!(s.client.outstanding_submits(), 1);
    assert_eq!(s.client.throttled_until(), None);
    s.answer_submit(seq, CommandStatus::ESME_ROK, "real");
    assert_eq!(accepted_ids(&s.events()), vec![(1, Some("real".into()))]);
}

#[test]
fn requests_an_esme_does_not_serve_are_refused() {
    let mut s = Smsc::bound();
    s.feed(0, Pdu::new(60, Body::SubmitSm(SubmitSm::default())));
    s.feed(
        0,
        Pdu::new(61, Body::Outbind(crate::smpp::Outbind::default())),
    );
    s.feed(
        0,
        Pdu::new(
            62,
            Body::AlertNotification(crate::smpp::AlertNotification::default()),
        ),
    );
    let events = s.events();
    assert_eq!(events.len(), 2, "alert_notification is ignored: {events:?}");
    assert!(events.iter().all(is_violation));
    let replies: Vec<_> = s
        .sent(0)
        .iter()
        .map(|p| (p.command_id(), p.sequence_number, p.command_status))
        .collect();
    assert_eq!(
        replies,
        vec![(CommandId::SubmitSmResp, 60, CommandStatus::ESME_RINVCMDID)]
    );
}

// ---- unbind ----

#[test]
fn the_smsc_unbinding_ends_the_session() {
    let mut s = Smsc::bound();
    s.submit(4, "x");
    s.feed(0, Pdu::new(90, Body::Unbind));
    let resp = s.one(0);
    assert_eq!((resp.body, resp.sequence_number), (Body::UnbindResp, 90));
    assert_eq!(
        s.events(),
        vec![
            SmscEvent::Unanswered { id: 4 },
            SmscEvent::Down {
                reason: "the SMSC unbound".into()
            }
        ]
    );
}

#[test]
fn logout_waits_for_outstanding_submits_then_unbinds() {
    let mut s = Smsc::bound();
    let seq = s.submit(1, "x").sequence_number;
    s.client.logout(s.now);
    assert!(s.sent(0).is_empty(), "a submit is still awaited");
    assert_eq!(s.client.submit_room(), 0);
    s.client.logout(s.now);
    s.answer_submit(seq, CommandStatus::ESME_ROK, "1");
    let unbind = s.one(0);
    assert_eq!(unbind.body, Body::Unbind);
    assert!(s.client.is_open());
    s.feed(0, Pdu::new(unbind.sequence_number, Body::UnbindResp));
    assert_eq!(
        s.events(),
        vec![
            SmscEvent::Accepted {
                id: 1,
                smsc_id: Some("1".into())
            },
            SmscEvent::Down {
                reason: "logged out".into()
            }
        ]
    );
    assert!(!s.client.is_open());
}

#[test]
fn logout_of_a_pair_unbinds_both_and_gives_up_on_a_silent_smsc() {
    let mut s = Smsc::new(SmppConfig {
        bind: BindMode::TransmitterReceiver,
        ..config()
    });
    s.bind_all();
    s.client.logout(s.now);
    let tx = s.one(0);
    let rx = s.one(1);
    assert_eq!((&tx.body, &rx.body), (&Body::Unbind, &Body::Unbind));
    s.feed(1, Pdu::new(rx.sequence_number, Body::UnbindResp));
    assert!(s.events().is_empty(), "the transmitter is still unbinding");
    s.advance(30 * SECOND);
    let events = s.events();
    let [SmscEvent::Down { reason }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(reason.starts_with("no answer to unbind"), "{reason}");
    assert!(s.sent(0).is_empty(), "no second unbind");
}

// ---- with the bridge ----

/// The bridge with an SMPP session, a link pair in memory and a scripted SMSC that
/// throttles: every message reaches the SMSC's accepted list exactly once.
#[test]
fn throttling_through_the_bridge_loses_and_doubles_nothing() {
    use crate::bridge::{Bridge, BridgeConfig};
    use crate::link::{Endpoint, Event, LinkConfig};
    use crate::ring::{Outcome, SlotState};

    let mut now = Instant::now();
    let link = |name: &str| Endpoint::new(LinkConfig::new(name, b"esme test key"), now).unwrap();
    let (mut bs, mut im) = (link("bs"), link("im"));
    bs.connected(now);
    im.connected(now);
    let mut bridge = Bridge::new(
        Box::new(SmppClient::new(SmppConfig {
            window: 4,
            ..config()
        })),
        BridgeConfig::default(),
    );
    let mut smsc_in = Decoder::default();
    let mut accepted: Vec<String> = Vec::new();
    let mut outcomes = Vec::new();
    let mut answered = 0u32;
    const N: usize = 12;
    for i in 0..N {
        im.send(&Message::text("1000", "4670", &format!("m{i}")).unwrap())
            .unwrap();
    }
    bridge.smsc_connected(0, now);
    let mut buf = Vec::new();
    for _round in 0..2000 {
        bridge.poll(&mut bs, now);
        // The SMSC: bind ok; every third submit throttled, the rest accepted.
        buf.clear();
        bridge.smsc_transmit(0, &mut buf);
        smsc_in.push(&buf);
        let mut reply = Vec::new();
        while let Some(pdu) = smsc_in.poll() {
            let pdu = pdu.unwrap();
            let resp = match pdu.body {
                Body::BindTransceiver(_) => Pdu::new(
                    pdu.sequence_number,
                    Body::BindTransceiverResp(BindResp::default()),
                ),
                Body::SubmitSm(sm) => {
                    answered += 1;
                    if answered % 3 == 1 {
                        Pdu::response(
                            pdu.sequence_number,
                            CommandStatus::ESME_RTHROTTLED,
                            Body::GenericNack,
                        )
                    } else {
                        accepted.push(String::from_utf8(sm.short_message).unwrap());
                        Pdu::new(
                            pdu.sequence_number,
                            Body::SubmitSmResp(SubmitSmResp {
                                message_id: format!("{answered}").as_str().try_into().unwrap(),
                                tlvs: Tlvs::new(),
                            }),
                        )
                    }
                }
                Body::EnquireLink => Pdu::new(pdu.sequence_number, Body::EnquireLinkResp),
                other => panic!("unexpected {other:?}"),
            };
            encode(&resp, &mut reply).unwrap();
        }
        if !reply.is_empty() {
            bridge.smsc_input(0, &reply, now);
            bridge.poll(&mut bs, now);
        }
        // The link between the buffer server and the IM side.
        for _ in 0..4 {
            buf.clear();
            while bs.poll_transmit(now, &mut buf) > 0 {}
            if !buf.is_empty() {
                im.handle_input(&buf, now).unwrap();
            }
            buf.clear();
            while im.poll_transmit(now, &mut buf) > 0 {}
            if !buf.is_empty() {
                bs.handle_input(&buf, now).unwrap();
            }
        }
        while let Some(e) = im.poll_event() {
            if let Event::StatusChanged {
                seq,
                state: SlotState::Processed,
                outcome: Some(o),
                ..
            } = e
            {
                outcomes.push((seq, o));
            }
        }
        while bs.poll_event().is_some() {}
        if outcomes.len() == N {
            break;
        }
        // Nothing to do now: jump to the next timer.
        if reply.is_empty() {
            match bridge.poll_timeout() {
                Some(t) if t > now => now = t,
                _ => now += Duration::from_millis(100),
            }
            bridge.handle_timeout(now);
        }
    }
    assert_eq!(outcomes.len(), N, "every MT decided");
    assert!(outcomes.iter().all(|(_, o)| *o == Outcome::Accepted));
    let mut seqs: Vec<u64> = outcomes.iter().map(|(s, _)| *s).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=N as u64).collect::<Vec<_>>());
    let mut texts = accepted.clone();
    texts.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(texts, expected, "each message accepted exactly once");
    assert!(answered as usize > N, "some submits were throttled");
    let stats = bridge.stats();
    assert_eq!(stats.mt_accepted, N as u64);
    assert_eq!(stats.mt_rejected, 0);
    assert_eq!(stats.mt_temporary_failures, u64::from(answered) - N as u64);
}

#[test]
fn mo_numbers_follow_their_ton_and_unattributable_ones_are_refused() {
    let mut config = config();
    config.numbers.country_code = Some("46".into());
    let mut s = Smsc::new(config);
    s.bind_all();
    let national = SubmitSm {
        source: SmeAddr::new(ton::NATIONAL, npi::ISDN, "700000001").unwrap(),
        destination: SmeAddr::new(ton::UNKNOWN, npi::ISDN, "1000").unwrap(),
        short_message: b"hi".to_vec(),
        ..SubmitSm::default()
    };
    s.feed(0, Pdu::new(50, Body::DeliverSm(national)));
    let [SmscEvent::Mo { token, ref message }] = s.events()[..] else {
        panic!("one MO expected")
    };
    assert_eq!(message.from.as_str(), "+46700000001");
    s.client.answer(token, MoAnswer::Accept, s.now);
    assert_eq!(s.one(0).command_status, CommandStatus::ESME_ROK);

    let empty_destination = SubmitSm {
        source: SmeAddr::new(ton::INTERNATIONAL, npi::ISDN, "46700000001").unwrap(),
        short_message: b"hi".to_vec(),
        ..SubmitSm::default()
    };
    s.feed(0, Pdu::new(51, Body::DeliverSm(empty_destination)));
    let [SmscEvent::MoUnattributable { token, side, .. }] = s.events()[..] else {
        panic!("one refusal expected")
    };
    assert_eq!(side, AddressSide::Destination);
    s.client.answer(token, MoAnswer::Refuse(side), s.now);
    let resp = s.one(0);
    assert_eq!(
        (resp.sequence_number, resp.command_status),
        (51, CommandStatus::ESME_RINVDSTADR)
    );
}
