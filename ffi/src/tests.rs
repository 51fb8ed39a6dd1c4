//! The ABI's own rules, checked from Rust: the panic boundary, pinned result numbers,
//! out-parameters untouched on failure, text cut at the caller's buffer.

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use crate::abi::{guard, set_last_error};
use crate::*;

mod smpp;

/// Every link of `cfg` in plaintext: these tests are about the C API, not TLS.
///
/// # Safety
/// `cfg` is a live configuration.
unsafe fn plaintext_links(cfg: *mut smslink_config) {
    let links = unsafe { (*cfg).config.links.len() } as u32;
    for link in 0..links {
        assert_eq!(
            unsafe { smslink_config_link_set_insecure_plaintext(cfg, link) },
            SMSLINK_OK
        );
    }
}

fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    // SAFETY: a live buffer of the given size and a live out-parameter.
    let rc = unsafe { smslink_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(rc, SMSLINK_OK);
    // SAFETY: smslink_last_error NUL-terminates within the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_panic_becomes_smslink_panic_with_its_text() {
    let rc = guard(|| panic!("boom in the core"));
    assert_eq!(rc, SMSLINK_PANIC);
    assert!(
        last_error().contains("boom in the core"),
        "{}",
        last_error()
    );
    // The next call works as usual.
    assert_eq!(guard(|| Ok(())), SMSLINK_OK);
}

#[test]
fn result_numbers_are_pinned_and_named() {
    let pinned = [
        (SMSLINK_OK, 0, "SMSLINK_OK"),
        (SMSLINK_NULL_PARAMETER, 1, "SMSLINK_NULL_PARAMETER"),
        (SMSLINK_PANIC, 2, "SMSLINK_PANIC"),
        (SMSLINK_INVALID_ARGUMENT, 3, "SMSLINK_INVALID_ARGUMENT"),
        (SMSLINK_FULL, 4, "SMSLINK_FULL"),
        (SMSLINK_NO_ROUTE, 5, "SMSLINK_NO_ROUTE"),
        (SMSLINK_UNKNOWN_LINK, 6, "SMSLINK_UNKNOWN_LINK"),
        (SMSLINK_STOPPED, 7, "SMSLINK_STOPPED"),
        (SMSLINK_BUSY, 8, "SMSLINK_BUSY"),
        (SMSLINK_CONFIG, 9, "SMSLINK_CONFIG"),
        (SMSLINK_IO, 10, "SMSLINK_IO"),
        (SMSLINK_BUFFER_TOO_SMALL, 11, "SMSLINK_BUFFER_TOO_SMALL"),
        (SMSLINK_EMPTY, 12, "SMSLINK_EMPTY"),
        (SMSLINK_NOT_FOUND, 13, "SMSLINK_NOT_FOUND"),
        (SMSLINK_CALLBACK_ERROR, 14, "SMSLINK_CALLBACK_ERROR"),
        (SMSLINK_MALFORMED, 15, "SMSLINK_MALFORMED"),
        (SMSLINK_WRONG_THREAD, 16, "SMSLINK_WRONG_THREAD"),
    ];
    for (result, number, name) in pinned {
        assert_eq!(result as u32, number);
        // SAFETY: smslink_result_name returns a static NUL-terminated string.
        let got = unsafe { CStr::from_ptr(smslink_result_name(number)) };
        assert_eq!(got.to_str().unwrap(), name);
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(smslink_result_name(17)) };
    assert_eq!(unknown.to_str().unwrap(), "SMSLINK_UNKNOWN_RESULT");
}

/// The enum is the only list of codes: each has its name from `smslink_result_name`
/// and its constant in the committed header, with the same number.
#[test]
fn every_result_code_is_named_and_in_the_header() {
    use strum::IntoEnumIterator;
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/smslink.h"))
            .expect("read include/smslink.h");
    let codes: Vec<smslink_result> = smslink_result::iter().collect();
    assert_eq!(codes.len(), 17);
    for code in codes {
        // SAFETY: smslink_result_name returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(smslink_result_name(code as u32)) };
        let name = name.to_str().unwrap();
        assert_eq!(name, format!("{code:?}"));
        let line = format!("  {name} = {},", code as u32);
        assert!(
            header.lines().any(|l| l == line),
            "no {line:?} in the header"
        );
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(smslink_result_name(u32::MAX)) };
    assert_eq!(unknown.to_str().unwrap(), "SMSLINK_UNKNOWN_RESULT");
}

