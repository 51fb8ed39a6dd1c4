//! An SMPP SMSC configured from C: the options' defaults, the values refused, and a
//! buffer server that binds and submits as the options say (checked on the wire by a
//! minimal SMSC written with the core's SMPP codec).

use std::ffi::{c_char, CStr, CString};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::ptr::{null, null_mut};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use smslink_core::smpp::{
    self, npi, ton, BindMode, BindResp, Body, Decoder, Pdu, SmppConfig, SubmitSm, SubmitSmResp,
    TextConfig,
};

use super::{last_error, plaintext_links};
use crate::abi::fill_c_array;
use crate::*;

fn defaults() -> smslink_smpp_options {
    let mut o = std::mem::MaybeUninit::<smslink_smpp_options>::uninit();
    // SAFETY: a live out-parameter, written on SMSLINK_OK.
    assert_eq!(
        unsafe { smslink_smpp_options_default(o.as_mut_ptr()) },
        SMSLINK_OK
    );
    // SAFETY: written above.
    unsafe { o.assume_init() }
}

fn new_config() -> *mut smslink_config {
    let mut cfg = null_mut();
    // SAFETY: a live out-parameter.
    assert_eq!(unsafe { smslink_config_new(&mut cfg) }, SMSLINK_OK);
    cfg
}

fn set_smpp(
    cfg: *mut smslink_config,
    addr: &CStr,
    system_id: &CStr,
    options: &smslink_smpp_options,
) -> smslink_result {
    // SAFETY: live configuration, strings and options.
    unsafe {
        smslink_config_set_smsc_smpp(
            cfg,
            addr.as_ptr(),
            system_id.as_ptr(),
            c"secret".as_ptr(),
            options,
        )
    }
}

/// The SMPP settings a configuration holds (None: no SMSC, or a CIMD2 one).
fn smpp_of(cfg: *mut smslink_config) -> Option<SmppConfig> {
    // SAFETY: a live configuration, used by this thread only.
    match unsafe { &*cfg }.smsc.as_ref()?.protocol.clone() {
        smslink_core::runtime::SmscProtocol::Smpp(c) => Some(c),
        smslink_core::runtime::SmscProtocol::Cimd2(_) => None,
    }
}

#[test]
fn default_options_are_the_core_defaults() {
    let o = defaults();
    let cfg = new_config();
    assert_eq!(set_smpp(cfg, c"127.0.0.1:2775", c"esme", &o), SMSLINK_OK);
    let got = smpp_of(cfg).expect("an SMPP SMSC");
    // SAFETY: freed once.
    unsafe { smslink_config_free(cfg) };
    let want = SmppConfig::default();
    assert_eq!(
        (got.system_id.as_str(), got.password.as_str()),
        ("esme", "secret")
    );
    assert_eq!(got.system_type, want.system_type);
    assert_eq!(got.bind, want.bind);
    assert_eq!(got.window, want.window);
    assert_eq!(got.enquire_link_interval, want.enquire_link_interval);
    assert_eq!(got.response_timeout, want.response_timeout);
    assert_eq!(got.source_numbering, want.source_numbering);
    assert_eq!(got.destination_numbering, want.destination_numbering);
    assert_eq!(got.registered_delivery, want.registered_delivery);
    assert_eq!(got.text, want.text);
    // And as C reads them.
    assert_eq!(o.bind_mode, SMSLINK_BIND_TRANSCEIVER);
    assert_eq!(
        (o.window, o.enquire_link_ms, o.response_timeout_ms),
        (10, 30_000, 30_000)
    );
    assert_eq!((o.source_numeric_ton, o.source_numeric_npi), (0, 1));
    assert_eq!(
        (o.destination_numeric_ton, o.destination_numeric_npi),
        (0, 1)
    );
    assert!(o.registered_delivery && !o.gsm_packed);
    assert_eq!(o.system_type[0], 0);
}

