//! Codec tests: exact wire bytes from Kannel captures, every operation, every malformed
//! case, and properties (round trips, cut-anywhere streaming, text).

use proptest::prelude::*;

use super::*;
use crate::message::{Coding, Message, Part};

fn decode_all(bytes: &[u8]) -> Vec<Decoded> {
    let mut d = Decoder::new(1024);
    d.push(bytes);
    std::iter::from_fn(|| d.poll()).collect()
}

fn decode_one(bytes: &[u8]) -> Decoded {
    let mut items = decode_all(bytes);
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0)
}

fn packet_of(bytes: &[u8]) -> Packet {
    match decode_one(bytes) {
        Decoded::Packet(p) => p,
        other => panic!("expected a packet, got {other:?}"),
    }
}

fn malformed_of(bytes: &[u8]) -> (Cimd2Error, Option<u8>, Option<u8>) {
    match decode_one(bytes) {
        Decoded::Malformed { error, op, number } => (error, op, number),
        other => panic!("expected malformed, got {other:?}"),
    }
}

fn encoded(p: &Packet, checksum: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode(p, checksum, &mut out);
    out
}

// ---- Exact bytes from the protocols doc ----

#[test]
fn login_response_with_checksum_3c() {
    let wire = b"\x0251:001\t3C\x03";
    assert_eq!(
        encoded(&Packet::new(Operation::LoginResponse, 1), true),
        wire
    );
    assert_eq!(packet_of(wire), Packet::new(Operation::LoginResponse, 1));
}

#[test]
fn bearerbox_submit_with_checksum_61() {
    let wire = b"\x0203:003\t021:4670000001\t023:12345\t056:0\t055:0\t044:0\t033:hello #1\t61\x03";
    let p = Packet::new(Operation::Submit, 3)
        .with(param::DESTINATION_ADDRESS, "4670000001")
        .with(param::ORIGINATING_ADDRESS, "12345")
        .with(param::STATUS_REPORT_REQUEST, "0")
        .with(param::REPLY_PATH, "0")
        .with(param::MORE_MESSAGES_TO_SEND, "0")
        .with(param::USER_DATA, "hello #1");
    assert_eq!(encoded(&p, true), wire);
    let d = packet_of(wire);
    assert_eq!(d, p);
    assert_eq!(d.get_str(param::DESTINATION_ADDRESS), Some("4670000001"));
    assert_eq!(d.get_u32(param::STATUS_REPORT_REQUEST), Some(0));
    let m = message_from_packet(&d).unwrap();
    assert_eq!(m.text_str(), Some("hello #1"));
    assert_eq!(m.from.as_str(), "12345");
}

#[test]
fn observed_escape_line() {
    let text = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ\"¤¡ÄÖÑÜ§¿äöñüà";
    let wire: &[u8] = b"_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,_O/_o/_A*_a*_gd_--_gf_gg_gl_go_gp_gi_gs_gt_gx_AE_ae_ss_E'_qq_ox_!!_A\"_O\"_N~_U\"_so_??_a\"_o\"_n~_u\"_a`";
    assert_eq!(encode_text(text).unwrap(), UserData::Text(wire.to_vec()));
    assert_eq!(decode_text(wire).unwrap(), text);
}

#[test]
fn extension_table_escapes() {
    let cases: [(&str, &[u8]); 10] = [
        ("{", b"_XX("),
        ("}", b"_XX)"),
        ("[", b"_XX<"),
        ("]", b"_XX>"),
        ("~", b"_XX="),
        ("\\", b"_XX/"),
        ("€", b"_XXe"),
        ("|", b"_XX_!!"),
        ("^", b"_XX_gl"),
        ("\u{0C}", b"_XX\n"),
    ];
    for (text, wire) in cases {
        assert_eq!(
            encode_text(text).unwrap(),
            UserData::Text(wire.to_vec()),
            "{text:?}"
        );
        assert_eq!(decode_text(wire).unwrap(), text);
    }
}

