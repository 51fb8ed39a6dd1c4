//! Codec tests against byte vectors written by hand from the SMPP 3.4 layouts
//! (section 4), every malformed case the decoder must type, the status table, and the
//! `Message` conversions. Properties (round trips, cut-anywhere streaming) are in
//! tests/smpp_codec.rs.

use super::*;
use crate::message::{Coding, Message, Part};

/// Concatenate wire pieces.
fn wire(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn encoded(pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    encode(pdu, &mut out).expect("encodable");
    out
}

/// Encode `pdu`, compare with `bytes`, and decode `bytes` back to `pdu`.
fn assert_wire(pdu: &Pdu, bytes: &[u8]) {
    assert_eq!(encoded(pdu), bytes, "encoding of {pdu:?}");
    assert_eq!(decode_frame(bytes).as_ref(), Ok(pdu), "decoding");
    assert_eq!(encoded_len(pdu), Ok(bytes.len()));
    let header = pdu.header().unwrap();
    assert_eq!(header.command_length as usize, bytes.len());
    assert_eq!(Header::parse(bytes), Some(header));
}

fn body_error(bytes: &[u8]) -> (Header, SmppError) {
    match decode_frame(bytes) {
        Err(DecodeError::Body { header, error }) => (header, error),
        other => panic!("expected a body error, got {other:?}"),
    }
}

fn s<const N: usize>(v: &str) -> COctetString<N> {
    COctetString::new(v).unwrap()
}

fn a21(ton: u8, npi: u8, v: &str) -> SmeAddr<21> {
    SmeAddr::new(ton, npi, v).unwrap()
}

// ---- Hand-written vectors, one per PDU ----

#[test]
fn bodyless_pdus() {
    let cases: [(Body, [u8; 4]); 8] = [
        (Body::EnquireLink, [0x00, 0x00, 0x00, 0x15]),
        (Body::EnquireLinkResp, [0x80, 0x00, 0x00, 0x15]),
        (Body::Unbind, [0x00, 0x00, 0x00, 0x06]),
        (Body::UnbindResp, [0x80, 0x00, 0x00, 0x06]),
        (Body::GenericNack, [0x80, 0x00, 0x00, 0x00]),
        (Body::CancelSmResp, [0x80, 0x00, 0x00, 0x08]),
        (Body::ReplaceSmResp, [0x80, 0x00, 0x00, 0x07]),
        (Body::EnquireLink, [0x00, 0x00, 0x00, 0x15]),
    ];
    for (body, id) in cases {
        let pdu = Pdu::new(0x0102_0304, body);
        assert_wire(
            &pdu,
            &wire(&[&[0, 0, 0, 0x10], &id, &[0, 0, 0, 0], &[1, 2, 3, 4]]),
        );
    }
    let nack = Pdu::response(7, CommandStatus::ESME_RINVCMDID, Body::GenericNack);
    assert_wire(
        &nack,
        &[0, 0, 0, 0x10, 0x80, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 7],
    );
}

#[test]
fn bind_transmitter_receiver_transceiver() {
    let bind = Bind {
        system_id: s("smppclient1"),
        password: s("password"),
        system_type: s(""),
        interface_version: INTERFACE_VERSION_34,
        address_range: SmeAddr::default(),
    };
    let body: &[u8] = b"smppclient1\0password\0\0\x34\0\0\0";
    for (make, id) in [
        (Body::BindTransmitter as fn(Bind) -> Body, 0x02u8),
        (Body::BindReceiver, 0x01),
        (Body::BindTransceiver, 0x09),
    ] {
        assert_wire(
            &Pdu::new(1, make(bind.clone())),
            &wire(&[&[0, 0, 0, 0x2A, 0, 0, 0, id], &[0; 4], &[0, 0, 0, 1], body]),
        );
    }
}

#[test]
fn bind_resp_with_and_without_sc_interface_version() {
    let plain = Pdu::new(
        1,
        Body::BindTransmitterResp(BindResp {
            system_id: s("SMSC"),
            tlvs: Tlvs::new(),
        }),
    );
    assert_wire(
        &plain,
        &wire(&[
            &[0, 0, 0, 0x15, 0x80, 0, 0, 0x02],
            &[0; 4],
            &[0, 0, 0, 1],
            b"SMSC\0",
        ]),
    );
    let with_tlv = Pdu::new(
        1,
        Body::BindTransceiverResp(BindResp {
            system_id: s("SMSC"),
            tlvs: Tlvs::new().with(Tlv::ScInterfaceVersion(0x34)),
        }),
    );
    assert_wire(
        &with_tlv,
        &wire(&[
            &[0, 0, 0, 0x1A, 0x80, 0, 0, 0x09],
            &[0; 4],
            &[0, 0, 0, 1],
            b"SMSC\0",
            &[0x02, 0x10, 0x00, 0x01, 0x34],
        ]),
    );
    // drive_smpp answers with an empty system_id.
    let empty = Pdu::new(2, Body::BindReceiverResp(BindResp::default()));
    assert_wire(
        &empty,
        &[0, 0, 0, 0x11, 0x80, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 2, 0],
    );
}

#[test]
fn error_responses_have_no_body() {
    let refused = Pdu::response(
        1,
        CommandStatus::ESME_RINVPASWD,
        Body::BindTransmitterResp(BindResp::default()),
    );
    assert_wire(
        &refused,
        &[0, 0, 0, 0x10, 0x80, 0, 0, 0x02, 0, 0, 0, 0x0E, 0, 0, 0, 1],
    );
    let throttled = Pdu::response(
        9,
        CommandStatus::ESME_RTHROTTLED,
        Body::SubmitSmResp(SubmitSmResp::default()),
    );
    assert_wire(
        &throttled,
        &[0, 0, 0, 0x10, 0x80, 0, 0, 0x04, 0, 0, 0, 0x58, 0, 0, 0, 9],
    );
    // Some SMSCs still send the system_id with an error: it is kept.
    let with_id = Pdu::response(
        1,
        CommandStatus::ESME_RBINDFAIL,
        Body::BindTransmitterResp(BindResp {
            system_id: s("SMSC"),
            tlvs: Tlvs::new(),
        }),
    );
    assert_eq!(encoded(&with_id).len(), 21);
}

#[test]
fn submit_sm_hello() {
    let sm = SubmitSm {
        source: a21(ton::INTERNATIONAL, npi::ISDN, "447700900123"),
        destination: a21(ton::INTERNATIONAL, npi::ISDN, "447700900456"),
        registered_delivery: registered_delivery::RECEIPT_ALWAYS,
        short_message: b"Hello".to_vec(),
        ..SubmitSm::default()
    };
    let bytes = wire(&[
        &[0, 0, 0, 0x3E, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0x2A],
        b"\0",
        b"\x01\x01447700900123\0",
        b"\x01\x01447700900456\0",
        &[0, 0, 0],
        b"\0\0",
        &[1, 0, 0, 0],
        b"\x05Hello",
    ]);
    assert_wire(&Pdu::new(42, Body::SubmitSm(sm)), &bytes);
}

#[test]
fn submit_sm_resp_and_deliver_sm_resp() {
    let resp = Pdu::new(
        2,
        Body::SubmitSmResp(SubmitSmResp {
            message_id: s("abc123"),
            tlvs: Tlvs::new(),
        }),
    );
    assert_wire(
        &resp,
        &wire(&[
            &[0, 0, 0, 0x17, 0x80, 0, 0, 0x04],
            &[0; 4],
            &[0, 0, 0, 2],
            b"abc123\0",
        ]),
    );
    let ack = Pdu::new(3, Body::DeliverSmResp(DeliverSmResp::default()));
    assert_wire(
        &ack,
        &[0, 0, 0, 0x11, 0x80, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 3, 0],
    );
}

#[test]
fn deliver_sm_receipt_with_tlvs() {
    let receipt = DeliverSm {
        source: a21(ton::INTERNATIONAL, npi::ISDN, "447700900456"),
        destination: a21(ton::UNKNOWN, npi::ISDN, "12345"),
        esm_class: esm_class::SMSC_DELIVERY_RECEIPT,
        tlvs: Tlvs(vec![
            Tlv::ReceiptedMessageId(s("abc123")),
            Tlv::MessageState(message_state::DELIVERED),
        ]),
        ..DeliverSm::default()
    };
    let bytes = wire(&[
        &[0, 0, 0, 0x42, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 5],
        b"\0",
        b"\x01\x01447700900456\0",
        b"\x00\x0112345\0",
        &[0x04, 0, 0],
        b"\0\0",
        &[0, 0, 0, 0],
        &[0],
        &[0x00, 0x1E, 0x00, 0x07],
        b"abc123\0",
        &[0x04, 0x27, 0x00, 0x01, 0x02],
    ]);
    let pdu = Pdu::new(5, Body::DeliverSm(receipt));
    assert_wire(&pdu, &bytes);
    let Body::DeliverSm(d) = decode_frame(&bytes).unwrap().body else {
        panic!("not a deliver_sm");
    };
    assert!(d.is_delivery_receipt());
    assert_eq!(d.tlvs.receipted_message_id(), Some(&b"abc123"[..]));
    assert_eq!(d.tlvs.message_state(), Some(message_state::DELIVERED));
}

#[test]
fn data_sm_and_resp() {
    let data = DataSm {
        source: SmeAddr::new(ton::ALPHANUMERIC, npi::UNKNOWN, "Acme").unwrap(),
        destination: SmeAddr::new(ton::INTERNATIONAL, npi::ISDN, "447700900123").unwrap(),
        data_coding: data_coding::UCS2,
        tlvs: Tlvs::new().with(Tlv::MessagePayload(vec![0x00, 0x48, 0x00, 0x69])),
        ..DataSm::default()
    };
    let bytes = wire(&[
        &[0, 0, 0, 0x32, 0, 0, 0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 6],
        b"\0",
        b"\x05\x00Acme\0",
        b"\x01\x01447700900123\0",
        &[0, 0, 0x08],
        &[0x04, 0x24, 0x00, 0x04, 0x00, 0x48, 0x00, 0x69],
    ]);
    assert_wire(&Pdu::new(6, Body::DataSm(data)), &bytes);
    let resp = Pdu::new(
        6,
        Body::DataSmResp(DataSmResp {
            message_id: s("m1"),
            tlvs: Tlvs::new(),
        }),
    );
    assert_wire(
        &resp,
        &wire(&[
            &[0, 0, 0, 0x13, 0x80, 0, 0x01, 0x03],
            &[0; 4],
            &[0, 0, 0, 6],
            b"m1\0",
        ]),
    );
}

#[test]
fn query_sm_and_resp() {
    let query = Pdu::new(
        8,
        Body::QuerySm(QuerySm {
            message_id: s("12345"),
            source: SmeAddr::default(),
        }),
    );
    assert_wire(
        &query,
        &wire(&[
            &[0, 0, 0, 0x19, 0, 0, 0, 0x03],
            &[0; 4],
            &[0, 0, 0, 8],
            b"12345\0\0\0\0",
        ]),
    );
    let resp = Pdu::new(
        8,
        Body::QuerySmResp(QuerySmResp {
            message_id: s("12345"),
            final_date: SmppTime::new("230101120000000+").unwrap(),
            message_state: message_state::DELIVERED,
            error_code: 0,
        }),
    );
    assert_wire(
        &resp,
        &wire(&[
            &[0, 0, 0, 0x29, 0x80, 0, 0, 0x03],
            &[0; 4],
            &[0, 0, 0, 8],
            b"12345\x00230101120000000+\x00\x02\x00",
        ]),
    );
}

#[test]
fn cancel_sm_replace_sm_outbind_alert() {
    let cancel = Pdu::new(
        9,
        Body::CancelSm(CancelSm {
            service_type: s(""),
            message_id: s("12345"),
            source: a21(1, 1, "447700900123"),
            destination: a21(1, 1, "447700900456"),
        }),
    );
    assert_wire(
        &cancel,
        &wire(&[
            &[0, 0, 0, 0x35, 0, 0, 0, 0x08],
            &[0; 4],
            &[0, 0, 0, 9],
            b"\x0012345\0\x01\x01447700900123\0\x01\x01447700900456\0",
        ]),
    );
    let replace = Pdu::new(
        10,
        Body::ReplaceSm(ReplaceSm {
            message_id: s("12345"),
            source: a21(1, 1, "447700900123"),
            schedule_delivery_time: SmppTime::EMPTY,
            validity_period: SmppTime::new("000001000000000R").unwrap(),
            registered_delivery: 1,
            sm_default_msg_id: 0,
            short_message: b"new".to_vec(),
        }),
    );
    assert_wire(
        &replace,
        &wire(&[
            &[0, 0, 0, 0x3D, 0, 0, 0, 0x07],
            &[0; 4],
            &[0, 0, 0, 10],
            b"12345\0\x01\x01447700900123\0\x00000001000000000R\0\x01\0\x03new",
        ]),
    );
    let outbind = Pdu::new(
        11,
        Body::Outbind(Outbind {
            system_id: s("smsc"),
            password: s("pw"),
        }),
    );
    assert_wire(
        &outbind,
        &wire(&[
            &[0, 0, 0, 0x18, 0, 0, 0, 0x0B],
            &[0; 4],
            &[0, 0, 0, 11],
            b"smsc\0pw\0",
        ]),
    );
    let alert = Pdu::new(
        12,
        Body::AlertNotification(AlertNotification {
            source: SmeAddr::new(1, 1, "447700900123").unwrap(),
            esme: SmeAddr::new(0, 0, "esme1").unwrap(),
            tlvs: Tlvs::new().with(Tlv::Other {
                tag: tag::MS_AVAILABILITY_STATUS,
                value: vec![0],
            }),
        }),
    );
    assert_wire(
        &alert,
        &wire(&[
            &[0, 0, 0, 0x2C, 0, 0, 0x01, 0x02],
            &[0; 4],
            &[0, 0, 0, 12],
            b"\x01\x01447700900123\0\0\0esme1\0",
            &[0x04, 0x22, 0x00, 0x01, 0x00],
        ]),
    );
}

#[test]
fn every_command_id_maps_both_ways() {
    for &id in CommandId::ALL {
        assert_eq!(CommandId::from_u32(id.value()), Some(id));
        assert_eq!(Body::empty(id).command_id(), id);
        if let Some(resp) = id.response() {
            assert!(!id.is_response() && resp.is_response());
            assert_eq!(resp.value(), id.value() | 0x8000_0000);
        }
    }
    assert_eq!(CommandId::ALL.len(), 25);
    assert_eq!(CommandId::from_u32(0x21), None); // submit_multi is not supported
    assert_eq!(CommandId::Outbind.response(), None);
    assert_eq!(CommandId::SubmitSm.name(), "submit_sm");
}

// ---- TLVs ----

#[test]
fn unknown_and_malformed_tlvs_are_kept_verbatim_in_order() {
    let tlvs = wire(&[
        &[0x14, 0x00, 0x00, 0x03, 1, 2, 3], // vendor tag
        &[0x04, 0x27, 0x00, 0x02, 0, 2],    // message_state with a wrong length
        &[0x00, 0x1E, 0x00, 0x03],          // receipted_message_id without NUL
        b"A1B",
        &[0x02, 0x0C, 0x00, 0x02, 0x12, 0x34],
        &[0x02, 0x0E, 0x00, 0x01, 3],
        &[0x02, 0x0F, 0x00, 0x01, 1],
        &[0x04, 0x23, 0x00, 0x03, 3, 0x00, 0x0B],
        &[0x02, 0x04, 0x00, 0x02, 0xBE, 0xEF],
        &[0x00, 0x05, 0x00, 0x00], // empty value
    ]);
    let len = 16 + 1 + tlvs.len();
    let bytes = wire(&[
        &(len as u32).to_be_bytes(),
        &[0x80, 0, 0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 1],
        b"\0",
        &tlvs,
    ]);
    let pdu = decode_frame(&bytes).unwrap();
    let Body::DataSmResp(resp) = &pdu.body else {
        panic!("{pdu:?}");
    };
    assert_eq!(
        resp.tlvs.0,
        vec![
            Tlv::Other {
                tag: 0x1400,
                value: vec![1, 2, 3]
            },
            Tlv::Other {
                tag: tag::MESSAGE_STATE,
                value: vec![0, 2]
            },
            Tlv::Other {
                tag: tag::RECEIPTED_MESSAGE_ID,
                value: b"A1B".to_vec()
            },
            Tlv::SarMsgRefNum(0x1234),
            Tlv::SarTotalSegments(3),
            Tlv::SarSegmentSeqnum(1),
            Tlv::NetworkErrorCode {
                network_type: 3,
                error_code: 11
            },
            Tlv::UserMessageReference(0xBEEF),
            Tlv::Other {
                tag: tag::DEST_ADDR_SUBUNIT,
                value: vec![]
            },
        ]
    );
    assert_eq!(encoded(&pdu), bytes);
    assert_eq!(resp.tlvs.receipted_message_id(), Some(&b"A1B"[..]));
    assert_eq!(resp.tlvs.message_state(), None);
    assert_eq!(
        resp.tlvs.sar(),
        Some(Sar {
            msg_ref_num: 0x1234,
            total_segments: 3,
            segment_seqnum: 1
        })
    );
    assert_eq!(resp.tlvs.network_error_code(), Some((3, 11)));
    assert_eq!(resp.tlvs.user_message_reference(), Some(0xBEEF));
}

#[test]
fn message_payload_stands_in_for_an_empty_short_message() {
    let sm = SubmitSm {
        tlvs: Tlvs::new().with(Tlv::MessagePayload(b"long text".to_vec())),
        ..SubmitSm::default()
    };
    assert_eq!(sm.user_data(), b"long text");
}

// ---- Malformed input ----

fn submit_sm_bytes(tail: &[u8]) -> Vec<u8> {
    let body = wire(&[b"\0\x01\x01123\0\x01\x01456\0", tail]);
    let len = (16 + body.len()) as u32;
    wire(&[
        &len.to_be_bytes(),
        &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3],
        &body,
    ])
}