#[test]
fn version_is_the_crate_version() {
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(smslink_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn last_error_is_cut_at_a_character_boundary_and_reports_the_full_length() {
    set_last_error("é".repeat(10).as_str()); // 20 bytes
    let mut buf = [1 as c_char; 6];
    let mut len = 0usize;
    // SAFETY: live buffer and out-parameter.
    let rc = unsafe { smslink_last_error(buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(rc, SMSLINK_OK);
    assert_eq!(len, 20);
    // 5 bytes of room: two whole "é" (4 bytes), then the NUL.
    // SAFETY: NUL-terminated within the buffer.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(text.to_str().unwrap(), "éé");
    // Length only.
    // SAFETY: NULL buffer with length 0 is allowed.
    let rc = unsafe { smslink_last_error(null_mut(), 0, &mut len) };
    assert_eq!((rc, len), (SMSLINK_OK, 20));
}

#[test]
fn out_parameters_are_untouched_on_failure() {
    let sentinel: *mut smslink_cimd2_packet = std::ptr::dangling_mut();
    let mut packet = sentinel;
    // SAFETY: a live out-parameter; the call fails before writing it.
    let rc = unsafe { smslink_cimd2_packet_new(120, 1, &mut packet) };
    assert_eq!(rc, SMSLINK_INVALID_ARGUMENT);
    assert_eq!(packet, sentinel);

    // SAFETY: live out-parameters.
    unsafe {
        let mut p = null_mut();
        assert_eq!(smslink_cimd2_packet_new(3, 1, &mut p), SMSLINK_OK);
        assert_eq!(
            smslink_cimd2_packet_add_param(p, 21, b"46".as_ptr(), 2),
            SMSLINK_OK
        );
        let mut buf = [7u8; 4];
        let mut need = 0usize;
        let rc = smslink_cimd2_packet_encode(p, false, buf.as_mut_ptr(), buf.len(), &mut need);
        assert_eq!(rc, SMSLINK_BUFFER_TOO_SMALL);
        assert_eq!(buf, [7u8; 4], "a too-small buffer is not written");
        assert_eq!(need, 16); // STX, "03:001", TAB, "021:46", TAB, ETX
        let mut code = 5u16;
        let rc = smslink_cimd2_packet_param_at(p, 0, &mut code, buf.as_mut_ptr(), 1, &mut need);
        assert_eq!((rc, code, need), (SMSLINK_BUFFER_TOO_SMALL, 5, 2));
        smslink_cimd2_packet_free(p);
    }
}

#[test]
fn messages_round_trip_through_their_c_form() {
    let mut m = smslink_core::message::Message::binary("Shop", "4670", &[0, 1, 2, 255]).unwrap();
    m.client_ref = 42;
    let c = smslink_message::from_message(&m).unwrap();
    assert_eq!(c.payload_len, 4);
    assert_eq!(c.payload[4], 0, "payload is NUL-terminated");
    assert_eq!(c.parse().unwrap(), m);

    let t = smslink_core::message::Message::text("1", "2", "héllo").unwrap();
    assert_eq!(
        smslink_message::from_message(&t).unwrap().parse().unwrap(),
        t
    );

    // The core carries longer messages than the C struct holds: refused, not cut.
    let long = "x".repeat(SMSLINK_MAX_PAYLOAD + 1);
    let l = smslink_core::message::Message::text("1", "2", &long).unwrap();
    let err = smslink_message::from_message(&l).err().unwrap();
    assert_eq!(err.code, SMSLINK_BUFFER_TOO_SMALL);
}

#[test]
fn null_pointers_are_refused_everywhere_they_are_required() {
    // SAFETY: every pointer is NULL or live; NULL is the point of the test.
    unsafe {
        assert_eq!(smslink_config_new(null_mut()), SMSLINK_NULL_PARAMETER);
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 0u32;
        let name = c"n".as_ptr();
        let addr = c"127.0.0.1:0".as_ptr();
        assert_eq!(
            smslink_config_add_link_listen(
                cfg,
                null(),
                b"ffi test key, 16+".as_ptr(),
                17,
                addr,
                &mut link
            ),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_add_link_listen(cfg, name, null(), 1, addr, &mut link),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_add_link_listen(
                cfg,
                name,
                b"ffi test key, 16+".as_ptr(),
                17,
                null(),
                &mut link
            ),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_config_add_link_listen(
                cfg,
                name,
                b"ffi test key, 16+".as_ptr(),
                17,
                addr,
                &mut link
            ),
            SMSLINK_OK
        );
        let mut node = null_mut();
        assert_eq!(smslink_node_new(cfg, null_mut()), SMSLINK_NULL_PARAMETER);
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut node), SMSLINK_OK);
        smslink_config_free(cfg);
        let mut receipt = smslink_receipt { link: 9, seq: 9 };
        assert_eq!(
            smslink_node_send_text(node, c"1".as_ptr(), null(), c"x".as_ptr(), 0, &mut receipt),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(receipt, smslink_receipt { link: 9, seq: 9 });
        assert_eq!(
            smslink_node_send_text(
                node,
                c"1".as_ptr(),
                c"2".as_ptr(),
                c"x".as_ptr(),
                0,
                &mut receipt
            ),
            SMSLINK_OK
        );
        assert_eq!(receipt, smslink_receipt { link: 0, seq: 1 });
        assert_eq!(
            smslink_node_poll_event(node, null_mut()),
            SMSLINK_NULL_PARAMETER
        );
        let mut stats = std::mem::MaybeUninit::<smslink_link_stats>::uninit();
        assert_eq!(
            smslink_node_link_stats(node, 0, stats.as_mut_ptr()),
            SMSLINK_OK
        );
        let stats = stats.assume_init();
        assert_eq!(CStr::from_ptr(stats.name.as_ptr()).to_str().unwrap(), "n");
        assert_eq!(stats.capacity, 255);
        assert_eq!(smslink_node_free(node), SMSLINK_OK);
    }
}

/// A buffer server speaking CIMD2, configured and observed only through the C API:
/// MO from the simulated SMSC reach a Rust IM-side node, MT from it reach the SMSC.
#[test]
fn c_configured_buffer_server_carries_cimd2_traffic_both_ways() {
    use smslink_core::link::LinkConfig;
    use smslink_core::message::Message;
    use smslink_core::ring::{Outcome, SlotState};
    use smslink_core::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};
    use smslink_tools::smsc_sim::{SimConfig, SmscSim};
    use std::time::{Duration, Instant};

    const N: usize = 30;
    let sim = SmscSim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        mo_rate: 1000.0,
        mo_count: N as u64,
        log: false,
        ..SimConfig::default()
    })
    .unwrap();
    let mut link = LinkConfig::new("im", b"cimd key, 16 bytes+");
    link.expected_peer = Some("bs".into());
    let spec =
        LinkSpec::new(link, Transport::Listen("127.0.0.1:0".parse().unwrap())).insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).unwrap();

    let im_addr = std::ffi::CString::new(im.local_addr(0).unwrap().to_string()).unwrap();
    let smsc_addr = std::ffi::CString::new(sim.local_addr().to_string()).unwrap();
    // SAFETY: live pointers throughout; every handle is freed below.
    let bs = unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 9;
        let rc = smslink_config_add_link_dial(
            cfg,
            c"bs".as_ptr(),
            b"cimd key, 16 bytes+".as_ptr(),
            19,
            im_addr.as_ptr(),
            &mut link,
        );
        assert_eq!((rc, link), (SMSLINK_OK, 0));
        assert_eq!(
            smslink_config_set_smsc(
                cfg,
                smsc_addr.as_ptr(),
                c"smslink".as_ptr(),
                c"secret".as_ptr()
            ),
            SMSLINK_OK
        );
        assert_eq!(smslink_config_set_reconnect(cfg, 20, 200), SMSLINK_OK);
        let mut bs = null_mut();
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut bs), SMSLINK_OK);
        smslink_config_free(cfg);
        bs
    };

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut mo = Vec::new();
    let mut mt_accepted = 0;
    let mut mt_sent = 0;
    let mut smsc_up = false;
    while (mo.len() < N || mt_accepted < N || !smsc_up) && Instant::now() < deadline {
        while mt_sent < N {
            let m = Message::text("12345", "4670000001", &format!("mt {mt_sent}")).unwrap();
            match im.send(&m) {
                Ok(_) => mt_sent += 1,
                Err(_) => break,
            }
        }
        if let Some(ev) = im.wait_event(Some(Duration::from_millis(20))) {
            match ev {
                NodeEvent::Received { link, seq, message } => {
                    im.ack(link, seq, Outcome::Accepted).unwrap();
                    mo.push(message.text_str().unwrap().to_owned());
                }
                NodeEvent::Status {
                    state: SlotState::Processed,
                    outcome: Some(Outcome::Accepted),
                    ..
                } => mt_accepted += 1,
                _ => {}
            }
        }
        let mut ev = std::mem::MaybeUninit::<smslink_event>::uninit();
        // SAFETY: live node and out-parameter.
        while unsafe { smslink_node_poll_event(bs, ev.as_mut_ptr()) } == SMSLINK_OK {
            // SAFETY: written on SMSLINK_OK.
            let ev = unsafe { ev.assume_init_ref() };
            smsc_up |= ev.kind == smslink_event_type::SMSLINK_EVENT_SMSC_UP;
        }
    }
    let expected: Vec<String> = (1..=N).map(|i| format!("mo #{i}")).collect();
    assert_eq!(mo, expected);
    assert_eq!(mt_accepted, N);
    assert!(
        smsc_up,
        "SMSC_UP event seen through smslink_node_poll_event"
    );
    // The statistics are a snapshot the node's loop publishes after each turn.
    let mut stats = smslink_smsc_stats::default();
    loop {
        // SAFETY: live node and out-parameter.
        assert_eq!(
            unsafe { smslink_node_smsc_stats(bs, &mut stats) },
            SMSLINK_OK
        );
        let settled = stats.mo_received == N as u64 && stats.mt_accepted == N as u64;
        if settled || Instant::now() > deadline {
            break;
        }
        // SAFETY: live node; waiting for any event is only a pause until the loop moves.
        let mut ev = std::mem::MaybeUninit::<smslink_event>::uninit();
        unsafe { smslink_node_wait_event(bs, 20, ev.as_mut_ptr()) };
    }
    let metrics = node_metrics(bs);
    assert!(
        metrics.contains(&format!(
            "smslink_smsc_mt_accepted_total{{link=\"bs\"}} {N}\n"
        )),
        "{metrics}"
    );
    // SAFETY: the node is freed once.
    assert_eq!(unsafe { smslink_node_free(bs) }, SMSLINK_OK);
    assert!(stats.logged_in);
    assert_eq!((stats.mo_received, stats.mt_accepted), (N as u64, N as u64));
    let counters = sim.stop().unwrap();
    assert_eq!(counters.submits_accepted, N as u64);
    im.shutdown(Duration::ZERO);
}

