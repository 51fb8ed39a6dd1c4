//! Steady state allocates nothing: after warm-up, full rounds of traffic both ways
//! (send, transmit, receive, confirm, deliver, process, outcome back) make no heap
//! allocation. Counted with a global allocator wrapper; this file holds one test so
//! no other thread allocates meanwhile.

use smslink::link::{Endpoint, LinkConfig};
use smslink::message::Message;
use smslink::ring::Outcome;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn round(a: &mut Endpoint, b: &mut Endpoint, buf: &mut Vec<u8>, msg: &Message, now: Instant) {
    while a.send(msg).is_ok() && b.send(msg).is_ok() {}
    for _ in 0..100 {
        let mut moved = false;
        buf.clear();
        if a.poll_transmit(now, buf) > 0 {
            moved = true;
            b.handle_input(buf, now).expect("clean stream");
        }
        buf.clear();
        if b.poll_transmit(now, buf) > 0 {
            moved = true;
            a.handle_input(buf, now).expect("clean stream");
        }
        for ep in [&mut *a, &mut *b] {
            while ep.poll_event().is_some() {}
            while let Some((seq, _)) = ep.next_received() {
                ep.mark_processed(seq, Outcome::Accepted)
                    .expect("delivered");
            }
        }
        if !moved && a.tx_ring().in_use() == 0 && b.tx_ring().in_use() == 0 {
            return;
        }
    }
    panic!("round did not finish");
}

#[test]
fn steady_state_makes_no_allocation() {
    let now = Instant::now();
    let mut a = Endpoint::new(LinkConfig::new("a", b"k"), now).unwrap();
    let mut b = Endpoint::new(LinkConfig::new("b", b"k"), now).unwrap();
    let mut buf = Vec::with_capacity(1 << 20);
    let msg = Message::text("+61400000001", "12345", "steady").unwrap();
    a.connected(now);
    b.connected(now);
    for _ in 0..3 {
        round(&mut a, &mut b, &mut buf, &msg, now);
    }
    assert!(a.is_up() && b.is_up());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..20 {
        round(&mut a, &mut b, &mut buf, &msg, now);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations in steady state");
    assert_eq!(a.cursors().last_processed, 23 * 255);
}