#[test]
fn short_and_huge_command_length_are_fatal() {
    let mut d = Decoder::new(4096);
    d.push(&[0, 0, 0, 8]);
    assert_eq!(
        d.poll(),
        Some(Err(DecodeError::Framing(FramingError::TooShort {
            command_length: 8
        })))
    );
    assert_eq!(d.poll(), None);
    d.push(&encoded(&Pdu::new(1, Body::EnquireLink)));
    assert_eq!(d.poll(), None, "a failed decoder takes no more input");
    assert_eq!(d.buffered(), 0);

    let mut d = Decoder::new(4096);
    d.push(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0]);
    let err = d.poll().unwrap().unwrap_err();
    assert_eq!(
        err,
        DecodeError::Framing(FramingError::TooLong {
            command_length: u32::MAX,
            max: 4096
        })
    );
    assert!(err.is_fatal());
    assert_eq!(err.status(), CommandStatus::ESME_RINVCMDLEN);
    assert_eq!(err.reply(), None);
    assert_eq!(
        d.failed().copied(),
        Some(FramingError::TooLong {
            command_length: u32::MAX,
            max: 4096
        })
    );
    assert_eq!(d.buffered(), 0);

    // One octet over the limit, reported before the body arrives.
    let mut d = Decoder::new(100);
    d.push(&[0, 0, 0, 101]);
    assert!(matches!(
        d.poll(),
        Some(Err(DecodeError::Framing(FramingError::TooLong { .. })))
    ));
    assert_eq!(
        decode_frame(&[0, 0, 0, 4, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]),
        Err(DecodeError::Framing(FramingError::TooShort {
            command_length: 4
        }))
    );
    assert_eq!(
        decode_frame(&[0, 0, 0, 17, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1]),
        Err(DecodeError::Framing(FramingError::LengthMismatch {
            command_length: 17,
            frame_len: 16
        }))
    );
    assert!(matches!(
        decode_frame(&[0, 0, 0]),
        Err(DecodeError::Framing(FramingError::LengthMismatch { .. }))
    ));
}