/// Several threads send on one node and several dispatch its events at once: every
/// message gets its own seq, reaches the peer once, and each status event goes to
/// exactly one dispatcher.
#[test]
fn concurrent_senders_and_dispatchers_share_a_node() {
    use smslink_core::link::LinkConfig;
    use smslink_core::ring::Outcome;
    use smslink_core::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const SENDERS: usize = 4;
    const PER_SENDER: usize = 500;
    const TOTAL: usize = SENDERS * PER_SENDER;

    let mut link = LinkConfig::new("im", b"threads key, 16 bytes+");
    link.capacity = 4096;
    let spec =
        LinkSpec::new(link, Transport::Listen("127.0.0.1:0".parse().unwrap())).insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).unwrap();
    let im_addr = std::ffi::CString::new(im.local_addr(0).unwrap().to_string()).unwrap();

    struct NodePtr(*mut smslink_node);
    // SAFETY: the C API documents every node call used here as callable from any thread.
    unsafe impl Sync for NodePtr {}
    // SAFETY: live pointers; the node is freed once, after all threads end.
    let bs = NodePtr(unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 0;
        let psk = b"threads key, 16 bytes+";
        let rc = smslink_config_add_link_dial(
            cfg,
            c"bs".as_ptr(),
            psk.as_ptr(),
            psk.len(),
            im_addr.as_ptr(),
            &mut link,
        );
        assert_eq!(rc, SMSLINK_OK);
        assert_eq!(
            smslink_config_link_set_capacity(cfg, link, 4096),
            SMSLINK_OK
        );
        assert_eq!(smslink_config_set_event_capacity(cfg, 1 << 15), SMSLINK_OK);
        let mut node = null_mut();
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut node), SMSLINK_OK);
        smslink_config_free(cfg);
        node
    });

    struct Seen {
        processed: Mutex<Vec<u64>>,
    }
    unsafe extern "C" fn on_event(
        userdata: *mut std::ffi::c_void,
        ev: *const smslink_event,
    ) -> i32 {
        // SAFETY: userdata is the `Seen` below, alive for the whole test; the event is
        // valid during the call.
        let (seen, ev) = unsafe { (&*(userdata as *const Seen), &*ev) };
        if ev.kind == smslink_event_type::SMSLINK_EVENT_STATUS
            && ev.state == smslink_slot_state::SMSLINK_STATE_PROCESSED
        {
            seen.processed.lock().unwrap().push(ev.seq);
        }
        0
    }
    let seen = Seen {
        processed: Mutex::new(Vec::new()),
    };
    let receipts = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(30);

    let mut received = HashSet::new();
    std::thread::scope(|s| {
        for t in 0..SENDERS {
            let (bs, receipts) = (&bs, &receipts);
            s.spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0;
                while i < PER_SENDER && Instant::now() < deadline {
                    let text = std::ffi::CString::new(format!("t{t} m{i}")).unwrap();
                    let mut r = smslink_receipt { link: 0, seq: 0 };
                    // SAFETY: live node, strings and out-parameter.
                    let rc = unsafe {
                        smslink_node_send_text(
                            bs.0,
                            c"1".as_ptr(),
                            c"2".as_ptr(),
                            text.as_ptr(),
                            0,
                            &mut r,
                        )
                    };
                    match rc {
                        SMSLINK_OK => {
                            mine.push(r.seq);
                            i += 1;
                        }
                        SMSLINK_FULL => std::thread::yield_now(),
                        other => panic!("send_text: {other:?}"),
                    }
                }
                receipts.lock().unwrap().extend(mine);
            });
        }
        for _ in 0..2 {
            let (bs, seen, stop) = (&bs, &seen, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let userdata = seen as *const Seen as *mut std::ffi::c_void;
                    // SAFETY: live node; the callback only reads its arguments.
                    let rc = unsafe {
                        smslink_node_dispatch(bs.0, 10, Some(on_event), userdata, null_mut())
                    };
                    assert_eq!(rc, SMSLINK_OK);
                }
            });
        }
        // The peer: store every message's text once, acknowledge it.
        while (received.len() < TOTAL || seen.processed.lock().unwrap().len() < TOTAL)
            && Instant::now() < deadline
        {
            if let Some(NodeEvent::Received { link, seq, message }) =
                im.wait_event(Some(Duration::from_millis(10)))
            {
                im.ack(link, seq, Outcome::Accepted).unwrap();
                assert!(
                    received.insert(message.text_str().unwrap().to_owned()),
                    "duplicate {message:?}"
                );
            }
        }
        stop.store(true, Ordering::Release);
    });

    let mut seqs = receipts.into_inner().unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=TOTAL as u64).collect::<Vec<_>>());
    assert_eq!(received.len(), TOTAL);
    let mut processed = seen.processed.into_inner().unwrap();
    processed.sort_unstable();
    assert_eq!(processed, (1..=TOTAL as u64).collect::<Vec<_>>());
    // SAFETY: no thread uses the node any more.
    assert_eq!(unsafe { smslink_node_free(bs.0) }, SMSLINK_OK);
    im.shutdown(Duration::ZERO);
}

