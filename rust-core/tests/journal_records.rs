//! Property tests of the journal's record codec: every record type survives
//! encode -> entry -> decode exactly; any byte string decodes to a value or a typed
//! error, never a panic, and never to an entry whose CRC does not hold.

use proptest::prelude::*;
use smslink::journal::record::{decode_entry, encode_entry, Entry, MAX_RECORD_PAYLOAD};
use smslink::journal::{Direction, LinkIdentity, Record};
use smslink::message::{Coding, Message};
use smslink::ring::{Cursors, Outcome, RxCursors};

fn address() -> impl Strategy<Value = String> {
    "[+]?[0-9A-Za-z -]{0,19}"
}

fn message() -> impl Strategy<Value = Message> {
    (
        address(),
        address(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..=640),
        any::<u64>(),
    )
        .prop_map(|(from, to, binary, payload, client_ref)| {
            let mut m = if binary {
                Message::binary(&from, &to, &payload).expect("valid")
            } else {
                let text = String::from_utf8_lossy(&payload);
                let text: String = text.chars().take(160).collect();
                Message::text(&from, &to, &text).expect("valid")
            };
            m.client_ref = client_ref;
            m
        })
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Tx), Just(Direction::Rx)]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Accepted),
        any::<u32>().prop_map(|code| Outcome::Rejected { code })
    ]
}

/// Four ordered values a <= b <= c <= d.
fn ordered() -> impl Strategy<Value = [u64; 4]> {
    proptest::array::uniform4(0u64..1 << 40).prop_map(|mut v| {
        v.sort();
        v
    })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<u32>(), direction(), any::<u64>(), message()).prop_map(
            |(link, dir, seq, message)| Record::Accepted {
                link,
                dir,
                seq,
                message
            }
        ),
        (any::<u32>(), direction(), any::<u64>(), outcome()).prop_map(
            |(link, dir, seq, outcome)| Record::Processed {
                link,
                dir,
                seq,
                outcome
            }
        ),
        (any::<u32>(), ordered(), ordered()).prop_map(|(link, t, r)| Record::Checkpoint {
            link,
            tx: Cursors {
                last_processed: t[0],
                last_confirmed: t[1],
                last_sent: t[2],
                last_retrieved: t[3],
            },
            rx: RxCursors {
                last_processed: r[0],
                last_delivered: r[1],
                last_stored: r[2],
            },
        }),
        (
            any::<u32>(),
            "\\PC{0,60}",
            1u64..,
            proptest::option::of(1u64..),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(link, name, epoch, peer_epoch, rx_offset, rx_epoch_floor)| {
                    Record::Identity {
                        link,
                        identity: LinkIdentity {
                            name,
                            epoch,
                            peer_epoch,
                            rx_offset,
                            rx_epoch_floor,
                        },
                    }
                }
            ),
        (any::<u32>(), direction(), any::<u64>()).prop_map(|(link, dir, next_lsn)| {
            Record::Backlog {
                link,
                dir,
                next_lsn,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn every_record_round_trips_through_an_entry(
        r in record(),
        lsn in 1u64..1 << 62,
        back in 0u64..=u64::from(u32::MAX),
        far in 1u64 << 32..1 << 40,
        salt in any::<u64>(),
    ) {
        let mut payload = Vec::new();
        let kind = r.encode(&mut payload).unwrap();
        prop_assert!(payload.len() <= MAX_RECORD_PAYLOAD);
        let mut entry = Vec::new();
        let durable = lsn.saturating_sub(back);
        encode_entry(&mut entry, kind, lsn, durable, salt, &payload);
        let e: Entry<'_> = decode_entry(&entry, salt, MAX_RECORD_PAYLOAD).unwrap();
        prop_assert_eq!(e.lsn, lsn);
        prop_assert_eq!(e.durable_before, durable);
        prop_assert_eq!(e.size(), entry.len());
        prop_assert_eq!(Record::decode(e.kind, e.payload).unwrap(), r);
        // A durable point further back than the 32-bit gap reaches reads as
        // nearer: recovery then only ever judges more leniently.
        let mut far_entry = Vec::new();
        encode_entry(&mut far_entry, kind, lsn, lsn.saturating_sub(far), salt, &payload);
        let e = decode_entry(&far_entry, salt, MAX_RECORD_PAYLOAD).unwrap();
        prop_assert!(e.durable_before >= lsn.saturating_sub(far));
        // Any cut of the entry is refused.
        let cut = entry.len() / 2;
        prop_assert!(decode_entry(&entry[..cut], salt, MAX_RECORD_PAYLOAD).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1200),
        kind in any::<u8>(),
        salt in any::<u64>(),
    ) {
        // A payload of any type decodes to a record that re-encodes to the same
        // bytes, or to a typed error.
        if let Ok(r) = Record::decode(kind, &bytes) {
            let mut again = Vec::new();
            prop_assert_eq!(r.encode(&mut again).unwrap(), kind);
            prop_assert_eq!(&again[..], &bytes[..]);
        }
        if let Ok(e) = decode_entry(&bytes, salt, 64) {
            prop_assert!(e.payload.len() <= 64);
            let mut again = Vec::new();
            encode_entry(&mut again, e.kind, e.lsn, e.durable_before, salt, e.payload);
            prop_assert_eq!(&again[..], &bytes[..e.size()]);
        }
    }
}

#[test]
fn coding_survives() {
    let m = Message::binary("1", "2", &[0, 255]).unwrap();
    let r = Record::Accepted {
        link: 0,
        dir: Direction::Rx,
        seq: 1,
        message: m,
    };
    let mut p = Vec::new();
    let kind = r.encode(&mut p).unwrap();
    match Record::decode(kind, &p).unwrap() {
        Record::Accepted { message, .. } => assert_eq!(message.coding, Coding::Binary),
        other => panic!("{other:?}"),
    }
}
