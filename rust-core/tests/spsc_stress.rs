//! Two real threads through a small ring: every item arrives, once, in order.
//! Bounded by item count, not by time; a full or empty ring yields the CPU.

#![cfg(not(loom))]

use smslink::message::Message;
use smslink::runtime::spsc;
use std::thread;

const ITEMS: u64 = 1_000_000;

#[test]
fn one_million_items_in_order_single_pushes_and_pops() {
    // Small capacity forces constant full/empty transitions and wrap-around.
    let (mut tx, mut rx) = spsc::channel::<u64>(7);
    let producer = thread::spawn(move || {
        for i in 0..ITEMS {
            let mut item = i;
            while let Err(back) = tx.push(item) {
                item = back;
                thread::yield_now();
            }
        }
    });
    let mut expected = 0;
    while expected < ITEMS {
        match rx.pop() {
            Some(v) => {
                assert_eq!(v, expected, "out of order or lost");
                expected += 1;
            }
            None => {
                assert!(
                    !(rx.is_abandoned() && rx.is_empty()),
                    "producer finished but item {expected} never arrived"
                );
                thread::yield_now();
            }
        }
    }
    producer.join().unwrap();
    assert_eq!(rx.pop(), None, "more items arrived than were pushed");
}

#[test]
fn one_million_items_in_order_batched() {
    let (mut tx, mut rx) = spsc::channel::<u64>(64);
    let producer = thread::spawn(move || {
        let mut source = 0..ITEMS;
        while !source.is_empty() {
            if tx.push_from(&mut source) == 0 {
                thread::yield_now();
            }
        }
    });
    let mut expected = 0;
    while expected < ITEMS {
        let popped = rx.pop_each(usize::MAX, |v| {
            assert_eq!(v, expected, "out of order or lost");
            expected += 1;
        });
        if popped == 0 {
            thread::yield_now();
        }
    }
    producer.join().unwrap();
    assert!(rx.is_abandoned());
    assert_eq!(rx.pop(), None);
}

#[test]
fn messages_cross_threads_intact() {
    const COUNT: u64 = 20_000;
    let (mut tx, mut rx) = spsc::channel::<Message>(16);
    let producer = thread::spawn(move || {
        for i in 0..COUNT {
            let mut m = Message::text("+61400000001", "12345", &format!("message {i}"))
                .expect("valid message");
            m.client_ref = i;
            while let Err(back) = tx.push(m) {
                m = back;
                thread::yield_now();
            }
        }
    });
    let mut expected = 0;
    while expected < COUNT {
        match rx.pop() {
            Some(m) => {
                assert_eq!(m.client_ref, expected);
                assert_eq!(m.text_str(), Some(format!("message {expected}").as_str()));
                expected += 1;
            }
            None => thread::yield_now(),
        }
    }
    producer.join().unwrap();
}