/// The node's metrics text through `smslink_node_metrics`: asked with too small
/// a buffer first (which reports the length needed and leaves the buffer alone),
/// then with room.
fn node_metrics(node: *const smslink_node) -> String {
    let mut small = [b'x' as c_char; 8];
    let mut needed = 0usize;
    // SAFETY: live node, buffer and out-parameter.
    let rc = unsafe { smslink_node_metrics(node, small.as_mut_ptr(), small.len(), &mut needed) };
    assert_eq!(rc, SMSLINK_BUFFER_TOO_SMALL);
    assert!(needed > 1000, "{needed}");
    assert!(small.iter().all(|c| *c == b'x' as c_char), "buffer touched");
    // The counters may grow a digit between the calls: some slack.
    let mut buf = vec![0 as c_char; needed + 256];
    let mut len = 0usize;
    // SAFETY: as above.
    let rc = unsafe { smslink_node_metrics(node, buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(rc, SMSLINK_OK);
    // SAFETY: NUL-terminated within the buffer on SMSLINK_OK.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(text.len(), len);
    text
}

#[test]
fn metrics_listener_and_text_through_the_c_api() {
    use std::io::{Read, Write};
    // SAFETY: live pointers throughout; every handle is freed below.
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 9;
        let rc = smslink_config_add_link_listen(
            cfg,
            c"im".as_ptr(),
            b"ffi test key, 16+".as_ptr(),
            17,
            c"127.0.0.1:0".as_ptr(),
            &mut link,
        );
        assert_eq!(rc, SMSLINK_OK);
        let rc = smslink_config_set_metrics_listen(cfg, c"not an address".as_ptr());
        assert_eq!(rc, SMSLINK_INVALID_ARGUMENT);
        let rc = smslink_config_set_metrics_listen(cfg, c"127.0.0.1:0".as_ptr());
        assert_eq!(rc, SMSLINK_OK);
        let mut node = null_mut();
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut node), SMSLINK_OK);
        smslink_config_free(cfg);

        let mut port = 0u16;
        assert_eq!(smslink_node_metrics_port(node, &mut port), SMSLINK_OK);
        assert_ne!(port, 0);
        let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        http.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut response = String::new();
        http.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("smslink_link_up{link=\"im\"} 0\n"));
        assert!(node_metrics(node).contains("smslink_link_up{link=\"im\"} 0\n"));

        let mut buf = vec![0 as c_char; 64 * 1024];
        let mut len = 0usize;
        let rc = smslink_node_status_json(node, buf.as_mut_ptr(), buf.len(), &mut len);
        assert_eq!(rc, SMSLINK_OK);
        let status: serde_json::Value =
            serde_json::from_str(CStr::from_ptr(buf.as_ptr()).to_str().unwrap()).unwrap();
        assert_eq!(status["links"][0]["name"], "im");
        assert_eq!(status["healthy"], true);
        assert_eq!(smslink_node_free(node), SMSLINK_OK);
    }
}