#[test]
fn every_option_reaches_the_session_config() {
    let mut o = defaults();
    o.bind_mode = SMSLINK_BIND_TRANSMITTER_RECEIVER;
    fill_c_array(&mut o.system_type, "twelve chars");
    o.window = 65536;
    o.enquire_link_ms = 0;
    o.response_timeout_ms = 1;
    (o.source_numeric_ton, o.source_numeric_npi) = (ton::ABBREVIATED, npi::WAP_CLIENT_ID);
    (o.destination_numeric_ton, o.destination_numeric_npi) = (ton::NATIONAL, npi::UNKNOWN);
    o.registered_delivery = false;
    o.gsm_packed = true;
    let cfg = new_config();
    // A CIMD2 SMSC set before is replaced.
    // SAFETY: live configuration and strings.
    let rc = unsafe {
        smslink_config_set_smsc(cfg, c"127.0.0.1:1".as_ptr(), c"u".as_ptr(), c"p".as_ptr())
    };
    assert_eq!(rc, SMSLINK_OK);
    assert!(smpp_of(cfg).is_none());
    assert_eq!(
        set_smpp(cfg, c"127.0.0.1:2775", c"fifteen chars..", &o),
        SMSLINK_OK
    );
    let c = smpp_of(cfg).expect("an SMPP SMSC");
    // SAFETY: freed once.
    unsafe { smslink_config_free(cfg) };
    assert_eq!(c.system_id, "fifteen chars..");
    assert_eq!(c.system_type, "twelve chars");
    assert_eq!(c.bind, BindMode::TransmitterReceiver);
    assert_eq!(c.window, 65536);
    assert_eq!(c.enquire_link_interval, Duration::ZERO);
    assert_eq!(c.response_timeout, Duration::from_millis(1));
    assert_eq!(
        (
            c.source_numbering.numeric.ton,
            c.source_numbering.numeric.npi
        ),
        (6, 18)
    );
    assert_eq!(
        (
            c.destination_numbering.numeric.ton,
            c.destination_numbering.numeric.npi
        ),
        (2, 0)
    );
    // Only the numeric form is configurable; the others keep their defaults.
    let d = smpp::Numbering::default();
    assert_eq!(c.source_numbering.international, d.international);
    assert_eq!(c.destination_numbering.alphanumeric, d.alphanumeric);
    assert_eq!(c.registered_delivery, smpp::registered_delivery::NONE);
    assert!(c.text.gsm_packed);
}

#[test]
fn refused_options_name_the_field_and_leave_the_config_unchanged() {
    type Change = fn(&mut smslink_smpp_options);
    let cases: [(&str, Change, &str); 8] = [
        ("bind 2", |o| o.bind_mode = 2, "bind_mode 2"),
        (
            "window 0",
            |o| o.window = 0,
            "window 0 is outside 1..=65536",
        ),
        ("window 65537", |o| o.window = 65537, "window 65537"),
        (
            "timeout 0",
            |o| o.response_timeout_ms = 0,
            "response_timeout_ms",
        ),
        (
            "GSM TOA as TON",
            |o| o.source_numeric_ton = 0x91,
            "source_numeric_ton 145",
        ),
        (
            "reserved NPI",
            |o| o.destination_numeric_npi = 2,
            "destination_numeric_npi 2",
        ),
        (
            "TON 7",
            |o| o.destination_numeric_ton = 7,
            "type of number (0..=6)",
        ),
        (
            "system_type without NUL",
            |o| o.system_type = [b'x' as c_char; SMSLINK_SYSTEM_TYPE_SIZE],
            "system_type is not NUL-terminated",
        ),
    ];
    let cfg = new_config();
    assert_eq!(
        set_smpp(cfg, c"127.0.0.1:2775", c"first", &defaults()),
        SMSLINK_OK
    );
    for (name, change, text) in cases {
        let mut o = defaults();
        change(&mut o);
        assert_eq!(
            set_smpp(cfg, c"127.0.0.1:2775", c"second", &o),
            SMSLINK_INVALID_ARGUMENT,
            "{name}"
        );
        assert!(last_error().contains(text), "{name}: {}", last_error());
    }
    let o = defaults();
    let credentials: [(&CStr, &CStr, &str); 2] = [
        (c"sixteen chars...", c"pw", "system_id"),
        (c"esme", c"ninechars", "password"),
    ];
    for (system_id, password, text) in credentials {
        // SAFETY: live configuration, strings and options.
        let rc = unsafe {
            smslink_config_set_smsc_smpp(
                cfg,
                c"127.0.0.1:2775".as_ptr(),
                system_id.as_ptr(),
                password.as_ptr(),
                &o,
            )
        };
        assert_eq!(rc, SMSLINK_INVALID_ARGUMENT, "{text}");
        assert!(last_error().contains(text), "{text}: {}", last_error());
    }
    assert_eq!(
        set_smpp(cfg, c"no port", c"second", &o),
        SMSLINK_INVALID_ARGUMENT
    );
    assert!(last_error().contains("host:port"), "{}", last_error());
    // SAFETY: NULL is the point; everything else is live.
    unsafe {
        let addr = c"127.0.0.1:2775".as_ptr();
        let (id, pw) = (c"esme".as_ptr(), c"pw".as_ptr());
        assert_eq!(
            smslink_config_set_smsc_smpp(null_mut(), addr, id, pw, &o),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_set_smsc_smpp(cfg, null(), id, pw, &o),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_set_smsc_smpp(cfg, addr, null(), pw, &o),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_set_smsc_smpp(cfg, addr, id, null(), &o),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_set_smsc_smpp(cfg, addr, id, pw, null()),
            SMSLINK_NULL_PARAMETER
        );
        assert!(last_error().contains("options is NULL"), "{}", last_error());
        assert_eq!(
            smslink_smpp_options_default(null_mut()),
            SMSLINK_NULL_PARAMETER
        );
    }
    assert_eq!(smpp_of(cfg).expect("still set").system_id, "first");
    // SAFETY: freed once.
    unsafe { smslink_config_free(cfg) };
}

