//! SMPP codec properties: every PDU type survives encode/decode unchanged (and
//! re-encodes to the same bytes), a stream decodes to the same PDUs however it is cut,
//! arbitrary bytes never panic the decoder or grow its memory past one PDU, and a
//! `Message` survives the trip through submit_sm.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use smslink::message::Message;
use smslink::smpp::*;

// ---- Strategies ----

/// A C-octet string of any length its type allows, any octets but NUL.
fn cstr<const N: usize>() -> impl Strategy<Value = COctetString<N>> {
    vec(1u8..=255, 0..N).prop_map(|v| COctetString::new(v).expect("within the limit"))
}

fn time() -> impl Strategy<Value = SmppTime> {
    prop_oneof![
        Just(SmppTime::EMPTY),
        vec(1u8..=255, TIME_LEN).prop_map(|v| SmppTime::new(v).expect("16 octets")),
    ]
}

fn addr<const N: usize>() -> impl Strategy<Value = SmeAddr<N>> {
    (any::<u8>(), any::<u8>(), cstr::<N>()).prop_map(|(ton, npi, addr)| SmeAddr { ton, npi, addr })
}

const TYPED_TAGS: [u16; 9] = [
    tag::MESSAGE_PAYLOAD,
    tag::RECEIPTED_MESSAGE_ID,
    tag::MESSAGE_STATE,
    tag::SAR_MSG_REF_NUM,
    tag::SAR_TOTAL_SEGMENTS,
    tag::SAR_SEGMENT_SEQNUM,
    tag::USER_MESSAGE_REFERENCE,
    tag::NETWORK_ERROR_CODE,
    tag::SC_INTERFACE_VERSION,
];

fn tlv() -> impl Strategy<Value = Tlv> {
    prop_oneof![
        vec(any::<u8>(), 0..300).prop_map(Tlv::MessagePayload),
        cstr::<65>().prop_map(Tlv::ReceiptedMessageId),
        any::<u8>().prop_map(Tlv::MessageState),
        any::<u16>().prop_map(Tlv::SarMsgRefNum),
        any::<u8>().prop_map(Tlv::SarTotalSegments),
        any::<u8>().prop_map(Tlv::SarSegmentSeqnum),
        any::<u16>().prop_map(Tlv::UserMessageReference),
        (any::<u8>(), any::<u16>()).prop_map(|(network_type, error_code)| {
            Tlv::NetworkErrorCode {
                network_type,
                error_code,
            }
        }),
        any::<u8>().prop_map(Tlv::ScInterfaceVersion),
        (
            any::<u16>().prop_filter("untyped tag", |t| !TYPED_TAGS.contains(t)),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(tag, value)| Tlv::Other { tag, value }),
    ]
}

fn tlvs() -> impl Strategy<Value = Tlvs> {
    vec(tlv(), 0..4).prop_map(Tlvs)
}

fn short_message() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=MAX_SHORT_MESSAGE)
}

fn bind() -> impl Strategy<Value = Bind> {
    (cstr(), cstr(), cstr(), any::<u8>(), addr()).prop_map(
        |(system_id, password, system_type, interface_version, address_range)| Bind {
            system_id,
            password,
            system_type,
            interface_version,
            address_range,
        },
    )
}

fn bind_resp() -> impl Strategy<Value = BindResp> {
    (cstr(), tlvs()).prop_map(|(system_id, tlvs)| BindResp { system_id, tlvs })
}

fn message_id_resp() -> impl Strategy<Value = SubmitSmResp> {
    (cstr(), tlvs()).prop_map(|(message_id, tlvs)| SubmitSmResp { message_id, tlvs })
}

fn submit_sm_body() -> impl Strategy<Value = SubmitSm> {
    (
        (cstr(), addr(), addr(), any::<[u8; 3]>()),
        (time(), time(), any::<[u8; 4]>()),
        (short_message(), tlvs()),
    )
        .prop_map(
            |(
                (service_type, source, destination, [esm_class, protocol_id, priority_flag]),
                (schedule_delivery_time, validity_period, [registered_delivery, replace, dc, dm]),
                (short_message, tlvs),
            )| SubmitSm {
                service_type,
                source,
                destination,
                esm_class,
                protocol_id,
                priority_flag,
                schedule_delivery_time,
                validity_period,
                registered_delivery,
                replace_if_present_flag: replace,
                data_coding: dc,
                sm_default_msg_id: dm,
                short_message,
                tlvs,
            },
        )
}