#[test]
fn missing_nul_and_over_long_strings() {
    // The body ends inside destination_addr.
    let body = b"\0\x01\x01123\0\x01\x014567";
    let len = (16 + body.len()) as u32;
    let bytes = wire(&[
        &len.to_be_bytes(),
        &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3],
        body,
    ]);
    let (header, error) = body_error(&bytes);
    assert_eq!(header.sequence_number, 3);
    assert_eq!(
        error,
        SmppError::Field {
            field: Field::DestinationAddr,
            error: FieldError::MissingNul
        }
    );
    assert_eq!(error.status(), CommandStatus::ESME_RINVDSTADR);

    // system_id of 16 characters: one more than its 16 octets with the NUL allow.
    let bind = wire(&[
        &[0, 0, 0, 0x29, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
        b"0123456789ABCDEF\0pw\0\0\x34\0\0\0",
    ]);
    let (_, error) = body_error(&bind);
    assert_eq!(
        error,
        SmppError::Field {
            field: Field::SystemId,
            error: FieldError::TooLong { max: 15 }
        }
    );
    assert_eq!(error.status(), CommandStatus::ESME_RINVSYSID);

    // 15 characters is the longest that fits.
    assert!(SystemId::new("0123456789ABCDE").is_ok());
    assert_eq!(
        SystemId::new("0123456789ABCDEF"),
        Err(FieldError::TooLong { max: 15 })
    );
    assert_eq!(Password::new("a\0b"), Err(FieldError::Nul { offset: 1 }));
    assert_eq!(
        SmppTime::new("2301011200"),
        Err(FieldError::TimeLength { len: 10 })
    );
}