#[test]
fn receive_aliases_and_kannel_lossy_rules() {
    assert_eq!(decode_text(b"@$]}").unwrap(), "@$Åå");
    assert_eq!(decode_text(b"a\r\nb").unwrap(), "a\r\nb");
    assert_eq!(
        decode_text(b"_zz"),
        Err(TextError::UnknownEscape {
            offset: 0,
            escape: *b"zz"
        })
    );
    assert_eq!(decode_text_lossy(b"_zz"), "§zz");
    assert_eq!(
        decode_text(b"ab_"),
        Err(TextError::TruncatedEscape { offset: 2 })
    );
    assert_eq!(decode_text_lossy(b"ab_O"), "ab§O");
    assert_eq!(
        decode_text(b"x\xE9"),
        Err(TextError::NotGsm {
            offset: 1,
            byte: 0xE9
        })
    );
    assert_eq!(decode_text_lossy(b"x\xE9"), "x\u{FFFD}");
    // NUL is GSM 0x00, which is `@`.
    assert_eq!(decode_text(b"\0").unwrap(), "@");
    // ESC followed by a code with no extension meaning.
    assert_eq!(
        decode_text(b"_XXa"),
        Err(TextError::BadExtension { offset: 0 })
    );
    assert_eq!(decode_text_lossy(b"_XXa"), "a");
    assert_eq!(
        decode_text(b"a_XX"),
        Err(TextError::BadExtension { offset: 1 })
    );
}

// ---- Text limits and UCS-2 ----

#[test]
fn text_chooses_gsm_then_ucs2_and_reports_limits() {
    assert_eq!(encode_text("").unwrap(), UserData::Text(Vec::new()));
    let full = "a".repeat(160);
    assert_eq!(
        encode_text(&full).unwrap(),
        UserData::Text(full.clone().into_bytes())
    );
    assert_eq!(
        encode_text(&"a".repeat(161)),
        Err(TextError::TooLongGsm { septets: 161 })
    );
    // Extension characters count two septets.
    assert_eq!(
        encode_text(&"€".repeat(81)),
        Err(TextError::TooLongGsm { septets: 162 })
    );
    assert_eq!(
        encode_text("привет"),
        Ok(UserData::Binary {
            dcs: 8,
            hex: b"043F04400438043204350442".to_vec()
        })
    );
    // An astral character takes two UCS-2 units (a surrogate pair).
    let ok = format!("{}😀", "ж".repeat(68));
    assert!(matches!(encode_text(&ok), Ok(UserData::Binary { .. })));
    let too_long = format!("{}😀", "ж".repeat(69));
    assert_eq!(
        encode_text(&too_long),
        Err(TextError::TooLongUcs2 { units: 71 })
    );
    // A tab has no GSM code, so the text goes as UCS-2.
    assert!(matches!(
        encode_text("a\tb"),
        Ok(UserData::Binary { dcs: 8, .. })
    ));
}

#[test]
fn ucs2_hex_errors() {
    assert_eq!(decode_ucs2_hex(b"00e9").unwrap(), "é");
    assert_eq!(decode_ucs2_hex(b"D83DDE00").unwrap(), "😀");
    assert_eq!(decode_ucs2_hex(b"041"), Err(TextError::OddHex { len: 3 }));
    assert_eq!(
        decode_ucs2_hex(b"04G0"),
        Err(TextError::NotHex {
            offset: 2,
            byte: b'G'
        })
    );
    assert_eq!(decode_ucs2_hex(b"0041"), Ok("A".to_string()));
    assert_eq!(
        decode_ucs2_hex(b"004142"),
        Err(TextError::OddUcs2 { octets: 3 })
    );
    assert_eq!(
        decode_ucs2_hex(b"0041D83D0041"),
        Err(TextError::UnpairedSurrogate { offset: 2 })
    );
}

// ---- Operations ----

#[test]
fn operation_codes_round_trip_and_responses() {
    for code in 0..=255u8 {
        assert_eq!(Operation::from_code(code).code(), code);
    }
    for op in Operation::ALL {
        assert_eq!(Operation::from_code(op.code()), op);
        assert!(!matches!(op, Operation::Other(_)));
    }
    assert_eq!(Operation::from_code(7), Operation::Other(7));
    let pairs = [
        (Operation::Login, Operation::LoginResponse),
        (Operation::Logout, Operation::LogoutResponse),
        (Operation::Submit, Operation::SubmitResponse),
        (Operation::EnquireStatus, Operation::EnquireStatusResponse),
        (
            Operation::DeliveryRequest,
            Operation::DeliveryRequestResponse,
        ),
        (Operation::Cancel, Operation::CancelResponse),
        (Operation::Set, Operation::SetResponse),
        (Operation::Get, Operation::GetResponse),
        (Operation::DeliverMessage, Operation::DeliverMessageResponse),
        (
            Operation::DeliverStatusReport,
            Operation::DeliverStatusReportResponse,
        ),
        (Operation::Alive, Operation::AliveResponse),
    ];
    for (req, resp) in pairs {
        assert_eq!(req.response(), Some(resp));
        assert!(!req.is_response());
        assert!(resp.is_response());
        assert_eq!(resp.response(), None);
    }
    assert_eq!(Operation::GeneralError.response(), None);
    assert!(Operation::Nack.is_response());
    assert_eq!(Operation::Other(7).response(), Some(Operation::Other(57)));
}