/// A minimal SMSC for one test: accepts `connections` connections, answers binds,
/// submit_sm (message ids "1", "2", ...), enquire_link and unbind, sends `mo` as a
/// deliver_sm after a bind that takes deliveries, and reports every PDU it receives
/// before answering it.
fn smpp_smsc(connections: usize, mo: SubmitSm) -> (SocketAddr, mpsc::Receiver<Pdu>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, pdus) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let (seen, mo) = (seen.clone(), mo.clone());
            std::thread::spawn(move || {
                let mut decoder = Decoder::default();
                let mut buf = [0u8; 4096];
                let mut submits = 0u32;
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    decoder.push(&buf[..n]);
                    while let Some(Ok(pdu)) = decoder.poll() {
                        let mut out = Vec::new();
                        let mut reply = |body| {
                            smpp::encode(&Pdu::new(pdu.sequence_number, body), &mut out).unwrap()
                        };
                        match &pdu.body {
                            Body::BindTransmitter(_) => {
                                reply(Body::BindTransmitterResp(BindResp::default()))
                            }
                            Body::BindReceiver(_) | Body::BindTransceiver(_) => {
                                reply(if matches!(pdu.body, Body::BindReceiver(_)) {
                                    Body::BindReceiverResp(BindResp::default())
                                } else {
                                    Body::BindTransceiverResp(BindResp::default())
                                });
                                let deliver = Pdu::new(1, Body::DeliverSm(mo.clone()));
                                smpp::encode(&deliver, &mut out).unwrap();
                            }
                            Body::SubmitSm(_) => {
                                submits += 1;
                                reply(Body::SubmitSmResp(SubmitSmResp {
                                    message_id: submits.to_string().as_str().try_into().unwrap(),
                                    ..SubmitSmResp::default()
                                }))
                            }
                            Body::EnquireLink => reply(Body::EnquireLinkResp),
                            Body::Unbind => reply(Body::UnbindResp),
                            _ => {}
                        }
                        // Reported before it is answered: the test sees every PDU
                        // that the node's events depend on.
                        if seen.send(pdu).is_err() || stream.write_all(&out).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, pdus)
}

/// A buffer server configured from C binds and submits as its options say: the
/// system_type, the TON/NPI of numeric addresses, registered_delivery and packed GSM
/// text are seen on the wire; the MT is accepted and the SMSC's MO reaches the IM side.
#[test]
fn c_configured_buffer_server_binds_and_submits_over_smpp() {
    use smslink_core::link::LinkConfig;
    use smslink_core::message::Message;
    use smslink_core::ring::{Outcome, SlotState};
    use smslink_core::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};

    let packed = TextConfig { gsm_packed: true };
    let mo = Message::text("0401234567", "12345", "reply from the phone").unwrap();
    let (smsc_addr, pdus) = smpp_smsc(1, smpp::deliver_sm(&mo, &packed).unwrap());
    let mut link = LinkConfig::new("im", b"smpp key, 16 bytes+");
    link.expected_peer = Some("bs".into());
    let spec =
        LinkSpec::new(link, Transport::Listen("127.0.0.1:0".parse().unwrap())).insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).unwrap();

    let im_addr = CString::new(im.local_addr(0).unwrap().to_string()).unwrap();
    let smsc_addr = CString::new(smsc_addr.to_string()).unwrap();
    let mut o = defaults();
    fill_c_array(&mut o.system_type, "VMA");
    (o.source_numeric_ton, o.source_numeric_npi) = (ton::NETWORK_SPECIFIC, npi::PRIVATE);
    (o.destination_numeric_ton, o.destination_numeric_npi) = (ton::NATIONAL, npi::ISDN);
    o.registered_delivery = false;
    o.gsm_packed = true;
    let cfg = new_config();
    // SAFETY: live pointers; the configuration is freed here, the node below.
    let bs = unsafe {
        let mut link = 9;
        let rc = smslink_config_add_link_dial(
            cfg,
            c"bs".as_ptr(),
            b"smpp key, 16 bytes+".as_ptr(),
            19,
            im_addr.as_ptr(),
            &mut link,
        );
        assert_eq!((rc, link), (SMSLINK_OK, 0));
        assert_eq!(set_smpp(cfg, &smsc_addr, c"esme", &o), SMSLINK_OK);
        assert_eq!(smslink_config_set_reconnect(cfg, 20, 200), SMSLINK_OK);
        let mut bs = null_mut();
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut bs), SMSLINK_OK);
        smslink_config_free(cfg);
        bs
    };

    let mt = Message::text("12345", "0401234567", "to the phone").unwrap();
    im.send(&mt).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut mt_accepted, mut mo_text, mut smsc_up) = (false, None, false);
    while !(mt_accepted && mo_text.is_some() && smsc_up) && Instant::now() < deadline {
        match im.wait_event(Some(Duration::from_millis(20))) {
            Some(NodeEvent::Received { link, seq, message }) => {
                im.ack(link, seq, Outcome::Accepted).unwrap();
                mo_text = message.text_str().map(str::to_owned);
            }
            Some(NodeEvent::Status {
                state: SlotState::Processed,
                outcome,
                ..
            }) => {
                assert_eq!(outcome, Some(Outcome::Accepted));
                mt_accepted = true;
            }
            _ => {}
        }
        let mut ev = std::mem::MaybeUninit::<smslink_event>::uninit();
        // SAFETY: live node and out-parameter.
        while unsafe { smslink_node_poll_event(bs, ev.as_mut_ptr()) } == SMSLINK_OK {
            // SAFETY: written on SMSLINK_OK.
            let ev = unsafe { ev.assume_init_ref() };
            smsc_up |= ev.kind == smslink_event_type::SMSLINK_EVENT_SMSC_UP;
        }
    }
    assert!(
        smsc_up,
        "SMSC_UP event seen through smslink_node_poll_event"
    );
    assert!(mt_accepted, "the MT was accepted");
    assert_eq!(mo_text.as_deref(), Some("reply from the phone"));
    // SAFETY: the node is freed once.
    assert_eq!(unsafe { smslink_node_free(bs) }, SMSLINK_OK);
    im.shutdown(Duration::ZERO);

    let seen: Vec<Pdu> = pdus.try_iter().collect();
    let Some(Body::BindTransceiver(bind)) = seen.first().map(|p| &p.body) else {
        panic!("the first PDU is not bind_transceiver: {seen:?}");
    };
    assert_eq!(bind.system_id.as_str(), Some("esme"));
    assert_eq!(bind.password.as_str(), Some("secret"));
    assert_eq!(bind.system_type.as_str(), Some("VMA"));
    let submits: Vec<&SubmitSm> = seen
        .iter()
        .filter_map(|p| match &p.body {
            Body::SubmitSm(sm) => Some(sm),
            _ => None,
        })
        .collect();
    let [sm] = submits[..] else {
        panic!("one submit_sm expected: {submits:?}");
    };
    assert_eq!(
        (sm.source.ton, sm.source.npi, sm.source.addr.as_str()),
        (ton::NETWORK_SPECIFIC, npi::PRIVATE, Some("12345"))
    );
    assert_eq!(
        (
            sm.destination.ton,
            sm.destination.npi,
            sm.destination.addr.as_str()
        ),
        (ton::NATIONAL, npi::ISDN, Some("0401234567"))
    );
    assert_eq!(sm.registered_delivery, smpp::registered_delivery::NONE);
    // 12 GSM characters packed into 11 octets.
    assert_eq!(sm.short_message.len(), 11, "{:?}", sm.short_message);
    let sent = smpp::message_from_sm(sm, &packed).unwrap();
    assert_eq!(sent.text_str(), Some("to the phone"));
}