#[test]
fn bad_time_and_truncated_fields() {
    let bytes = submit_sm_bytes(b"\0\0\0" /* esm, pid, prio */);
    let (_, error) = body_error(&bytes);
    assert_eq!(
        error,
        SmppError::Truncated {
            field: Field::ScheduleDeliveryTime
        }
    );
    assert_eq!(error.status(), CommandStatus::ESME_RINVCMDLEN);

    let bytes = submit_sm_bytes(b"\0\0\0\x31\x32\x33\0\0\x01\0\0\0\0");
    let (_, error) = body_error(&bytes);
    assert_eq!(
        error,
        SmppError::Field {
            field: Field::ScheduleDeliveryTime,
            error: FieldError::TimeLength { len: 3 }
        }
    );
    assert_eq!(error.status(), CommandStatus::ESME_RINVSCHED);
}

#[test]
fn sm_length_beyond_the_body() {
    let bytes = submit_sm_bytes(b"\0\0\0\0\0\x01\0\0\0\x0AHello");
    let (_, error) = body_error(&bytes);
    assert_eq!(
        error,
        SmppError::SmLength {
            sm_length: 10,
            available: 5
        }
    );
    assert_eq!(error.status(), CommandStatus::ESME_RINVMSGLEN);
    let encoded_too_long = encode(
        &Pdu::new(
            1,
            Body::SubmitSm(SubmitSm {
                short_message: vec![b'x'; 255],
                ..SubmitSm::default()
            }),
        ),
        &mut Vec::new(),
    );
    assert_eq!(
        encoded_too_long,
        Err(SmppError::Field {
            field: Field::ShortMessage,
            error: FieldError::TooLong { max: 254 }
        })
    );
}