/// A node with one link of `capacity` slots dialling `addr` (or listening there).
fn c_node(name: &std::ffi::CStr, addr: &str, capacity: u32) -> *mut smslink_node {
    let addr = std::ffi::CString::new(addr).unwrap();
    // SAFETY: live pointers; the configuration is freed here, the node by the caller.
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 9;
        let psk = b"room key, 16 bytes+";
        let rc = smslink_config_add_link_dial(
            cfg,
            name.as_ptr(),
            psk.as_ptr(),
            psk.len(),
            addr.as_ptr(),
            &mut link,
        );
        assert_eq!((rc, link), (SMSLINK_OK, 0));
        assert_eq!(
            smslink_config_link_set_capacity(cfg, 0, capacity),
            SMSLINK_OK
        );
        assert_eq!(smslink_config_set_reconnect(cfg, 10, 100), SMSLINK_OK);
        let mut node = null_mut();
        plaintext_links(cfg);
        assert_eq!(smslink_node_new(cfg, &mut node), SMSLINK_OK);
        smslink_config_free(cfg);
        node
    }
}

fn send(node: *mut smslink_node, text: &std::ffi::CStr) -> smslink_result {
    // SAFETY: live node and strings.
    unsafe {
        smslink_node_send_text(
            node,
            c"1".as_ptr(),
            c"2".as_ptr(),
            text.as_ptr(),
            0,
            null_mut(),
        )
    }
}

#[test]
fn wait_for_room_on_a_full_ring_times_out_with_full_and_writes_nothing() {
    // Nobody answers on port 1: the two slots stay taken.
    let node = c_node(c"bs", "127.0.0.1:1", 2);
    assert_eq!(send(node, c"a"), SMSLINK_OK);
    assert_eq!(send(node, c"b"), SMSLINK_OK);
    assert_eq!(send(node, c"c"), SMSLINK_FULL);
    let mut room = 77usize;
    // SAFETY: live node and out-parameter (or NULL, which is the point).
    unsafe {
        assert_eq!(
            smslink_node_wait_for_room(node, 0, 1, 0, &mut room),
            SMSLINK_FULL
        );
        let start = std::time::Instant::now();
        assert_eq!(
            smslink_node_wait_for_room(node, 0, 1, 50, &mut room),
            SMSLINK_FULL
        );
        assert!(start.elapsed() >= std::time::Duration::from_millis(50));
        assert!(last_error().contains("link 0 is full"), "{}", last_error());
        assert_eq!(room, 77, "out_room untouched on failure");
        assert_eq!(
            smslink_node_wait_for_room(node, 1, 1, 0, &mut room),
            SMSLINK_UNKNOWN_LINK
        );
        assert_eq!(
            smslink_node_wait_for_room(null(), 0, 1, 0, &mut room),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(
            smslink_node_wait_for_room(node, 0, 1, 0, null_mut()),
            SMSLINK_NULL_PARAMETER
        );
        assert_eq!(room, 77);
        assert_eq!(smslink_node_free(node), SMSLINK_OK);
    }
}

#[test]
fn wait_for_room_asks_at_most_the_capacity() {
    let node = c_node(c"bs", "127.0.0.1:1", 4);
    let mut room = 0usize;
    // SAFETY: live node and out-parameter.
    unsafe {
        // An empty ring has all its room: more than the capacity is not waited for
        // (a wrong cap would end in SMSLINK_FULL after the timeout).
        assert_eq!(
            smslink_node_wait_for_room(node, 0, 100, 5000, &mut room),
            SMSLINK_OK
        );
        assert_eq!(room, 4);
        assert_eq!(send(node, c"a"), SMSLINK_OK);
        assert_eq!(
            smslink_node_wait_for_room(node, 0, 0, 0, &mut room),
            SMSLINK_OK
        );
        assert_eq!(room, 3, "0 counts as 1");
        assert_eq!(smslink_node_free(node), SMSLINK_OK);
    }
}

/// A sender blocked on a full ring returns once the peer has processed enough, and
/// the status events of those messages are all still there for the application.
#[test]
fn wait_for_room_wakes_when_the_peer_processes_and_leaves_the_events() {
    use smslink_core::link::LinkConfig;
    use smslink_core::ring::Outcome;
    use smslink_core::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};
    use std::time::Duration;

    let mut link = LinkConfig::new("im", b"room key, 16 bytes+");
    link.capacity = 4;
    let spec =
        LinkSpec::new(link, Transport::Listen("127.0.0.1:0".parse().unwrap())).insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).unwrap();
    let bs = c_node(c"bs", &im.local_addr(0).unwrap().to_string(), 4);
    for text in [c"m0", c"m1", c"m2", c"m3"] {
        assert_eq!(send(bs, text), SMSLINK_OK);
    }
    assert_eq!(send(bs, c"m4"), SMSLINK_FULL);

    struct NodePtr(*mut smslink_node);
    // SAFETY: smslink_node_wait_for_room may be called from any thread.
    unsafe impl Send for NodePtr {}
    let waiter_node = NodePtr(bs);
    let waiter = std::thread::spawn(move || {
        let node = waiter_node;
        let mut room = 0usize;
        // SAFETY: the node outlives this thread (joined before it is freed).
        let rc = unsafe { smslink_node_wait_for_room(node.0, 0, 4, 30_000, &mut room) };
        (rc, room)
    });
    // All four slots free only once the peer has acknowledged all four messages.
    let mut acked = 0;
    while acked < 4 {
        if let Some(NodeEvent::Received { link, seq, .. }) =
            im.wait_event(Some(Duration::from_secs(30)))
        {
            im.ack(link, seq, Outcome::Accepted).unwrap();
            acked += 1;
        }
    }
    assert_eq!(waiter.join().unwrap(), (SMSLINK_OK, 4));

    let mut processed = Vec::new();
    let mut ev = std::mem::MaybeUninit::<smslink_event>::uninit();
    // SAFETY: live node and out-parameter; `ev` is written on SMSLINK_OK.
    while unsafe { smslink_node_poll_event(bs, ev.as_mut_ptr()) } == SMSLINK_OK {
        let ev = unsafe { ev.assume_init_ref() };
        if ev.state == smslink_slot_state::SMSLINK_STATE_PROCESSED {
            processed.push(ev.seq);
        }
    }
    assert_eq!(processed, [1, 2, 3, 4]);
    // SAFETY: no other thread uses the node any more.
    assert_eq!(unsafe { smslink_node_free(bs) }, SMSLINK_OK);
    im.shutdown(Duration::ZERO);
}