/// A representative packet for every operation, as Kannel / test_cimd2 exchange them.
fn sample_packets() -> Vec<Packet> {
    use param::*;
    vec![
        Packet::new(Operation::Login, 1)
            .with(USER_IDENTITY, "foo")
            .with(PASSWORD, "bar"),
        Packet::new(Operation::LoginResponse, 1),
        Packet::new(Operation::Logout, 3),
        Packet::new(Operation::LogoutResponse, 3),
        Packet::new(Operation::Submit, 5)
            .with(DESTINATION_ADDRESS, "4670000001")
            .with(ORIGINATING_ADDRESS, "12345")
            .with(VALIDITY_PERIOD_RELATIVE, "167")
            .with(USER_DATA_HEADER, "0605040B8423F0")
            .with(USER_DATA_BINARY, "010262696E")
            .with(DATA_CODING_SCHEME, "21"),
        Packet::new(Operation::SubmitResponse, 5)
            .with(DESTINATION_ADDRESS, "4670000001")
            .with(SERVICE_CENTRE_TIMESTAMP, "261130074200"),
        Packet::new(Operation::EnquireStatus, 7)
            .with(DESTINATION_ADDRESS, "4670000001")
            .with(SERVICE_CENTRE_TIMESTAMP, "261130074200"),
        Packet::new(Operation::EnquireStatusResponse, 7)
            .with(DESTINATION_ADDRESS, "4670000001")
            .with(SERVICE_CENTRE_TIMESTAMP, "261130074200")
            .with(STATUS_CODE, "0"),
        Packet::new(Operation::DeliveryRequest, 9).with(DELIVERY_REQUEST_MODE, "0"),
        Packet::new(Operation::DeliveryRequestResponse, 9).with(MESSAGE_COUNT, "0"),
        Packet::new(Operation::Cancel, 11)
            .with(CANCEL_MODE, "0")
            .with(DESTINATION_ADDRESS, "123"),
        Packet::new(Operation::CancelResponse, 11),
        Packet::new(Operation::Set, 13).with(PASSWORD, "new"),
        Packet::new(Operation::SetResponse, 13),
        Packet::new(Operation::Get, 15).with(GET_PARAMETER, "501"),
        Packet::new(Operation::GetResponse, 15).with(MC_TIME, "261130074200"),
        Packet::new(Operation::DeliverMessage, 0)
            .with(DESTINATION_ADDRESS, "123")
            .with(ORIGINATING_ADDRESS, "456")
            .with(SERVICE_CENTRE_TIMESTAMP, "261130074200")
            .with(USER_DATA, "hi _Oa"),
        Packet::new(Operation::DeliverMessageResponse, 0),
        Packet::new(Operation::DeliverStatusReport, 2)
            .with(DESTINATION_ADDRESS, "123")
            .with(SERVICE_CENTRE_TIMESTAMP, "261130074200")
            .with(STATUS_CODE, "4")
            .with(DISCHARGE_TIME, "261130074205"),
        Packet::new(Operation::DeliverStatusReportResponse, 2),
        Packet::new(Operation::Alive, 17),
        Packet::new(Operation::AliveResponse, 17),
        Packet::new(Operation::GeneralError, 19)
            .with(ERROR_CODE, "1")
            .with(ERROR_TEXT, "unexpected operation"),
        Packet::new(Operation::Nack, 21),
        Packet::new(Operation::Other(7), 255).with(999, "x"),
    ]
}

#[test]
fn every_operation_round_trips_with_and_without_checksum() {
    let samples = sample_packets();
    for op in Operation::ALL {
        assert!(samples.iter().any(|p| p.op == op), "no sample for {op:?}");
    }
    for p in samples {
        for checksum in [false, true] {
            let wire = encoded(&p, checksum);
            assert_eq!(packet_of(&wire), p, "{}", String::from_utf8_lossy(&wire));
        }
    }
}

