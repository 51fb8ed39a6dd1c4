//! Steady state allocates nothing: after warm-up, full rounds of traffic both ways
//! (send, transmit, receive, confirm, deliver, process, outcome back) make no heap
//! allocation. Counted with a global allocator wrapper, on the test's own thread
//! only (the test harness's threads may allocate meanwhile).

use smslink::link::LinkConfig;
use smslink::message::Message;
use smslink::ring::Outcome;
use smslink::sim::Pair;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the thread whose allocations count.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Fill both sending rings, then move bytes and hand every message on until both
/// rings are empty again.
fn round(p: &mut Pair, msg: &Message) {
    while p.a.send(msg).is_ok() && p.b.send(msg).is_ok() {}
    for _ in 0..100 {
        let moved = p.exchange().expect("clean stream");
        for ep in [&mut p.a, &mut p.b] {
            while ep.poll_event().is_some() {}
            while let Some((seq, _)) = ep.next_received() {
                ep.mark_processed(seq, Outcome::Accepted)
                    .expect("delivered");
            }
        }
        if !moved && p.a.tx_ring().in_use() == 0 && p.b.tx_ring().in_use() == 0 {
            return;
        }
    }
    panic!("round did not finish");
}

/// Rounds before counting: slot blocks circulate through a per-thread pool, and a
/// slot's payload buffer is allocated the first time a block holds a message there.
const WARM: u64 = 8;

#[test]
fn steady_state_makes_no_allocation() {
    let config = |name: &str| LinkConfig::new(name, b"allocation test key");
    let mut p = Pair::new(config("a"), config("b"), Instant::now()).unwrap();
    let msg = Message::text("+61400000001", "12345", "steady").unwrap();
    p.connect();
    for _ in 0..WARM {
        round(&mut p, &msg);
    }
    assert!(p.a.is_up() && p.b.is_up());
    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..20 {
        round(&mut p, &msg);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(false));
    assert_eq!(after - before, 0, "allocations in steady state");
    assert_eq!(p.a.cursors().last_processed, (WARM + 20) * 255);
}

/// A link's slots follow its traffic: none while idle, a full window's worth while
/// 255 messages are in flight each way, none again once they are Processed.
#[test]
fn full_window_gives_its_slot_blocks_back_when_processed() {
    let config = |name: &str| LinkConfig::new(name, b"allocation test key");
    let mut p = Pair::new(config("a"), config("b"), Instant::now()).unwrap();
    let held = |p: &Pair| {
        [&p.a, &p.b]
            .iter()
            .map(|ep| ep.tx_ring().blocks_held() + ep.rx_ring().blocks_held())
            .sum::<usize>()
    };
    p.connect();
    assert_eq!(held(&p), 0, "an idle link holds no slots");
    let text = "x".repeat(160);
    let msg = Message::text("+61400000001", "12345", &text).unwrap();
    while p.a.send(&msg).is_ok() && p.b.send(&msg).is_ok() {}
    for _ in 0..100 {
        if !p.exchange().expect("clean stream") {
            break;
        }
    }
    assert_eq!(p.b.rx_ring().in_use(), 255);
    assert_eq!(
        held(&p),
        4 * 16,
        "both rings of both ends hold a full window"
    );
    round(&mut p, &msg);
    assert_eq!(p.a.tx_ring().in_use() + p.b.rx_ring().in_use(), 0);
    assert_eq!(held(&p), 0, "every block given back once processed");
}