/// SMSLINK_BIND_TRANSMITTER_RECEIVER binds twice, once for each direction, and the
/// session is up once both are bound.
#[test]
fn transmitter_receiver_mode_binds_on_two_connections() {
    let mo = smslink_core::message::Message::text("1", "2", "x").unwrap();
    let (smsc_addr, pdus) = smpp_smsc(2, smpp::deliver_sm(&mo, &TextConfig::default()).unwrap());
    let smsc_addr = CString::new(smsc_addr.to_string()).unwrap();
    let mut o = defaults();
    o.bind_mode = SMSLINK_BIND_TRANSMITTER_RECEIVER;
    let cfg = new_config();
    // SAFETY: live pointers; the configuration is freed here, the node below. The link
    // dials a port nobody listens on: only the SMSC side matters here.
    let bs = unsafe {
        let mut link = 9;
        let rc = smslink_config_add_link_dial(
            cfg,
            c"bs".as_ptr(),
            b"ffi test key, 16+".as_ptr(),
            17,
            c"127.0.0.1:1".as_ptr(),
            &mut link,
        );
        assert_eq!(rc, SMSLINK_OK);
        assert_eq!(set_smpp(cfg, &smsc_addr, c"esme", &o), SMSLINK_OK);
        let mut bs = null_mut();
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut bs), SMSLINK_OK);
        smslink_config_free(cfg);
        bs
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut smsc_up = false;
    while !smsc_up && Instant::now() < deadline {
        let mut ev = std::mem::MaybeUninit::<smslink_event>::uninit();
        // SAFETY: live node and out-parameter.
        if unsafe { smslink_node_wait_event(bs, 50, ev.as_mut_ptr()) } == SMSLINK_OK {
            // SAFETY: written on SMSLINK_OK.
            smsc_up =
                unsafe { ev.assume_init_ref() }.kind == smslink_event_type::SMSLINK_EVENT_SMSC_UP;
        }
    }
    assert!(smsc_up, "SMSC_UP once both connections are bound");
    // SAFETY: the node is freed once.
    assert_eq!(unsafe { smslink_node_free(bs) }, SMSLINK_OK);
    let mut binds: Vec<&str> = Vec::new();
    let seen: Vec<Pdu> = pdus.try_iter().collect();
    for p in &seen {
        match &p.body {
            Body::BindTransmitter(b) | Body::BindReceiver(b) => {
                assert_eq!(b.system_id.as_str(), Some("esme"));
                binds.push(p.body.command_id().name());
            }
            Body::BindTransceiver(_) => panic!("a transceiver bind: {seen:?}"),
            _ => {}
        }
    }
    binds.sort_unstable();
    assert_eq!(binds, ["bind_receiver", "bind_transmitter"]);
}