#[test]
fn unknown_and_repeated_parameters_kept_in_order() {
    let wire = b"\x0220:000\t777:a\t021:1\t777:b\t000:\t\x03";
    let p = packet_of(wire);
    let params: Vec<(u16, &[u8])> = p.params().collect();
    assert_eq!(
        params,
        vec![(777, &b"a"[..]), (21, b"1"), (777, b"b"), (0, b"")]
    );
    assert_eq!(p.get(777), Some(&b"a"[..]));
    assert_eq!(p.get(0), Some(&b""[..]));
    assert_eq!(encoded(&p, false), wire);
}

#[test]
fn error_code_and_numeric_getters() {
    let p = packet_of(b"\x0251:001\t900:100\t901:invalid login\t\x03");
    assert_eq!(p.error_code(), Some(100));
    assert_eq!(p.error_text(), Some("invalid login"));
    let p = Packet::new(Operation::Submit, 1)
        .with(50, "-1")
        .with(51, "4294967296")
        .with(52, "4294967295")
        .with(53, "");
    assert_eq!(p.get_u32(50), None);
    assert_eq!(p.get_u32(51), None);
    assert_eq!(p.get_u32(52), Some(u32::MAX));
    assert_eq!(p.get_u32(53), None);
    assert_eq!(p.error_code(), None);
    assert_eq!(
        Packet::new(Operation::Alive, 1).with_u32(61, 4).get(61),
        Some(&b"4"[..])
    );
}

#[test]
fn try_push_and_validate_refuse_reserved_bytes() {
    let mut p = Packet::new(Operation::Submit, 1);
    assert_eq!(
        p.try_push(33, "a\tb"),
        Err(Cimd2Error::ReservedByte {
            code: 33,
            byte: b'\t'
        })
    );
    assert_eq!(
        p.try_push(1000, "x"),
        Err(Cimd2Error::ParameterCode { code: 1000 })
    );
    assert_eq!(p.param_count(), 0);
    p.push(33, b"\x02");
    assert_eq!(
        p.validate(),
        Err(Cimd2Error::ReservedByte { code: 33, byte: 2 })
    );
}

// ---- Malformed packets ----

