//! Replays the committed `link_frame` fuzz corpus (fuzz/corpus/link_frame/) through
//! the check the fuzz target runs (`smslink::fuzzing::check_link_frame`), without
//! cargo-fuzz or nightly.
//!
//! `SMSLINK_WRITE_LINK_CORPUS=1 cargo test --test fuzz_corpus_link` rewrites the
//! hand-made seed files (names starting with `seed_`).

use smslink::fuzzing::{check_link_frame, link_up_endpoint};
use smslink::link::frame::{self, AckWriter, CloseReason, Data, Hello};
use smslink::message::{Address, Coding, MessageKind};
use smslink::ring::Outcome;
use std::path::PathBuf;
use std::time::Instant;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/link_frame")
}

fn data(buf: &mut Vec<u8>, seq: u64, text: &str) {
    frame::encode_data(
        buf,
        &Data {
            seq,
            coding: Coding::Text,
            client_ref: seq * 10,
            kind: MessageKind::Sm,
            part: None,
            from: Address::new("+61400000001").unwrap(),
            to: Address::new("12345").unwrap(),
            payload: text.as_bytes(),
        },
    );
}

/// What peer "a" could legally send to the harness's up endpoint "b".
fn good_stream() -> Vec<u8> {
    let mut s = vec![];
    data(&mut s, 1, "first");
    data(&mut s, 2, "second");
    let mut w = AckWriter::new(&mut s, 11);
    w.push_confirm(1, 3);
    w.push_processed(1, Outcome::Accepted);
    w.push_processed(2, Outcome::Accepted);
    w.push_processed(3, Outcome::Rejected { code: 88 });
    w.finish();
    frame::encode_ping(&mut s);
    data(&mut s, 3, "third");
    frame::encode_close(&mut s, CloseReason::Normal, "bye");
    s
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let with = |control: u8, body: &[u8]| {
        let mut v = vec![control];
        v.extend_from_slice(body);
        v
    };
    let good = good_stream();
    let mut hello = vec![];
    frame::encode_hello(
        &mut hello,
        &Hello {
            version: frame::VERSION,
            nonce: [5; 32],
        },
    );
    // A dialer without the key: HELLO, a wrong PROOF, then state it must not get to.
    let mut handshake = hello.clone();
    frame::encode_proof(&mut handshake, &frame::Proof { mac: [0; 32] });
    frame::encode_state(
        &mut handshake,
        &frame::State {
            epoch: 99,
            capacity: 8,
            tx_last_processed: 0,
            name: "a",
        },
    );
    frame::encode_sync(
        &mut handshake,
        &frame::Sync {
            known_sender_epoch: 0,
            rx_last_stored: 0,
            rx_limit: 8,
        },
    );
    let mut bad_version = hello.clone();
    bad_version[7] = 9;
    let mut gap = vec![];
    data(&mut gap, 5, "gap");
    let mut ack_beyond = vec![];
    let mut w = AckWriter::new(&mut ack_beyond, 11);
    w.push_confirm(2, 9);
    w.finish();
    vec![
        ("seed_up_whole", with(0, &good)),
        ("seed_up_bytewise", with(2, &good)),
        ("seed_up_chunk7", with(14, &good)),
        ("seed_handshake", with(1, &handshake)),
        ("seed_bad_version", with(1, &bad_version)),
        ("seed_oversized", with(0, &[0xff, 0xff, 3, 0])),
        ("seed_unknown_type", with(0, &[0, 0, 42])),
        ("seed_truncated_data", with(0, &[0, 4, 3, 0, 0, 0, 1])),
        ("seed_seq_gap", with(0, &gap)),
        ("seed_ack_beyond_sent", with(0, &ack_beyond)),
        ("seed_partial_frame", with(0, &good[..good.len() / 2])),
    ]
}

#[test]
fn corpus_replays_without_panic() {
    let dir = corpus_dir();
    if std::env::var_os("SMSLINK_WRITE_LINK_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        check_link_frame(&bytes);
        n += 1;
    }
    assert!(n >= seeds().len(), "corpus has {n} files");
}

#[test]
fn committed_seeds_match_their_generator() {
    for (name, bytes) in seeds() {
        let on_disk = std::fs::read(corpus_dir().join(name)).expect("seed file committed");
        assert_eq!(on_disk, bytes, "{name} is stale: regenerate the seeds");
    }
}

#[test]
fn good_seed_drives_the_endpoint_through_data_ack_and_close() {
    let now = Instant::now();
    let mut b = link_up_endpoint(now);
    assert!(b.is_up());
    b.handle_input(&good_stream(), now).unwrap();
    assert_eq!(b.rx_cursors().last_stored, 3);
    assert_eq!(b.cursors().last_processed, 3);
    assert_eq!(
        b.tx_ring().processed_outcome(3),
        Some(Some(Outcome::Rejected { code: 88 }))
    );
    assert!(!b.is_connected(), "CLOSE ended the connection");
}