/// One line as the callback saw it: level, target, message, fields.
type LogLine = (smslink_log_level, String, String, Vec<(String, String)>);

/// Log lines collected by `collect_log_line` (userdata), as owned text.
#[derive(Default)]
struct LogLines {
    lines: std::sync::Mutex<Vec<LogLine>>,
    added: std::sync::Condvar,
}

unsafe extern "C" fn collect_log_line(
    userdata: *mut std::ffi::c_void,
    level: smslink_log_level,
    target: *const c_char,
    message: *const c_char,
    fields: *const smslink_log_field,
    field_count: usize,
) {
    let text = |p: *const c_char| {
        // SAFETY: the API passes NUL-terminated strings valid during the call.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
    };
    // SAFETY: userdata is the test's `LogLines`, alive while the callback is set;
    // `fields` has `field_count` entries during the call.
    let (seen, fields) = unsafe {
        (
            &*(userdata as *const LogLines),
            std::slice::from_raw_parts(fields, field_count),
        )
    };
    let fields = fields
        .iter()
        .map(|f| (text(f.key), text(f.value)))
        .collect();
    seen.lines
        .lock()
        .unwrap()
        .push((level, text(target), text(message), fields));
    seen.added.notify_all();
}

/// A node's link-up line reaches the C callback with its target and fields; NULL
/// restores stderr; an unknown level is refused.
#[test]
fn log_lines_reach_the_c_callback_with_target_and_fields() {
    use smslink_core::link::LinkConfig;
    use smslink_core::runtime::{LinkSpec, Node, NodeConfig, Transport};
    use std::time::{Duration, Instant};

    let seen = Box::new(LogLines::default());
    let userdata = &*seen as *const LogLines as *mut std::ffi::c_void;
    assert_eq!(
        smslink_log_set_callback(Some(collect_log_line), userdata, 99),
        SMSLINK_INVALID_ARGUMENT
    );
    assert_eq!(
        smslink_log_set_callback(Some(collect_log_line), userdata, SMSLINK_LOG_INFO),
        SMSLINK_OK
    );

    let spec = LinkSpec::new(
        LinkConfig::new("log-im", b"room key, 16 bytes+"),
        Transport::Listen("127.0.0.1:0".parse().unwrap()),
    )
    .insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).unwrap();
    let bs = c_node(c"log-bs", &im.local_addr(0).unwrap().to_string(), 16);

    // Other tests' nodes log through the same callback: look for this one's line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = seen.lines.lock().unwrap();
    let up = loop {
        let found = lines.iter().find(|(_, _, _, fields)| {
            fields.iter().any(|(k, v)| k == "link" && v == "log-bs")
                && fields.iter().any(|(k, v)| k == "event" && v == "up")
        });
        if let Some(line) = found {
            break line.clone();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no link-up line for log-bs");
        lines = seen.added.wait_timeout(lines, left).unwrap().0;
    };
    drop(lines);

    let (level, target, message, fields) = up;
    assert_eq!((level, target.as_str()), (SMSLINK_LOG_INFO, "link"));
    assert!(
        message.starts_with("link=log-bs event=up peer="),
        "{message}"
    );
    assert_eq!(fields[0], ("link".to_owned(), "log-bs".to_owned()));
    assert_eq!(fields[1], ("event".to_owned(), "up".to_owned()));
    assert_eq!(fields[2].0, "peer");

    assert_eq!(
        smslink_log_set_callback(None, null_mut(), SMSLINK_LOG_INFO),
        SMSLINK_OK
    );
    // SAFETY: the node is freed once.
    assert_eq!(unsafe { smslink_node_free(bs) }, SMSLINK_OK);
    im.shutdown(Duration::ZERO);
    // The callback is no longer called, so `seen` may go.
    drop(seen);
}