#[test]
fn malformed_headers() {
    type Case = (&'static [u8], Cimd2Error, Option<u8>, Option<u8>);
    let cases: [Case; 8] = [
        (b"\x02\x03", Cimd2Error::BadHeader { offset: 0 }, None, None),
        (
            b"\x02X3:001\t\x03",
            Cimd2Error::BadHeader { offset: 1 },
            None,
            Some(1),
        ),
        (
            b"\x0203-001\t\x03",
            Cimd2Error::BadHeader { offset: 3 },
            Some(3),
            None,
        ),
        (
            b"\x0203:0x1\t\x03",
            Cimd2Error::BadHeader { offset: 4 },
            Some(3),
            None,
        ),
        (
            b"\x0203:256\t\x03",
            Cimd2Error::NumberOutOfRange {
                offset: 4,
                value: 256,
            },
            Some(3),
            None,
        ),
        (
            b"\x0203:001 \x03",
            Cimd2Error::BadHeader { offset: 7 },
            Some(3),
            Some(1),
        ),
        (
            b"\x0203:001\x03",
            Cimd2Error::BadHeader { offset: 0 },
            Some(3),
            Some(1),
        ),
        (
            b"\x0203:00\x03",
            Cimd2Error::BadHeader { offset: 0 },
            Some(3),
            None,
        ),
    ];
    for (wire, error, op, number) in cases {
        assert_eq!(malformed_of(wire), (error, op, number), "{wire:?}");
    }
}

#[test]
fn malformed_parameters_and_trailers() {
    let cases: [(&[u8], Cimd2Error); 7] = [
        (
            b"\x0203:001\t21:x\t\x03",
            Cimd2Error::BadParameter { offset: 8 },
        ),
        (
            b"\x0203:001\t021x\t\x03",
            Cimd2Error::BadParameter { offset: 8 },
        ),
        (
            b"\x0203:001\t021:1\tabc:2\t\x03",
            Cimd2Error::BadParameter { offset: 14 },
        ),
        (
            b"\x0203:001\t\t\x03",
            Cimd2Error::BadParameter { offset: 8 },
        ),
        (
            b"\x0203:001\t021:1\t6\x03",
            Cimd2Error::BadTrailer { offset: 14 },
        ),
        (
            b"\x0203:001\t021:1\t6G\x03",
            Cimd2Error::BadTrailer { offset: 14 },
        ),
        (
            b"\x0203:001\t021:1\t021:2\x03",
            Cimd2Error::BadTrailer { offset: 14 },
        ),
    ];
    for (wire, error) in cases {
        assert_eq!(malformed_of(wire), (error, Some(3), Some(1)), "{wire:?}");
    }
}

#[test]
fn checksum_mismatch_is_reported_unless_verification_is_off() {
    let wire = b"\x0251:001\t3D\x03";
    assert_eq!(
        malformed_of(wire),
        (
            Cimd2Error::Checksum {
                received: 0x3D,
                computed: 0x3C
            },
            Some(51),
            Some(1)
        )
    );
    // Lowercase hex is read too.
    assert_eq!(
        packet_of(b"\x0251:001\t3c\x03").op,
        Operation::LoginResponse
    );
    let mut d = Decoder::new(64);
    d.set_verify_checksum(false);
    d.push(wire);
    assert_eq!(
        d.poll(),
        Some(Decoded::Packet(Packet::new(Operation::LoginResponse, 1)))
    );
}

#[test]
fn second_stx_means_missing_etx_then_resync() {
    let items = decode_all(b"\x0203:005\t021:12\x0240:007\t\x03");
    assert_eq!(
        items,
        vec![
            Decoded::Malformed {
                error: Cimd2Error::MissingEtx { offset: 14 },
                op: Some(3),
                number: Some(5)
            },
            Decoded::Packet(Packet::new(Operation::Alive, 7)),
        ]
    );
}

#[test]
fn garbage_is_skipped_and_counted() {
    let items = decode_all(b"\r\nxx\x03\x0240:001\t\x03junk\x0240:003\t\x03tail");
    assert_eq!(
        items,
        vec![
            Decoded::Skipped(5),
            Decoded::Packet(Packet::new(Operation::Alive, 1)),
            Decoded::Skipped(4),
            Decoded::Packet(Packet::new(Operation::Alive, 3)),
        ]
    );
}

#[test]
fn too_long_packet_is_reported_and_its_tail_dropped() {
    let mut long = b"\x0203:009\t033:".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100));
    long.extend_from_slice(b"\t\x03\x0240:011\t\x03");
    let expected = vec![
        Decoded::Malformed {
            error: Cimd2Error::TooLong { max: 64 },
            op: Some(3),
            number: Some(9),
        },
        Decoded::Packet(Packet::new(Operation::Alive, 11)),
    ];
    // All at once, and byte by byte (where the tail is dropped as it arrives).
    let mut d = Decoder::new(64);
    d.push(&long);
    assert_eq!(
        std::iter::from_fn(|| d.poll()).collect::<Vec<_>>(),
        expected
    );
    let mut d = Decoder::new(64);
    let mut items = Vec::new();
    for b in &long {
        d.push(std::slice::from_ref(b));
        items.extend(std::iter::from_fn(|| d.poll()));
        assert!(d.buffered() <= 64);
    }
    assert_eq!(items, expected);
}

#[test]
fn packet_of_exactly_max_length_is_accepted() {
    let p = Packet::new(Operation::Submit, 1).with(33, "x".repeat(20));
    let wire = encoded(&p, true);
    let mut d = Decoder::new(wire.len());
    d.push(&wire);
    assert_eq!(d.poll(), Some(Decoded::Packet(p)));
    let mut d = Decoder::new(wire.len() - 1);
    d.push(&wire);
    assert!(matches!(
        d.poll(),
        Some(Decoded::Malformed {
            error: Cimd2Error::TooLong { .. },
            ..
        })
    ));
}

#[test]
fn memory_stays_bounded_without_stx_or_etx() {
    let mut d = Decoder::new(256);
    for _ in 0..100 {
        d.push(&[b'x'; 1000]);
        while d.poll().is_some() {}
        assert_eq!(d.buffered(), 0);
    }
    d.push(b"\x02");
    assert_eq!(d.poll(), Some(Decoded::Skipped(100_000)));
    for _ in 0..100 {
        d.push(&[b'y'; 1000]);
        while d.poll().is_some() {}
        assert!(d.buffered() <= 256);
    }
}

