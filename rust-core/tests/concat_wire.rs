//! Long messages on the wire: a text split by `sms::concat`, each part written as
//! CIMD2 or SMPP bytes the way the buffer server submits it and read back the way an
//! MO is read, then joined again from parts arriving in any order and repeated.

use proptest::prelude::*;
use smslink::cimd2::{self, param};
use smslink::message::{Message, Part};
use smslink::smpp::{self, Body, Pdu, TextConfig, Tlv};
use smslink::sms::concat::{split_text, Chunk, LongMessages, RefWidth};

/// The part messages the bridge submits for `text` (reference 200 or 0x1234).
fn parts(text: &str, width: RefWidth) -> Vec<Message> {
    let split = split_text(text, width).unwrap();
    let reference = match width {
        RefWidth::Eight => 200,
        RefWidth::Sixteen => 0x1234,
    };
    let total = split.total() as u8;
    split
        .chunks
        .iter()
        .zip(1u8..)
        .map(|(chunk, index)| {
            let Chunk::Text(t) = chunk else {
                panic!("octets from a text")
            };
            let mut m = Message::text("+4670000001", "+4670000002", t).unwrap();
            if total > 1 {
                m.part = Some(Part::new(reference, total, index).unwrap());
            }
            m
        })
        .collect()
}

fn via_cimd2(m: &Message) -> Message {
    let p = cimd2::submit_packet(m, 3).unwrap();
    let mut wire = Vec::new();
    cimd2::encode(&p, true, &mut wire);
    let back = cimd2::parse_frame(&wire, true).unwrap();
    // The 140 octets of one SMS hold the header and the user data.
    let udh = back.get(param::USER_DATA_HEADER).map_or(0, |h| h.len() / 2);
    if let Some(hex) = back.get(param::USER_DATA_BINARY) {
        assert!(udh + hex.len() / 2 <= 140);
    }
    cimd2::message_from_packet(&back).unwrap()
}

fn via_smpp(m: &Message, text: &TextConfig, long: LongMessages) -> Message {
    let sm = smpp::submit_sm_long(m, text, long).unwrap();
    assert!(sm.short_message.len() <= 140 || !text.gsm_packed && sm.data_coding == 0);
    let mut wire = Vec::new();
    smpp::encode(&Pdu::new(7, Body::SubmitSm(sm)), &mut wire).unwrap();
    let Body::SubmitSm(back) = smpp::decode_frame(&wire).unwrap().body else {
        panic!("not a submit_sm")
    };
    smpp::message_from_sm(&back, text).unwrap()
}

/// Join parts that arrived in any order and possibly twice.
fn join(arrived: &[Message]) -> String {
    let first = arrived[0].part;
    let Some(first) = first else {
        assert_eq!(
            arrived.iter().filter(|m| m.part.is_none()).count(),
            arrived.len()
        );
        return arrived[0].text_str().unwrap().to_owned();
    };
    let mut slots: Vec<Option<&str>> = vec![None; usize::from(first.total)];
    for m in arrived {
        let p = m.part.expect("every part carries its header");
        assert_eq!((p.reference, p.total), (first.reference, first.total));
        slots[usize::from(p.index) - 1] = m.text_str();
    }
    slots
        .into_iter()
        .map(|s| s.expect("a part is missing"))
        .collect()
}

fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => prop::sample::select(vec!['€', '{', '@', '_', '"', 'é', 'Δ', '\n', '$', ']']),
        1 => prop::sample::select(vec!['ж', '😀']),
    ];
    prop::collection::vec(c, 0..800).prop_map(|v| v.into_iter().collect())
}