#[test]
fn delivery_reports_are_asked_for_through_the_c_api() {
    use smslink_core::runtime::SmscProtocol;
    // SAFETY: live pointers throughout; the configuration is freed below.
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        assert_eq!(
            smslink_config_set_smsc_delivery_reports(cfg, 1),
            SMSLINK_INVALID_ARGUMENT,
            "no SMSC yet"
        );
        let rc = smslink_config_set_smsc(
            cfg,
            c"127.0.0.1:9971".as_ptr(),
            c"u".as_ptr(),
            c"p".as_ptr(),
        );
        assert_eq!(rc, SMSLINK_OK);
        let request = |cfg: *mut smslink_config| match &(*cfg).smsc.as_ref().unwrap().protocol {
            SmscProtocol::Cimd2(c) => c.status_report_request,
            SmscProtocol::Smpp(_) => unreachable!(),
        };
        assert_eq!(request(cfg), 0, "CIMD2 asks for none by default");
        assert_eq!(smslink_config_set_smsc_delivery_reports(cfg, 1), SMSLINK_OK);
        assert_eq!(request(cfg), 14);
        assert_eq!(smslink_config_set_smsc_delivery_reports(cfg, 0), SMSLINK_OK);
        assert_eq!(request(cfg), 0);
        assert_eq!(
            smslink_config_set_smsc_delivery_reports(null_mut(), 1),
            SMSLINK_NULL_PARAMETER
        );
        smslink_config_free(cfg);
    }
}

#[test]
fn the_journal_is_configured_through_the_c_api() {
    use smslink_core::journal::SyncPolicy;
    // SAFETY: live pointers throughout; the configuration is freed below.
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let rc = smslink_config_set_journal(cfg, c"/tmp/j".as_ptr(), null(), 0);
        assert_eq!(rc, SMSLINK_OK);
        let spec = (*cfg).config.journal.clone().unwrap();
        assert_eq!(spec.dir, std::path::PathBuf::from("/tmp/j"));
        assert_eq!(spec.config.sync, SyncPolicy::Always);
        assert_eq!(spec.config.max_disk_bytes, 1 << 30);

        let rc =
            smslink_config_set_journal(cfg, c"/tmp/k".as_ptr(), c"interval:25".as_ptr(), 1 << 20);
        assert_eq!(rc, SMSLINK_OK);
        let spec = (*cfg).config.journal.clone().unwrap();
        assert_eq!(spec.dir, std::path::PathBuf::from("/tmp/k"));
        assert_eq!(
            spec.config.sync,
            SyncPolicy::Interval(std::time::Duration::from_millis(25))
        );
        assert_eq!(spec.config.max_disk_bytes, 1 << 20);

        let rc = smslink_config_set_journal(cfg, c"/tmp/k".as_ptr(), c"sometimes".as_ptr(), 0);
        assert_eq!(rc, SMSLINK_INVALID_ARGUMENT);
        assert!(last_error().contains("sometimes"), "{}", last_error());
        let rc = smslink_config_set_journal(cfg, c"".as_ptr(), null(), 0);
        assert_eq!(rc, SMSLINK_INVALID_ARGUMENT);
        assert!(
            (*cfg).config.journal.is_some(),
            "a refused call changes nothing"
        );
        assert_eq!(
            smslink_config_set_journal(cfg, null(), null(), 0),
            SMSLINK_OK
        );
        assert_eq!((*cfg).config.journal, None);
        assert_eq!(
            smslink_config_set_journal(null_mut(), null(), null(), 0),
            SMSLINK_NULL_PARAMETER
        );
        smslink_config_free(cfg);
    }
}