#[test]
fn truncated_tlvs() {
    // Three octets where a TLV header needs four.
    let bytes = submit_sm_bytes(b"\0\0\0\0\0\x01\0\0\0\x02Hi\x04\x24\x00");
    assert_eq!(body_error(&bytes).1, SmppError::TruncatedTlv { offset: 25 });
    // A TLV whose length runs past the body.
    let bytes = submit_sm_bytes(b"\0\0\0\0\0\x01\0\0\0\x02Hi\x04\x24\x00\x0Aabc");
    let (header, error) = body_error(&bytes);
    assert_eq!(error, SmppError::TruncatedTlv { offset: 25 });
    assert_eq!(error.status(), CommandStatus::ESME_RINVOPTPARSTREAM);
    // The answer is a submit_sm_resp with that status and no body.
    let reply = header.error_reply(error.status()).unwrap();
    assert_eq!(
        encoded(&reply),
        [0, 0, 0, 0x10, 0x80, 0, 0, 0x04, 0, 0, 0, 0xC0, 0, 0, 0, 3]
    );
    let mut out = Vec::new();
    let tlv_too_long = Pdu::new(
        1,
        Body::DataSmResp(DataSmResp {
            message_id: s("x"),
            tlvs: Tlvs::new().with(Tlv::MessagePayload(vec![0; 65_536])),
        }),
    );
    assert_eq!(
        encode(&tlv_too_long, &mut out),
        Err(SmppError::TlvTooLong {
            tag: tag::MESSAGE_PAYLOAD,
            len: 65_536
        })
    );
    assert!(
        out.is_empty(),
        "a failed encode leaves the buffer as it was"
    );
}