/// A body of the given command, every field arbitrary within its limits.
fn body(id: CommandId) -> BoxedStrategy<Body> {
    match id {
        CommandId::GenericNack => Just(Body::GenericNack).boxed(),
        CommandId::Unbind => Just(Body::Unbind).boxed(),
        CommandId::UnbindResp => Just(Body::UnbindResp).boxed(),
        CommandId::EnquireLink => Just(Body::EnquireLink).boxed(),
        CommandId::EnquireLinkResp => Just(Body::EnquireLinkResp).boxed(),
        CommandId::CancelSmResp => Just(Body::CancelSmResp).boxed(),
        CommandId::ReplaceSmResp => Just(Body::ReplaceSmResp).boxed(),
        CommandId::BindReceiver => bind().prop_map(Body::BindReceiver).boxed(),
        CommandId::BindTransmitter => bind().prop_map(Body::BindTransmitter).boxed(),
        CommandId::BindTransceiver => bind().prop_map(Body::BindTransceiver).boxed(),
        CommandId::BindReceiverResp => bind_resp().prop_map(Body::BindReceiverResp).boxed(),
        CommandId::BindTransmitterResp => bind_resp().prop_map(Body::BindTransmitterResp).boxed(),
        CommandId::BindTransceiverResp => bind_resp().prop_map(Body::BindTransceiverResp).boxed(),
        CommandId::Outbind => (cstr(), cstr())
            .prop_map(|(system_id, password)| {
                Body::Outbind(Outbind {
                    system_id,
                    password,
                })
            })
            .boxed(),
        CommandId::SubmitSm => submit_sm_body().prop_map(Body::SubmitSm).boxed(),
        CommandId::DeliverSm => submit_sm_body().prop_map(Body::DeliverSm).boxed(),
        CommandId::SubmitSmResp => message_id_resp().prop_map(Body::SubmitSmResp).boxed(),
        CommandId::DeliverSmResp => message_id_resp().prop_map(Body::DeliverSmResp).boxed(),
        CommandId::DataSmResp => message_id_resp().prop_map(Body::DataSmResp).boxed(),
        CommandId::DataSm => (cstr(), addr(), addr(), any::<[u8; 3]>(), tlvs())
            .prop_map(
                |(service_type, source, destination, [esm, reg, dc], tlvs)| {
                    Body::DataSm(DataSm {
                        service_type,
                        source,
                        destination,
                        esm_class: esm,
                        registered_delivery: reg,
                        data_coding: dc,
                        tlvs,
                    })
                },
            )
            .boxed(),
        CommandId::QuerySm => (cstr(), addr())
            .prop_map(|(message_id, source)| Body::QuerySm(QuerySm { message_id, source }))
            .boxed(),
        CommandId::QuerySmResp => (cstr(), time(), any::<u8>(), any::<u8>())
            .prop_map(|(message_id, final_date, message_state, error_code)| {
                Body::QuerySmResp(QuerySmResp {
                    message_id,
                    final_date,
                    message_state,
                    error_code,
                })
            })
            .boxed(),
        CommandId::CancelSm => (cstr(), cstr(), addr(), addr())
            .prop_map(|(service_type, message_id, source, destination)| {
                Body::CancelSm(CancelSm {
                    service_type,
                    message_id,
                    source,
                    destination,
                })
            })
            .boxed(),
        CommandId::ReplaceSm => (
            cstr(),
            addr(),
            time(),
            time(),
            any::<[u8; 2]>(),
            short_message(),
        )
            .prop_map(
                |(message_id, source, schedule, validity, [reg, dm], short_message)| {
                    Body::ReplaceSm(ReplaceSm {
                        message_id,
                        source,
                        schedule_delivery_time: schedule,
                        validity_period: validity,
                        registered_delivery: reg,
                        sm_default_msg_id: dm,
                        short_message,
                    })
                },
            )
            .boxed(),
        CommandId::AlertNotification => (addr(), addr(), tlvs())
            .prop_map(|(source, esme, tlvs)| {
                Body::AlertNotification(AlertNotification { source, esme, tlvs })
            })
            .boxed(),
    }
}

fn status() -> impl Strategy<Value = CommandStatus> {
    prop_oneof![
        3 => Just(CommandStatus::ESME_ROK),
        1 => prop::sample::select(STATUSES).prop_map(|row| row.status),
        1 => any::<u32>().prop_map(CommandStatus),
    ]
}

fn pdu_of(id: CommandId) -> impl Strategy<Value = Pdu> {
    (any::<u32>(), status(), body(id)).prop_map(|(sequence_number, command_status, body)| Pdu {
        sequence_number,
        command_status,
        body,
    })
}

fn any_pdu() -> impl Strategy<Value = Pdu> {
    prop::sample::select(CommandId::ALL).prop_flat_map(pdu_of)
}

// ---- Helpers ----

fn encoded(pdu: &Pdu) -> Vec<u8> {
    let mut out = Vec::new();
    encode(pdu, &mut out).expect("every generated PDU is encodable");
    out
}

/// Decode `stream` pushed in pieces of the given sizes (cycled), checking after each
/// piece that the decoder holds no more than one unfinished PDU.
fn decode_in_pieces(
    stream: &[u8],
    max_pdu: usize,
    sizes: &[usize],
) -> Vec<Result<Pdu, DecodeError>> {
    let mut decoder = Decoder::new(max_pdu);
    let mut items = Vec::new();
    let mut at = 0;
    let mut sizes = sizes.iter().cycle();
    while at < stream.len() {
        let end = (at + sizes.next().copied().unwrap_or(usize::MAX)).min(stream.len());
        decoder.push(&stream[at..end]);
        at = end;
        while let Some(item) = decoder.poll() {
            items.push(item);
        }
        assert!(
            decoder.buffered() < decoder.max_pdu(),
            "{} octets held",
            decoder.buffered()
        );
    }
    items
}