#[test]
fn every_two_cut_split_of_a_mixed_stream_decodes_the_same() {
    let mut stream = b"\r\n".to_vec();
    stream.extend_from_slice(
        b"\x0203:003\t021:4670000001\t023:12345\t056:0\t055:0\t044:0\t033:hello #1\t61\x03",
    );
    stream.extend_from_slice(b"zz\x0203:005\t021:1");
    stream.extend_from_slice(b"\x0251:001\t3C\x03\x0251:001\t3D\x03");
    // With 64 the submit is too long; with 128 it decodes.
    for (max, packets) in [(64, 1), (128, 2)] {
        let whole = decode_in_pieces(&stream, &[], max);
        assert_eq!(whole.len(), 6, "{whole:?}");
        let decoded = whole
            .iter()
            .filter(|d| matches!(d, Decoded::Packet(_)))
            .count();
        assert_eq!(decoded, packets);
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                assert_eq!(
                    decode_in_pieces(&stream, &[i, j], max),
                    whole,
                    "cuts {i} {j}"
                );
            }
        }
    }
}

// ---- Message conversion ----

#[test]
fn submit_packet_text_gsm() {
    let m = Message::text("12345", "+4670000001", "Hi @ \"you\"").unwrap();
    let p = submit_packet(&m, 3).unwrap();
    assert_eq!(
        encoded(&p, false),
        b"\x0203:003\t021:+4670000001\t023:12345\t033:Hi _Oa _qqyou_qq\t\x03"
    );
    assert_eq!(message_from_packet(&p).unwrap(), m);
}

#[test]
fn submit_packet_ucs2_alphanumeric_sender() {
    let m = Message::text("Shop", "123", "Ж").unwrap();
    let p = submit_packet(&m, 5).unwrap();
    assert_eq!(
        encoded(&p, false),
        b"\x0203:005\t021:123\t027:Shop\t034:0416\t030:8\t\x03"
    );
    assert_eq!(message_from_packet(&p).unwrap(), m);
}

#[test]
fn submit_packet_binary_uses_8bit_dcs() {
    let m = Message::binary("1", "2", &[0x00, 0xAB, 0xff]).unwrap();
    let p = submit_packet(&m, 7).unwrap();
    assert_eq!(
        encoded(&p, false),
        b"\x0203:007\t021:2\t023:1\t034:00ABFF\t030:4\t\x03"
    );
    assert_eq!(message_from_packet(&p).unwrap(), m);
}

#[test]
fn deliver_packet_takes_a_timestamp_from_the_caller() {
    let m = Message::text("456", "123", "1").unwrap();
    let p = deliver_packet(&m, 0)
        .unwrap()
        .with(param::SERVICE_CENTRE_TIMESTAMP, "261130074200");
    assert_eq!(
        encoded(&p, false),
        b"\x0220:000\t021:123\t023:456\t033:1\t060:261130074200\t\x03"
    );
    assert_eq!(message_from_packet(&p).unwrap(), m);
}

#[test]
fn conversion_errors() {
    let no_to = Message::text("1", "", "x").unwrap();
    assert_eq!(
        submit_packet(&no_to, 1),
        Err(Cimd2Error::MissingParameter { code: 21 })
    );
    let bad_to = Message::text("1", "12ab", "x").unwrap();
    assert!(matches!(
        submit_packet(&bad_to, 1),
        Err(Cimd2Error::InvalidParameter { code: 21, .. })
    ));
    let long_from = Message::text("abcdefghijkl", "1", "x").unwrap();
    assert!(matches!(
        submit_packet(&long_from, 1),
        Err(Cimd2Error::InvalidParameter { code: 27, .. })
    ));
    let long_text = Message::text("1", "2", &"x".repeat(161)).unwrap();
    assert_eq!(
        submit_packet(&long_text, 1),
        Err(Cimd2Error::Text {
            code: 33,
            source: TextError::TooLongGsm { septets: 161 }
        })
    );
    let long_bin = Message::binary("1", "2", &[0; 141]).unwrap();
    assert_eq!(
        submit_packet(&long_bin, 1),
        Err(Cimd2Error::Text {
            code: 34,
            source: TextError::TooLongBinary { octets: 141 }
        })
    );
    assert!(matches!(
        message_from_packet(&Packet::new(Operation::Alive, 1)),
        Err(Cimd2Error::UnexpectedOperation { op: 40, .. })
    ));
    let bad_dcs = Packet::new(Operation::DeliverMessage, 0).with(30, "256");
    assert!(matches!(
        message_from_packet(&bad_dcs),
        Err(Cimd2Error::InvalidParameter { code: 30, .. })
    ));
    let bad_hex = Packet::new(Operation::DeliverMessage, 0).with(34, "0G");
    assert_eq!(
        message_from_packet(&bad_hex),
        Err(Cimd2Error::Text {
            code: 34,
            source: TextError::NotHex {
                offset: 1,
                byte: b'G'
            }
        })
    );
}