#[test]
fn trailing_bytes_and_unknown_commands_are_answered() {
    let bytes = [0, 0, 0, 0x11, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 4, 0xAA];
    let err = decode_frame(&bytes).unwrap_err();
    assert!(!err.is_fatal());
    assert_eq!(
        err.reply(),
        Some(Pdu::response(
            4,
            CommandStatus::ESME_RINVCMDLEN,
            Body::EnquireLinkResp
        ))
    );

    let submit_multi = [0, 0, 0, 0x10, 0, 0, 0, 0x21, 0, 0, 0, 0, 0, 0, 0, 5];
    let err = decode_frame(&submit_multi).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Body {
            header: Header::parse(&submit_multi).unwrap(),
            error: SmppError::UnknownCommandId { command_id: 0x21 }
        }
    );
    assert_eq!(
        err.reply(),
        Some(Pdu::response(
            5,
            CommandStatus::ESME_RINVCMDID,
            Body::GenericNack
        ))
    );
    // A broken generic_nack is never answered; a broken response gets a generic_nack.
    let nack = [0, 0, 0, 0x11, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 1];
    assert_eq!(decode_frame(&nack).unwrap_err().reply(), None);
    let outbind = [0, 0, 0, 0x11, 0, 0, 0, 0x0B, 0, 0, 0, 0, 0, 0, 0, 7, b'x'];
    // outbind has no response of its own: generic_nack, with the field's status.
    assert_eq!(
        decode_frame(&outbind).unwrap_err().reply(),
        Some(Pdu::response(
            7,
            CommandStatus::ESME_RINVSYSID,
            Body::GenericNack
        ))
    );
}