fn assert_round_trip(pdu: &Pdu) -> Result<(), TestCaseError> {
    let bytes = encoded(pdu);
    prop_assert_eq!(encoded_len(pdu), Ok(bytes.len()));
    prop_assert_eq!(
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
        bytes.len()
    );
    let decoded = decode_frame(&bytes);
    prop_assert_eq!(decoded.as_ref(), Ok(pdu));
    prop_assert_eq!(encoded(&decoded.unwrap()), bytes);
    Ok(())
}

// ---- Properties ----

#[test]
fn every_pdu_type_round_trips() {
    for &id in CommandId::ALL {
        let mut runner = TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&pdu_of(id), |pdu| {
                prop_assert_eq!(pdu.command_id(), id);
                assert_round_trip(&pdu)
            })
            .unwrap_or_else(|e| panic!("{}: {e}", id.name()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_stream_decodes_the_same_however_it_is_cut(
        pdus in vec(any_pdu(), 1..8),
        sizes in vec(1usize..64, 1..16),
    ) {
        let stream: Vec<u8> = pdus.iter().flat_map(encoded).collect();
        let expected: Vec<Result<Pdu, DecodeError>> = pdus.into_iter().map(Ok).collect();
        let max = DEFAULT_MAX_PDU;
        prop_assert_eq!(&decode_in_pieces(&stream, max, &[usize::MAX]), &expected);
        prop_assert_eq!(&decode_in_pieces(&stream, max, &[1]), &expected);
        prop_assert_eq!(&decode_in_pieces(&stream, max, &sizes), &expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_do_not_depend_on_cuts(
        stream in vec(any::<u8>(), 0..600),
        max_pdu in 16usize..300,
        sizes in vec(1usize..40, 1..8),
    ) {
        let whole = decode_in_pieces(&stream, max_pdu, &[usize::MAX]);
        prop_assert_eq!(&decode_in_pieces(&stream, max_pdu, &[1]), &whole);
        prop_assert_eq!(&decode_in_pieces(&stream, max_pdu, &sizes), &whole);
        for item in &whole {
            match item {
                Ok(pdu) => assert_round_trip(pdu)?,
                Err(DecodeError::Body { header, error }) => {
                    prop_assert!(header.command_length as usize <= max_pdu);
                    prop_assert!(!error.status().is_ok());
                }
                Err(DecodeError::Framing(_)) => {}
            }
        }
        // At most one framing error, and it is the last item.
        let fatal = whole.iter().position(|i| i.as_ref().is_err_and(DecodeError::is_fatal));
        if let Some(at) = fatal {
            prop_assert_eq!(at, whole.len() - 1);
        }
    }

    #[test]
    fn corrupting_one_octet_of_a_body_is_a_typed_outcome(
        pdu in any_pdu(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = encoded(&pdu);
        if bytes.len() > HEADER_LEN {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] = value;
        }
        match decode_frame(&bytes) {
            Ok(decoded) => assert_round_trip(&decoded)?,
            Err(DecodeError::Body { header, .. }) => {
                prop_assert_eq!(header.sequence_number, pdu.sequence_number);
            }
            Err(e) => prop_assert!(false, "framing error for a well-framed PDU: {e}"),
        }
    }

    #[test]
    fn messages_survive_submit_sm(
        from in prop_oneof![
            Just(String::new()),
            "\\+?[1-9][0-9]{0,18}",
            "[A-Za-z][A-Za-z0-9 ]{0,10}",
        ],
        to in "\\+?[1-9][0-9]{0,18}",
        text in prop_oneof![
            "[ -~£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉÄÖÑÜ§¿äöñüà€\n]{0,150}",
            "[ -~жЖ😀é]{0,30}",
        ],
        binary in prop::option::of(vec(any::<u8>(), 0..=140)),
        packed in any::<bool>(),
    ) {
        let config = TextConfig { gsm_packed: packed };
        let msg = match &binary {
            Some(data) => Message::binary(&from, &to, data),
            None => Message::text(&from, &to, &text),
        }
        .expect("valid message");
        let sm = match submit_sm(&msg, &config) {
            Ok(sm) => sm,
            Err(SmppError::Text(e)) => {
                // Only a text over one SMS is refused.
                prop_assert!(matches!(
                    e,
                    smslink::sms::TextError::TooLongGsm { .. }
                        | smslink::sms::TextError::TooLongUcs2 { .. }
                ), "{e}");
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let pdu = Pdu::new(1, Body::DeliverSm(sm));
        let Ok(Pdu { body: Body::DeliverSm(sm), .. }) = decode_frame(&encoded(&pdu)) else {
            return Err(TestCaseError::fail("not a deliver_sm"));
        };
        prop_assert_eq!(message_from_sm(&sm, &config), Ok(msg));
    }
}