#[test]
fn deliver_with_a_concatenation_udh_is_a_part_and_other_udh_becomes_binary() {
    let p = Packet::new(Operation::DeliverMessage, 2)
        .with(param::DESTINATION_ADDRESS, "123")
        .with(param::ORIGINATING_ADDRESS, "456")
        .with(param::USER_DATA_HEADER, "050003010201")
        .with(param::USER_DATA, "a_Oa");
    let m = message_from_packet(&p).unwrap();
    assert_eq!(m.text_str(), Some("a@"));
    assert_eq!(m.part, Some(Part::new(1, 2, 1).unwrap()));
    // 16-bit reference, UCS-2 text.
    let p = Packet::new(Operation::DeliverMessage, 4)
        .with(param::USER_DATA_HEADER, "0608040102030")
        .with(param::USER_DATA_BINARY, "00E9")
        .with(param::DATA_CODING_SCHEME, "8");
    assert!(
        message_from_packet(&p).is_err(),
        "odd hex is still an error"
    );
    let p = Packet::new(Operation::DeliverMessage, 4)
        .with(param::USER_DATA_HEADER, "06080401020302")
        .with(param::USER_DATA_BINARY, "00E9")
        .with(param::DATA_CODING_SCHEME, "8");
    let m = message_from_packet(&p).unwrap();
    assert_eq!(m.text_str(), Some("é"));
    assert_eq!(m.part, Some(Part::new(0x0102, 3, 2).unwrap()));
    // An invalid concatenation element (part 3 of 2): a single SM, as it came.
    let p = Packet::new(Operation::DeliverMessage, 2)
        .with(param::USER_DATA_HEADER, "050003010203")
        .with(param::USER_DATA, "a_Oa");
    let m = message_from_packet(&p).unwrap();
    assert_eq!(m.part, None);
    assert_eq!(m.coding, Coding::Binary);
    assert_eq!(m.payload(), &[5, 0, 3, 1, 2, 3, b'a', 0x00]);
    let p = Packet::new(Operation::Submit, 1)
        .with(param::USER_DATA_HEADER, "0605040B8423F0")
        .with(param::USER_DATA_BINARY, "010262696E")
        .with(param::DATA_CODING_SCHEME, "21");
    let m = message_from_packet(&p).unwrap();
    assert_eq!(m.coding, Coding::Binary);
    assert_eq!(
        m.payload(),
        &[0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x01, 0x02, 0x62, 0x69, 0x6E]
    );
    // test_cimd2's random MO: arbitrary bytes in 033, read the way Kannel reads them.
    let p = Packet::new(Operation::DeliverMessage, 4).with(param::USER_DATA, b"\0\xFF_zz");
    assert_eq!(
        message_from_packet(&p).unwrap().text_str(),
        Some("@\u{FFFD}§zz")
    );
}

// ---- Properties ----

fn arb_op() -> impl Strategy<Value = Operation> {
    prop_oneof![
        proptest::sample::select(Operation::ALL.to_vec()),
        (0u8..100).prop_map(Operation::from_code),
    ]
}

fn arb_value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("reserved", |b| ![2, 3, 9].contains(b)),
        0..40,
    )
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (
        arb_op(),
        any::<u8>(),
        proptest::collection::vec((0u16..1000, arb_value()), 0..8),
    )
        .prop_map(|(op, number, params)| {
            params
                .into_iter()
                .fold(Packet::new(op, number), |p, (code, v)| p.with(code, v))
        })
}