#[test]
fn a_node_with_a_journal_reports_each_message_durable() {
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("smslink-ffi-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let c_dir = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: live pointers throughout; every handle is freed below.
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 9;
        let psk = b"journal test key, 16+ bytes";
        // Nobody answers on port 1: the message stays in the ring, durable.
        let rc = smslink_config_add_link_dial(
            cfg,
            c"im".as_ptr(),
            psk.as_ptr(),
            psk.len(),
            c"127.0.0.1:1".as_ptr(),
            &mut link,
        );
        assert_eq!(rc, SMSLINK_OK);
        assert_eq!(
            smslink_config_link_set_insecure_plaintext(cfg, link),
            SMSLINK_OK
        );
        let rc = smslink_config_set_journal(cfg, c_dir.as_ptr(), c"always".as_ptr(), 1 << 24);
        assert_eq!(rc, SMSLINK_OK);
        let mut node = null_mut();
        assert_eq!(
            smslink_node_new(cfg, &mut node),
            SMSLINK_OK,
            "{}",
            last_error()
        );
        smslink_config_free(cfg);
        let rc = smslink_node_send_text(
            node,
            c"1".as_ptr(),
            c"2".as_ptr(),
            c"kept".as_ptr(),
            42,
            null_mut(),
        );
        assert_eq!(rc, SMSLINK_OK);
        let deadline = Instant::now() + Duration::from_secs(10);
        let durable = loop {
            assert!(Instant::now() < deadline, "no DURABLE event");
            let mut ev = std::mem::MaybeUninit::<smslink_event>::zeroed();
            if smslink_node_wait_event(node, 100, ev.as_mut_ptr()) == SMSLINK_OK {
                let ev = ev.assume_init();
                if ev.kind == smslink_event_type::SMSLINK_EVENT_DURABLE {
                    break ev;
                }
            }
        };
        assert_eq!((durable.link, durable.seq, durable.client_ref), (0, 1, 42));
        assert_eq!(smslink_node_free(node), SMSLINK_OK);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node with one TLS link named `name` (listening or dialing `addr`), presenting
/// `me` and pinning `peer_fingerprint`.
///
/// # Safety
/// Plain values in; the node returned must be freed with `smslink_node_free`.
unsafe fn tls_node(
    name: &CStr,
    listen: bool,
    addr: &CStr,
    me: &smslink_tools::certs::SiteIdentity,
    peer_fingerprint: &str,
) -> *mut smslink_node {
    let cert = std::ffi::CString::new(me.cert.to_str().unwrap()).unwrap();
    let key = std::ffi::CString::new(me.key.to_str().unwrap()).unwrap();
    let fp = std::ffi::CString::new(peer_fingerprint).unwrap();
    let psk = b"tls through c, 16 bytes+";
    // SAFETY: live pointers; the configuration is freed here.
    unsafe {
        let mut cfg = null_mut();
        assert_eq!(smslink_config_new(&mut cfg), SMSLINK_OK);
        let mut link = 9;
        let add = if listen {
            smslink_config_add_link_listen
        } else {
            smslink_config_add_link_dial
        };
        let rc = add(
            cfg,
            name.as_ptr(),
            psk.as_ptr(),
            psk.len(),
            addr.as_ptr(),
            &mut link,
        );
        assert_eq!((rc, link), (SMSLINK_OK, 0));
        let rc = smslink_config_link_set_tls(
            cfg,
            link,
            cert.as_ptr(),
            key.as_ptr(),
            null(),
            fp.as_ptr(),
        );
        assert_eq!(rc, SMSLINK_OK);
        assert_eq!(smslink_config_set_reconnect(cfg, 10, 100), SMSLINK_OK);
        let mut node = null_mut();
        assert_eq!(smslink_node_new(cfg, &mut node), SMSLINK_OK);
        smslink_config_free(cfg);
        node
    }
}

#[test]
fn tls_link_comes_up_through_the_c_api() {
    use smslink_core::runtime::tls::fingerprint_hex;
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("smslink-ffi-tls-{}", std::process::id()));
    let im_id = smslink_tools::certs::generate_site("im", &dir).unwrap();
    let bs_id = smslink_tools::certs::generate_site("bs", &dir).unwrap();
    // SAFETY: live pointers throughout; both nodes are freed below.
    unsafe {
        let im = tls_node(
            c"im",
            true,
            c"127.0.0.1:0",
            &im_id,
            &fingerprint_hex(&bs_id.fingerprint),
        );
        let mut port = 0u16;
        assert_eq!(smslink_node_local_port(im, 0, &mut port), SMSLINK_OK);
        let addr = std::ffi::CString::new(format!("127.0.0.1:{port}")).unwrap();
        let bs = tls_node(
            c"bs",
            false,
            &addr,
            &bs_id,
            &fingerprint_hex(&im_id.fingerprint),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ev = std::mem::MaybeUninit::<smslink_event>::uninit();
        loop {
            assert!(Instant::now() < deadline, "no LINK_UP over TLS");
            if smslink_node_wait_event(bs, 20, ev.as_mut_ptr()) == SMSLINK_OK {
                let e = ev.assume_init_ref();
                if e.kind == smslink_event_type::SMSLINK_EVENT_LINK_UP {
                    let peer = CStr::from_ptr(e.detail.as_ptr()).to_str().unwrap();
                    assert_eq!(peer, "im");
                    break;
                }
            }
        }
        assert_eq!(smslink_node_free(bs), SMSLINK_OK);
        assert_eq!(smslink_node_free(im), SMSLINK_OK);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn events_carry_long_payload_lengths_incomplete_marks_and_report_parts() {
    use smslink_core::message::{Message, Part, ReportState};
    use smslink_core::runtime::NodeEvent;

    let long = "x".repeat(SMSLINK_MAX_PAYLOAD + 1);
    let mut message = Message::text("+4670000001", "12345", &long).unwrap();
    message.part = Some(Part::new(9, 3, 2).unwrap());
    let e = smslink_event::from_event(&NodeEvent::Received {
        link: 1,
        seq: 5,
        message: Box::new(message),
    });
    assert_eq!(e.kind, smslink_event_type::SMSLINK_EVENT_RECEIVED);
    // Too long for the struct: the length only, and the payload left out.
    assert_eq!(e.payload_len as usize, long.len());
    assert_eq!((e.message.payload_len, e.message.payload[0]), (0, 0));
    assert_eq!(e.incomplete, 1);

    let short = Message::text("+4670000001", "12345", "hi").unwrap();
    let e = smslink_event::from_event(&NodeEvent::Received {
        link: 1,
        seq: 6,
        message: Box::new(short),
    });
    assert_eq!(
        (e.payload_len, e.message.payload_len, e.incomplete),
        (2, 2, 0)
    );
    assert_eq!(&e.message.payload[..3], b"hi\0");

    let e = smslink_event::from_event(&NodeEvent::Report {
        link: 0,
        client_ref: 77,
        state: ReportState::Expired,
        error: 12,
        parts: 4,
    });
    assert_eq!(e.kind, smslink_event_type::SMSLINK_EVENT_REPORT);
    assert_eq!(
        (e.client_ref, e.outcome, e.error_code, e.parts),
        (77, SMSLINK_REPORT_EXPIRED, 12, 4)
    );
}