#[test]
fn decoding_carries_on_after_a_bad_body() {
    let mut stream = submit_sm_bytes(b"\0\0\0\0\0\x01\0\0\0\x0AHello");
    stream.extend_from_slice(&encoded(&Pdu::new(8, Body::EnquireLink)));
    let mut d = Decoder::new(1024);
    d.push(&stream);
    assert!(matches!(d.poll(), Some(Err(DecodeError::Body { .. }))));
    assert_eq!(d.poll(), Some(Ok(Pdu::new(8, Body::EnquireLink))));
    assert_eq!(d.poll(), None);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn responses_without_a_body_read_as_empty() {
    // An SMSC that sends a bare header on success (no message_id at all).
    let bare = [0, 0, 0, 0x10, 0x80, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 2];
    assert_eq!(
        decode_frame(&bare),
        Ok(Pdu::new(2, Body::SubmitSmResp(SubmitSmResp::default())))
    );
    // But a request with no body is missing its fields.
    let bare_submit = [0, 0, 0, 0x10, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 2];
    assert_eq!(
        body_error(&bare_submit).1,
        SmppError::Truncated {
            field: Field::ServiceType
        }
    );
}

// ---- Status table ----

#[test]
fn status_table_is_sorted_unique_and_classifies() {
    assert!(STATUSES.windows(2).all(|w| w[0].status < w[1].status));
    for row in STATUSES {
        assert_eq!(row.status.info(), Some(row));
        assert!(row.name.starts_with("ESME_R"), "{}", row.name);
        assert_eq!(row.status.class() == StatusClass::Ok, row.status.is_ok());
    }
    assert_eq!(CommandStatus::ESME_RTHROTTLED.0, 0x58);
    assert_eq!(
        CommandStatus::ESME_RTHROTTLED.class(),
        StatusClass::Throttled
    );
    assert_eq!(CommandStatus::ESME_RMSGQFUL.0, 0x14);
    assert_eq!(CommandStatus::ESME_RMSGQFUL.class(), StatusClass::Throttled);
    assert_eq!(CommandStatus::ESME_RX_T_APPN.0, 0x64);
    assert_eq!(
        CommandStatus::ESME_RX_T_APPN.class(),
        StatusClass::Temporary
    );
    assert_eq!(CommandStatus::ESME_RSYSERR.0, 0x08);
    assert!(CommandStatus::ESME_RSYSERR.class().is_retryable());
    assert_eq!(CommandStatus::ESME_RINVDSTADR.0, 0x0B);
    assert_eq!(
        CommandStatus::ESME_RINVDSTADR.class(),
        StatusClass::Permanent
    );
    assert_eq!(
        CommandStatus::ESME_RINVPASWD.class(),
        StatusClass::Permanent
    );
    assert_eq!(CommandStatus(0x0400).class(), StatusClass::Permanent);
    assert_eq!(CommandStatus(0x0400).name(), None);
    assert_eq!(
        CommandStatus::ESME_RTHROTTLED.to_string(),
        "ESME_RTHROTTLED (0x00000058): Throttling error (ESME has exceeded allowed message limits)"
    );
    assert_eq!(format!("{:?}", CommandStatus(0x58)), "ESME_RTHROTTLED");
}

// ---- data_coding and Message conversion ----

#[test]
fn charsets_of_data_coding_values() {
    assert_eq!(charset(0), Charset::Gsm7);
    assert_eq!(charset(1), Charset::Ascii);
    assert_eq!(charset(2), Charset::Binary);
    assert_eq!(charset(3), Charset::Latin1);
    assert_eq!(charset(4), Charset::Binary);
    assert_eq!(charset(8), Charset::Ucs2);
    assert_eq!(charset(6), Charset::Binary);
    assert_eq!(charset(0xF0), Charset::Gsm7); // flash, GSM 7-bit
    assert_eq!(charset(0xF4), Charset::Binary);
    assert_eq!(charset(0x18), Charset::Ucs2); // GSM DCS general group, UCS-2
}

#[test]
fn text_through_each_data_coding() {
    let unpacked = TextConfig::default();
    let packed = TextConfig { gsm_packed: true };
    let mut out = Vec::new();
    encode_text("@€a", data_coding::SMSC_DEFAULT, &unpacked, &mut out).unwrap();
    assert_eq!(out, [0x00, 0x1B, 0x65, 0x61]);
    assert_eq!(decode_text(&out, 0, &unpacked).unwrap(), "@€a");
    out.clear();
    encode_text("hellohello", 0, &packed, &mut out).unwrap();
    assert_eq!(out, [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]);
    assert_eq!(decode_text(&out, 0, &packed).unwrap(), "hellohello");
    out.clear();
    encode_text("Müller", data_coding::LATIN1, &unpacked, &mut out).unwrap();
    assert_eq!(out, b"M\xFCller");
    assert_eq!(decode_text(&out, 3, &unpacked).unwrap(), "Müller");
    out.clear();
    encode_text("Жж", data_coding::UCS2, &unpacked, &mut out).unwrap();
    assert_eq!(out, [0x04, 0x16, 0x04, 0x36]);
    assert_eq!(decode_text(&out, 8, &unpacked).unwrap(), "Жж");
    assert_eq!(
        encode_text("Ж", 0, &unpacked, &mut out),
        Err(SmppError::Text(crate::sms::TextError::Unencodable {
            charset: "GSM 03.38",
            c: 'Ж'
        }))
    );
    assert_eq!(
        encode_text("x", data_coding::BINARY, &unpacked, &mut out),
        Err(SmppError::NotText { data_coding: 4 })
    );
    assert_eq!(
        decode_text(&[0, 0x41, 0], 8, &unpacked),
        Err(SmppError::Text(crate::sms::TextError::OddUcs2 {
            octets: 3
        }))
    );
    // Kannel's reading of GSM octets with the high bit set.
    assert_eq!(decode_text(b"a\xE9", 0, &unpacked).unwrap(), "a\u{FFFD}");
}

#[test]
fn message_round_trips_through_submit_sm() {
    for config in [TextConfig::default(), TextConfig { gsm_packed: true }] {
        for msg in [
            Message::text("+447700900123", "447700900456", "Hello {world} €5").unwrap(),
            Message::text("Acme", "+447700900456", "Привет").unwrap(),
            Message::text("", "12345", &"x".repeat(160)).unwrap(),
            Message::binary("12345", "+1555", &[0, 1, 2, 0xFF]).unwrap(),
        ] {
            let sm = submit_sm(&msg, &config).unwrap();
            let pdu = Pdu::new(1, Body::SubmitSm(sm.clone()));
            let back = match decode_frame(&encoded(&pdu)).unwrap().body {
                Body::SubmitSm(sm) => message_from_sm(&sm, &config).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!(back, msg, "{config:?}");
            assert_eq!(deliver_sm(&msg, &config).unwrap(), sm);
        }
    }
}

#[test]
fn submit_sm_fields_from_a_message() {
    let config = TextConfig::default();
    let sm = submit_sm(
        &Message::text("+447700900123", "12345", "Hi").unwrap(),
        &config,
    )
    .unwrap();
    assert_eq!(
        sm.source,
        a21(ton::INTERNATIONAL, npi::ISDN, "447700900123")
    );
    assert_eq!(sm.destination, a21(ton::UNKNOWN, npi::ISDN, "12345"));
    assert_eq!(
        (sm.data_coding, sm.short_message.as_slice()),
        (0, &b"Hi"[..])
    );
    let alpha = submit_sm(&Message::text("Acme", "1", "ж").unwrap(), &config).unwrap();
    assert_eq!(alpha.source, a21(ton::ALPHANUMERIC, npi::UNKNOWN, "Acme"));
    assert_eq!(alpha.data_coding, data_coding::UCS2);
    assert_eq!(alpha.short_message, [0x04, 0x36]);

    assert_eq!(
        submit_sm(&Message::text("1", "", "x").unwrap(), &config),
        Err(SmppError::Field {
            field: Field::DestinationAddr,
            error: FieldError::Invalid { reason: "empty" }
        })
    );
    assert!(matches!(
        submit_sm(&Message::text("1", "Acme", "x").unwrap(), &config),
        Err(SmppError::Field {
            field: Field::DestinationAddr,
            ..
        })
    ));
    assert_eq!(
        submit_sm(&Message::text("ABCDEFGHIJKL", "1", "x").unwrap(), &config),
        Err(SmppError::Field {
            field: Field::SourceAddr,
            error: FieldError::TooLong { max: 11 }
        })
    );
    assert_eq!(
        submit_sm(&Message::text("1", "2", &"x".repeat(161)).unwrap(), &config),
        Err(SmppError::Text(crate::sms::TextError::TooLongGsm {
            septets: 161
        }))
    );
    assert_eq!(
        submit_sm(&Message::binary("1", "2", &[0; 141]).unwrap(), &config),
        Err(SmppError::Text(crate::sms::TextError::TooLongBinary {
            octets: 141
        }))
    );
}

#[test]
fn deliver_sm_with_a_concatenation_udh_is_a_part_read_as_text() {
    // Part 1 of 2, reference 0x42, then "abc" in GSM 7-bit.
    let udh = [0x05, 0x00, 0x03, 0x42, 0x02, 0x01];
    // Packed: 6 UDH octets, 1 fill bit, then a=0x61 b=0x62 c=0x63 from bit 49.
    let packed_abc = [0xC2, 0xE2, 0x31];
    let mut check = Vec::new();
    crate::sms::text::pack_septets(b"abc", 1, &mut check);
    assert_eq!(check, packed_abc);
    for (config, text) in [
        (TextConfig::default(), &b"abc"[..]),
        (TextConfig { gsm_packed: true }, &packed_abc[..]),
    ] {
        let sm = DeliverSm {
            source: a21(1, 1, "447700900123"),
            destination: a21(0, 1, "12345"),
            esm_class: esm_class::UDHI,
            short_message: [&udh[..], text].concat(),
            ..DeliverSm::default()
        };
        let msg = message_from_sm(&sm, &config).unwrap();
        assert_eq!(msg.text_str(), Some("abc"));
        assert_eq!(msg.part, Some(Part::new(0x42, 2, 1).unwrap()));
        assert_eq!(msg.from.as_str(), "+447700900123");
    }
    // A header with another element (a port) keeps the old binary form.
    let ports = [0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0];
    let sm = DeliverSm {
        esm_class: esm_class::UDHI,
        data_coding: 4,
        short_message: [&ports[..], b"wap"].concat(),
        ..DeliverSm::default()
    };
    let msg = message_from_sm(&sm, &TextConfig::default()).unwrap();
    assert_eq!((msg.coding, msg.part), (Coding::Binary, None));
    assert_eq!(msg.payload(), [&ports[..], b"wap"].concat());
    // A malformed header never loses the message: a single SM of its octets.
    let broken = DeliverSm {
        esm_class: esm_class::UDHI,
        short_message: vec![0x05, 0x00, 0x03],
        ..DeliverSm::default()
    };
    let msg = message_from_sm(&broken, &TextConfig::default()).unwrap();
    assert_eq!((msg.coding, msg.part), (Coding::Binary, None));
    assert_eq!(msg.payload(), [0x05, 0x00, 0x03]);
    // sar_* TLVs make a part too.
    let sm = DeliverSm {
        short_message: b"xyz".to_vec(),
        tlvs: vec![
            Tlv::SarMsgRefNum(0x1234),
            Tlv::SarTotalSegments(3),
            Tlv::SarSegmentSeqnum(3),
        ]
        .into(),
        ..DeliverSm::default()
    };
    let msg = message_from_sm(&sm, &TextConfig::default()).unwrap();
    assert_eq!(msg.text_str(), Some("xyz"));
    assert_eq!(msg.part, Some(Part::new(0x1234, 3, 3).unwrap()));
}

#[test]
fn deliver_sm_text_from_message_payload_and_latin1() {
    let sm = DeliverSm {
        source: a21(5, 0, "Bank"),
        destination: a21(1, 1, "447700900456"),
        data_coding: data_coding::LATIN1,
        tlvs: Tlvs::new().with(Tlv::MessagePayload(b"Gr\xFC\xDFe".to_vec())),
        ..DeliverSm::default()
    };
    let msg = message_from_sm(&sm, &TextConfig::default()).unwrap();
    assert_eq!(msg.text_str(), Some("Grüße"));
    assert_eq!(msg.from.as_str(), "Bank");
    assert_eq!(msg.to.as_str(), "+447700900456");
}