/// A stream of packets, garbage (never STX) and broken frames.
fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
    let chunk = prop_oneof![
        4 => (arb_packet(), any::<bool>()).prop_map(|(p, c)| encoded(&p, c)),
        1 => proptest::collection::vec(any::<u8>().prop_filter("stx", |b| *b != 2), 0..12),
        1 => (arb_packet(), any::<bool>(), any::<prop::sample::Index>()).prop_map(|(p, c, i)| {
            let mut w = encoded(&p, c);
            let cut = i.index(w.len());
            w.truncate(cut.max(1));
            w
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(chunk, 0..8).prop_map(|c| c.concat())
}

fn decode_in_pieces(stream: &[u8], cuts: &[usize], max: usize) -> Vec<Decoded> {
    let mut d = Decoder::new(max);
    let mut items = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(at, stream.len());
        d.push(&stream[at..cut]);
        at = cut;
        while let Some(item) = d.poll() {
            items.push(item);
        }
        assert!(d.buffered() <= max);
    }
    items
}

fn gsm_char() -> impl Strategy<Value = char> {
    proptest::sample::select(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCXYZÄÖÑÜ§¿abcxyzäöñüà\u{0C}^{}\\[~]|€"
            .chars()
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_encode_decode_round_trip(p in arb_packet(), checksum in any::<bool>()) {
        let wire = encoded(&p, checksum);
        prop_assert_eq!(decode_one(&wire), Decoded::Packet(p));
    }

    #[test]
    fn prop_streaming_is_independent_of_cuts(
        stream in arb_stream(),
        mut cuts in proptest::collection::vec(0usize..400, 0..12),
        max in 11usize..300,
    ) {
        cuts.sort_unstable();
        let whole = decode_in_pieces(&stream, &[], max);
        prop_assert_eq!(&decode_in_pieces(&stream, &cuts, max), &whole);
        let every_byte: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&decode_in_pieces(&stream, &every_byte, max), &whole);
    }

    #[test]
    fn prop_valid_packets_survive_garbage_between_them(
        packets in proptest::collection::vec(arb_packet(), 1..6),
        garbage in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("stx", |b| *b != 2), 0..10), 6),
    ) {
        let mut stream = Vec::new();
        for (p, g) in packets.iter().zip(&garbage) {
            stream.extend_from_slice(g);
            encode(p, true, &mut stream);
        }
        let got: Vec<Packet> = decode_all(&stream)
            .into_iter()
            .filter_map(|d| match d { Decoded::Packet(p) => Some(p), _ => None })
            .collect();
        prop_assert_eq!(got, packets);
    }

    #[test]
    fn prop_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let items = decode_in_pieces(&bytes, &[1, 7, 64], 128);
        // Every byte is accounted for at most once.
        let skipped: usize = items.iter().map(|d| match d { Decoded::Skipped(n) => *n, _ => 0 }).sum();
        prop_assert!(skipped <= bytes.len());
        let _ = decode_text_lossy(&bytes);
        let _ = decode_text(&bytes);
        let _ = decode_ucs2_hex(&bytes);
    }

    #[test]
    fn prop_text_round_trip_any_unicode(text in "\\PC{0,80}") {
        match encode_text(&text) {
            Ok(UserData::Text(v)) => prop_assert_eq!(decode_text(&v).unwrap(), text),
            Ok(UserData::Binary { dcs, hex }) => {
                prop_assert_eq!(dcs, 8);
                prop_assert!(hex.iter().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)));
                prop_assert_eq!(decode_ucs2_hex(&hex).unwrap(), text);
            }
            Err(TextError::TooLongUcs2 { units }) => prop_assert!(units > 70),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn prop_text_round_trip_gsm(chars in proptest::collection::vec(gsm_char(), 0..200)) {
        let text: String = chars.into_iter().collect();
        match encode_text(&text) {
            Ok(UserData::Text(v)) => {
                prop_assert!(!v.iter().any(|b| [2, 3, 9].contains(b) || *b >= 0x80));
                prop_assert_eq!(decode_text(&v).unwrap(), text);
            }
            Err(TextError::TooLongGsm { septets }) => prop_assert!(septets > 160),
            other => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn prop_message_round_trip(
        text in "\\PC{0,60}",
        from in "[0-9]{0,20}|[A-Za-z][A-Za-z0-9]{0,10}",
        to in "\\+?[0-9]{1,19}",
        deliver in any::<bool>(),
    ) {
        let m = Message::text(&from, &to, &text).unwrap();
        let p = if deliver { deliver_packet(&m, 0) } else { submit_packet(&m, 1) };
        match p {
            Ok(p) => {
                let wire = encoded(&p, true);
                let Decoded::Packet(back) = decode_one(&wire) else { panic!("not a packet") };
                prop_assert_eq!(message_from_packet(&back).unwrap(), m);
            }
            // The addresses always fit, and 60 characters always fit GSM 03.38 (at most
            // 120 septets), but not always UCS-2: outside the BMP a character takes two
            // units. That is the one refusal allowed.
            Err(Cimd2Error::Text {
                code: param::USER_DATA,
                source: TextError::TooLongUcs2 { units },
            }) => {
                prop_assert!(units > 70, "refused {} units", units);
                prop_assert_eq!(units, text.encode_utf16().count());
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