/// Every part in a shuffled order, some twice.
fn arrival(n: usize) -> impl Strategy<Value = Vec<usize>> {
    (
        Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec(0..n, 0..3),
    )
        .prop_map(|(mut order, repeats)| {
            order.extend(repeats);
            order
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cimd2_parts_join_back_to_the_text(
        // Sixteen gives at least as many parts as Eight: indices beyond are dropped.
        (text, order) in text().prop_flat_map(|t| {
            let n = split_text(&t, RefWidth::Sixteen).unwrap().total();
            (Just(t), arrival(n))
        }),
        wide in any::<bool>(),
    ) {
        let width = if wide { RefWidth::Sixteen } else { RefWidth::Eight };
        let sent = parts(&text, width);
        let received: Vec<Message> = sent.iter().map(via_cimd2).collect();
        let order: Vec<usize> = order.into_iter().filter(|&i| i < received.len()).collect();
        let arrived: Vec<Message> = order.iter().map(|&i| received[i].clone()).collect();
        prop_assert_eq!(join(&arrived), text);
    }

    #[test]
    fn smpp_parts_join_back_to_the_text_in_every_mode(
        (text, order) in text().prop_flat_map(|t| {
            let n = split_text(&t, RefWidth::Sixteen).unwrap().total();
            (Just(t), arrival(n))
        }),
        packed in any::<bool>(),
        sar in any::<bool>(),
    ) {
        let config = TextConfig { gsm_packed: packed };
        let long = if sar { LongMessages::Sar } else { LongMessages::Udh(RefWidth::Sixteen) };
        let sent = parts(&text, RefWidth::Sixteen);
        let received: Vec<Message> = sent.iter().map(|m| via_smpp(m, &config, long)).collect();
        let arrived: Vec<Message> = order.iter().map(|&i| received[i].clone()).collect();
        prop_assert_eq!(join(&arrived), text);
    }
}

#[test]
fn cimd2_part_has_its_header_in_032_and_text_in_033() {
    let text = "x".repeat(200);
    let sent = parts(&text, RefWidth::Eight);
    assert_eq!(sent.len(), 2);
    let p = cimd2::submit_packet(&sent[0], 3).unwrap();
    assert_eq!(p.get(param::USER_DATA_HEADER), Some(&b"050003C80201"[..]));
    assert_eq!(p.get(param::USER_DATA).map(<[u8]>::len), Some(153));
    // A part whose text would overflow the 140 octets beside its header is refused.
    let mut too_long = sent[0].clone();
    too_long.set_payload("x".repeat(154).as_bytes()).unwrap();
    assert!(cimd2::submit_packet(&too_long, 3).is_err());
    // UCS-2: 034 with 030:8; 67 characters of two octets beside 6 header octets.
    let sent = parts(&"ж".repeat(100), RefWidth::Eight);
    let p = cimd2::submit_packet(&sent[0], 5).unwrap();
    assert_eq!(
        p.get(param::USER_DATA_BINARY).map(<[u8]>::len),
        Some(67 * 4)
    );
    assert_eq!(p.get(param::DATA_CODING_SCHEME), Some(&b"8"[..]));
}

#[test]
fn smpp_part_modes_on_the_wire() {
    let text = "y".repeat(200);
    let sent = parts(&text, RefWidth::Eight);
    let config = TextConfig::default();
    let sm = smpp::submit_sm_long(&sent[1], &config, LongMessages::default()).unwrap();
    assert_eq!(sm.esm_class & 0x40, 0x40);
    assert_eq!(&sm.short_message[..6], &[5, 0, 3, 200, 2, 2]);
    assert_eq!(&sm.short_message[6..], "y".repeat(47).as_bytes());

    let sm = smpp::submit_sm_long(&sent[1], &config, LongMessages::Sar).unwrap();
    assert_eq!(sm.esm_class & 0x40, 0);
    assert_eq!(sm.short_message, "y".repeat(47).as_bytes());
    assert_eq!(
        sm.tlvs
            .sar()
            .map(|s| (s.msg_ref_num, s.total_segments, s.segment_seqnum)),
        Some((200, 2, 2))
    );

    // Whole: one submit_sm, the text in message_payload, short_message empty.
    let whole = Message::text("1", "2", &text).unwrap();
    let sm = smpp::submit_sm_long(&whole, &config, LongMessages::Whole).unwrap();
    assert!(sm.short_message.is_empty());
    assert_eq!(sm.tlvs.message_payload(), Some(text.as_bytes()));
    assert!(matches!(sm.tlvs.0[..], [Tlv::MessagePayload(_)]));
    let back = smpp::message_from_sm(&sm, &config).unwrap();
    assert_eq!(back.text_str(), Some(text.as_str()));
    // A short one stays in short_message.
    let short = Message::text("1", "2", "hi").unwrap();
    let sm = smpp::submit_sm_long(&short, &config, LongMessages::Whole).unwrap();
    assert_eq!(sm.short_message, b"hi");
    // Without Whole, a long message that was not split is refused.
    assert!(smpp::submit_sm_long(&whole, &config, LongMessages::default()).is_err());
    let binary = Message::binary("1", "2", &[9; 300]).unwrap();
    assert_eq!(
        smpp::submit_sm_long(&binary, &config, LongMessages::Whole)
            .unwrap()
            .tlvs
            .message_payload()
            .map(<[u8]>::len),
        Some(300)
    );
}
