//! The circular array of slots (the seed's Fig. 2): states, cursors, and memory
//! that follows the messages in flight.
//!
//! Two mirrored arrays exist per direction of a link:
//!
//! * [`Ring`] on the sending side: a message is *Retrieved* from the local source,
//!   *Sent* on the link, *Confirmed* when the peer has stored it, *Processed* when the
//!   peer's application has handed it on (the slot is then free).
//! * [`RxRing`] on the receiving side: a message is *Stored* when it arrives,
//!   *Delivered* when the local application has taken it, *Processed* when the
//!   application reports the outcome.
//!
//! Messages are numbered by a 64-bit sequence number starting at 1; the slot of a
//! message is `seq % capacity`, so within one sender epoch a message sits at the
//! same position in both arrays. A ring holds memory only for the messages in
//! flight: slots come in blocks taken when messages arrive and given back when they
//! are Processed (see `store`), so an idle ring costs a few hundred bytes.
//!
//! # Cursors
//!
//! A cursor value `n` means "every seq `<= n` has reached this stage"; 0 means none
//! yet. Confirmations and processing may happen out of order, so a message beyond a
//! cursor may already be further along; the cursor moves when the gap closes.
//!
//! * `last_retrieved`: highest seq taken into the ring.
//! * `last_sent`: highest seq put on the link at least once (sending is in order).
//! * `last_confirmed`: highest seq such that every seq `<=` it is Confirmed or Processed.
//! * `last_processed`: highest seq such that every seq `<=` it is Processed.
//!
//! Invariant: `last_processed <= last_confirmed <= last_sent <= last_retrieved` and
//! `last_retrieved - last_processed <= capacity`. The ring is full when that
//! difference equals the capacity: a Processed slot beyond a not-yet-processed one
//! cannot be reused before the gap closes, because its index belongs to a later seq.

use crate::message::{Address, Coding, Envelope, Message, MessageKind, MAX_PAYLOAD};
use std::cell::RefCell;
use std::thread::LocalKey;
use store::{Blocks, History, Pool, Pooled};
use thiserror::Error;

mod store;

/// Slots a ring has unless configured otherwise (the seed's 255).
pub const DEFAULT_CAPACITY: usize = 255;
/// Largest capacity accepted (bounds memory: about 130 bytes a slot in flight, plus
/// its payload).
pub const MAX_CAPACITY: usize = 1 << 16;

/// Stage of a message in the sending ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SlotState {
    /// Taken from the local source, not yet on the link.
    Retrieved = 0,
    /// Put on the link at least once, not yet confirmed.
    Sent = 1,
    /// The peer acknowledged that it stored the message.
    Confirmed = 2,
    /// The peer's application handed it on; the slot is free.
    Processed = 3,
}

/// What became of a message once it was handed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The SMSC accepted the submit, or the IM server stored the message.
    Accepted,
    /// Refused downstream, with the SMSC's (or application's) error code.
    Rejected { code: u32 },
}

/// The four cursors of a sending ring (see the module docs for their exact meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Cursors {
    pub last_retrieved: u64,
    pub last_sent: u64,
    pub last_confirmed: u64,
    pub last_processed: u64,
}

/// Stage of a message in the receiving ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RxState {
    /// Arrived and stored; waiting for the application.
    Stored = 0,
    /// Taken by the application, outcome not yet reported.
    Delivered = 1,
    /// Outcome reported; the slot is free.
    Processed = 2,
}

/// The cursors of a receiving ring (same "all seqs `<=` n" rule as [`Cursors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RxCursors {
    /// Highest seq stored; arrival is in order, so every seq below is stored too.
    pub last_stored: u64,
    /// Highest seq handed to the application (delivery is in order).
    pub last_delivered: u64,
    /// Highest seq such that every seq `<=` it is Processed.
    pub last_processed: u64,
}

/// The ring has `capacity` messages that are not Processed: the source must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("ring full: {capacity} messages not yet processed")]
pub struct Full {
    pub capacity: usize,
}

/// A state change that the ring refuses; nothing was modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RingError {
    #[error("seq {seq} is not held in the ring (window {low}..={high})")]
    NotInRing { seq: u64, low: u64, high: u64 },
    #[error("seq {seq} is {state:?}, cannot become {wanted:?}")]
    BadTransition {
        seq: u64,
        state: SlotState,
        wanted: SlotState,
    },
    #[error("seq {seq} is {state:?} in the receive ring, cannot become {wanted:?}")]
    BadRxTransition {
        seq: u64,
        state: RxState,
        wanted: RxState,
    },
    #[error("seq {seq} arrived out of order (expected {expected})")]
    OutOfOrder { seq: u64, expected: u64 },
}

/// A journal replay that does not fit the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "{held} messages not yet processed (seqs {low}..={high}) exceed the ring's {capacity} slots"
)]
pub struct RestoreError {
    pub held: u64,
    pub low: u64,
    pub high: u64,
    pub capacity: usize,
}

/// What a journal replay knows of one seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Not yet Processed: the message is held again.
    Message(Box<Message>),
    /// Processed, with its outcome if the journal still has it.
    Outcome(Option<Outcome>),
}

/// One seq of a journal replay.
pub type RestoredSlot = (u64, Held);

/// The rule both rings rebuild by: every seq up to `base`, and every seq in
/// `(base, high]` missing from `slots` (its records were released), is Processed;
/// the slots of the last `capacity` seqs up to `high` are filled by `fill`. Returns
/// Last Processed; every held seq must lie within `capacity` of it.
fn restore_window(
    capacity: usize,
    base: u64,
    high: u64,
    slots: impl IntoIterator<Item = RestoredSlot>,
    mut fill: impl FnMut(u64, Held),
) -> Result<u64, RestoreError> {
    let low = high.saturating_sub(capacity as u64);
    for seq in low + 1..=high {
        fill(seq, Held::Outcome(None));
    }
    let mut oldest_held = None;
    for (seq, held) in slots {
        if seq > high {
            continue;
        }
        let held = match held {
            Held::Message(_) if seq <= base => Held::Outcome(None),
            h => h,
        };
        if matches!(held, Held::Message(_)) {
            oldest_held = Some(oldest_held.map_or(seq, |o: u64| o.min(seq)));
        }
        if seq > low {
            fill(seq, held);
        }
    }
    let last_processed = oldest_held.map_or(high, |o| o - 1);
    if last_processed < low {
        return Err(RestoreError {
            held: high - last_processed,
            low: last_processed + 1,
            high,
            capacity,
        });
    }
    Ok(last_processed)
}

/// One slot of the sending ring.
#[derive(Debug, Clone)]
pub struct Slot {
    pub seq: u64,
    pub state: SlotState,
    /// Set once the slot is Processed (and kept if a restarted peer gets it again).
    pub outcome: Option<Outcome>,
    pub message: Message,
}

/// Both rings' slots are stored alike (seq, state, outcome, message); only their
/// state types differ.
macro_rules! pooled_slot {
    ($slot:ident, $state:ident) => {
        impl Pooled for $slot {
            fn empty() -> Self {
                $slot {
                    seq: 0,
                    state: $state::Processed,
                    outcome: None,
                    message: Message::EMPTY,
                }
            }
            fn seq(&self) -> u64 {
                self.seq
            }
            fn shrink(&mut self) {
                self.message.clear_payload();
            }
            fn processed(&self) -> Option<Option<Outcome>> {
                (self.state == $state::Processed).then_some(self.outcome)
            }
            fn pool() -> &'static LocalKey<Pool<Self>> {
                thread_local!(static POOL: Pool<$slot> = const { RefCell::new(Vec::new()) });
                &POOL
            }
        }
    };
}

pooled_slot!(Slot, SlotState);

/// The sending ring (see the module docs).
pub struct Ring {
    capacity: usize,
    slots: Blocks<Slot>,
    /// Outcomes at and below Last Processed.
    history: History,
    cursors: Cursors,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .field("cursors", &self.cursors)
            .finish()
    }
}

fn check_capacity(capacity: usize) -> usize {
    capacity.clamp(1, MAX_CAPACITY)
}

/// The outcome a Processed `seq` had, if its slot would still be held in a fixed
/// array of `capacity` slots (it is within the last `capacity` seqs up to `high`).
fn remembered(
    seq: u64,
    last_processed: u64,
    high: u64,
    capacity: usize,
    history: &History,
) -> Option<Option<Outcome>> {
    (seq != 0 && seq <= last_processed && seq + capacity as u64 > high).then(|| history.get(seq))
}

/// Every seq of a replay's window `(high - capacity, high]` with what is known of
/// it, in seq order, and Last Processed (see [`restore_window`]).
type Window = (Vec<(u64, Held)>, u64);

fn replay(
    capacity: usize,
    base: u64,
    high: u64,
    slots: impl IntoIterator<Item = RestoredSlot>,
) -> Result<Window, RestoreError> {
    let low = high.saturating_sub(capacity as u64);
    let mut window: Vec<(u64, Held)> = Vec::new();
    let last_processed = restore_window(capacity, base, high, slots, |seq, held| {
        let i = (seq - low - 1) as usize;
        if i == window.len() {
            window.push((seq, held));
        } else {
            window[i].1 = held;
        }
    })?;
    Ok((window, last_processed))
}

impl Ring {
    /// A ring of `capacity` slots (clamped to `1..=MAX_CAPACITY`), all free. It
    /// holds no slot memory until messages come.
    pub fn new(capacity: usize) -> Self {
        let capacity = check_capacity(capacity);
        Ring {
            capacity,
            slots: Blocks::new(capacity),
            history: History::default(),
            cursors: Cursors::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn cursors(&self) -> Cursors {
        self.cursors
    }

    /// Messages not yet Processed (including Processed ones beyond a gap).
    pub fn in_use(&self) -> usize {
        (self.cursors.last_retrieved - self.cursors.last_processed) as usize
    }

    pub fn is_full(&self) -> bool {
        self.in_use() >= self.capacity()
    }

    /// Blocks of slots the ring holds now (none when every message is Processed).
    pub fn blocks_held(&self) -> usize {
        self.slots.held()
    }

    /// The slot holding `seq`, if `seq` is within the live window
    /// `(last_processed, last_retrieved]`.
    pub fn slot(&self, seq: u64) -> Option<&Slot> {
        let c = self.cursors;
        if seq <= c.last_processed || seq > c.last_retrieved {
            return None;
        }
        self.slots.get(seq)
    }

    /// `Some(outcome)` if `seq` is Processed and its slot would not have been
    /// reused yet (it is within the last `capacity` seqs); `None` otherwise.
    pub fn processed_outcome(&self, seq: u64) -> Option<Option<Outcome>> {
        let c = self.cursors;
        match self.slot(seq) {
            Some(s) => s.processed(),
            None => remembered(
                seq,
                c.last_processed,
                c.last_retrieved,
                self.capacity,
                &self.history,
            ),
        }
    }

    fn live_slot_mut(&mut self, seq: u64) -> Result<&mut Slot, RingError> {
        let c = self.cursors;
        let not_in_ring = RingError::NotInRing {
            seq,
            low: c.last_processed + 1,
            high: c.last_retrieved,
        };
        if seq <= c.last_processed || seq > c.last_retrieved {
            return Err(not_in_ring);
        }
        self.slots.get_mut(seq).ok_or(not_in_ring)
    }

    /// Retrieve a message from the source: copy it into the next slot.
    /// Moves Last Retrieved. Refuses (back-pressure) when full; never drops.
    pub fn push(&mut self, message: &Message) -> Result<u64, Full> {
        if self.is_full() {
            return Err(Full {
                capacity: self.capacity(),
            });
        }
        let seq = self.cursors.last_retrieved + 1;
        let slot = self.slots.slot_for(seq);
        slot.seq = seq;
        slot.state = SlotState::Retrieved;
        slot.outcome = None;
        slot.message.copy_from(message);
        self.cursors.last_retrieved = seq;
        self.history
            .forget_through(seq.saturating_sub(self.capacity as u64));
        Ok(seq)
    }

    /// Record that `seq` was put on the link. The first send must be in order and
    /// moves Last Sent; a resend of a Sent message changes nothing.
    /// Returns whether the state changed.
    pub fn mark_sent(&mut self, seq: u64) -> Result<bool, RingError> {
        let next = self.cursors.last_sent + 1;
        let slot = self.live_slot_mut(seq)?;
        match slot.state {
            SlotState::Retrieved if seq == next => {
                slot.state = SlotState::Sent;
                self.cursors.last_sent = seq;
                Ok(true)
            }
            SlotState::Retrieved => Err(RingError::OutOfOrder {
                seq,
                expected: next,
            }),
            SlotState::Sent => Ok(false),
            state => Err(RingError::BadTransition {
                seq,
                state,
                wanted: SlotState::Sent,
            }),
        }
    }

    /// The peer stored `seq`. Idempotent: a seq already Confirmed or Processed, or
    /// already freed, is left alone (returns false). Moves Last Confirmed when a gap
    /// closes. A message that already has its outcome (see
    /// [`unconfirm_all`](Self::unconfirm_all)) changes state but returns false: it is
    /// no news.
    pub fn confirm(&mut self, seq: u64) -> Result<bool, RingError> {
        if seq != 0 && seq <= self.cursors.last_processed {
            return Ok(false);
        }
        let slot = self.live_slot_mut(seq)?;
        match slot.state {
            SlotState::Sent => {
                slot.state = SlotState::Confirmed;
                let news = slot.outcome.is_none();
                self.advance();
                Ok(news)
            }
            SlotState::Confirmed | SlotState::Processed => Ok(false),
            state @ SlotState::Retrieved => Err(RingError::BadTransition {
                seq,
                state,
                wanted: SlotState::Confirmed,
            }),
        }
    }

    /// The peer handed `seq` on with `outcome`. A Sent message becomes Processed
    /// directly (the confirmation may still be on its way). Idempotent like
    /// [`confirm`](Self::confirm). Moves Last Confirmed / Last Processed when gaps close.
    /// A message that already has its outcome (see [`unconfirm_all`](Self::unconfirm_all))
    /// keeps that first outcome and returns false.
    pub fn process(&mut self, seq: u64, outcome: Outcome) -> Result<bool, RingError> {
        if seq != 0 && seq <= self.cursors.last_processed {
            return Ok(false);
        }
        let slot = self.live_slot_mut(seq)?;
        match slot.state {
            SlotState::Sent | SlotState::Confirmed => {
                slot.state = SlotState::Processed;
                let news = slot.outcome.is_none();
                slot.outcome.get_or_insert(outcome);
                self.advance();
                Ok(news)
            }
            SlotState::Processed => Ok(false),
            state @ SlotState::Retrieved => Err(RingError::BadTransition {
                seq,
                state,
                wanted: SlotState::Processed,
            }),
        }
    }

    /// The peer lost what it had stored (it restarted): every Confirmed message
    /// becomes Sent again, and Last Confirmed falls back to Last Processed. This is
    /// the only operation that moves a cursor backwards. Returns how many Confirmed
    /// ones changed; `on_change` sees each of them.
    ///
    /// A message Processed out of order above Last Processed becomes Sent too,
    /// silently and keeping its outcome: the new peer receives it again (it starts
    /// at Last Processed), and Last Processed must not pass it before the new peer
    /// has processed it, or the cursor would claim seqs the new peer never stored.
    pub fn unconfirm_all(&mut self, mut on_change: impl FnMut(&Slot)) -> usize {
        let c = self.cursors;
        let mut changed = 0;
        for seq in c.last_processed + 1..=c.last_sent {
            let Some(slot) = self.slots.get_mut(seq) else {
                continue;
            };
            match slot.state {
                SlotState::Confirmed => {
                    slot.state = SlotState::Sent;
                    changed += 1;
                    on_change(slot);
                }
                SlotState::Processed => slot.state = SlotState::Sent,
                SlotState::Retrieved | SlotState::Sent => {}
            }
        }
        self.cursors.last_confirmed = c.last_processed;
        self.advance();
        changed
    }

    /// Rebuild a sending ring from a journal replay: every seq up to `base`, and
    /// every seq in `(base, high]` missing from `slots` (its records were released),
    /// is Processed; each message held is Sent again (it may have reached the peer
    /// before the restart; it goes out again, and the peer, which recognises seqs,
    /// ignores what it holds); a Processed one keeps its outcome. Only the last
    /// `capacity` seqs up to `high` get slots: every held one must be among them.
    pub fn restore(
        capacity: usize,
        base: u64,
        high: u64,
        slots: impl IntoIterator<Item = RestoredSlot>,
    ) -> Result<Self, RestoreError> {
        let mut ring = Ring::new(capacity);
        let (window, last_processed) = replay(ring.capacity, base, high, slots)?;
        for (seq, held) in window {
            if seq <= last_processed {
                let outcome = match held {
                    Held::Outcome(o) => o,
                    Held::Message(_) => None,
                };
                ring.history.record(seq, outcome);
                continue;
            }
            let slot = ring.slots.slot_for(seq);
            slot.seq = seq;
            match held {
                Held::Message(m) => {
                    slot.message = *m;
                    slot.outcome = None;
                    slot.state = SlotState::Sent;
                }
                Held::Outcome(o) => {
                    slot.message = Message::EMPTY;
                    slot.outcome = o;
                    slot.state = SlotState::Processed;
                }
            }
        }
        ring.cursors = Cursors {
            last_retrieved: high,
            last_sent: high,
            last_confirmed: last_processed,
            last_processed,
        };
        ring.advance();
        Ok(ring)
    }

    fn advance(&mut self) {
        let c = &mut self.cursors;
        self.slots.advance_processed(
            &mut self.history,
            &mut c.last_processed,
            c.last_sent,
            c.last_retrieved,
        );
        if c.last_confirmed < c.last_processed {
            c.last_confirmed = c.last_processed;
        }
        while c.last_confirmed < c.last_sent {
            let s = self.slots.get(c.last_confirmed + 1);
            if !s.is_some_and(|s| matches!(s.state, SlotState::Confirmed | SlotState::Processed)) {
                break;
            }
            c.last_confirmed += 1;
        }
    }
}

/// One slot of the receiving ring.
#[derive(Debug, Clone)]
pub struct RxSlot {
    pub seq: u64,
    pub state: RxState,
    pub outcome: Option<Outcome>,
    pub message: Message,
}

pooled_slot!(RxSlot, RxState);

/// The receiving ring, the mirror of the peer's [`Ring`] (see the module docs).
pub struct RxRing {
    capacity: usize,
    slots: Blocks<RxSlot>,
    /// Outcomes at and below Last Processed.
    history: History,
    cursors: RxCursors,
}

impl std::fmt::Debug for RxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxRing")
            .field("capacity", &self.capacity)
            .field("cursors", &self.cursors)
            .finish()
    }
}

/// Result of offering a message to the receiving ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new message; it will be delivered.
    New,
    /// Already held (a resend after reconnection); ignored.
    Duplicate,
}

impl RxRing {
    /// A receiving ring of `capacity` slots (clamped to `1..=MAX_CAPACITY`). It
    /// holds no slot memory until messages come.
    pub fn new(capacity: usize) -> Self {
        let capacity = check_capacity(capacity);
        RxRing {
            capacity,
            slots: Blocks::new(capacity),
            history: History::default(),
            cursors: RxCursors::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn cursors(&self) -> RxCursors {
        self.cursors
    }

    /// Highest seq that can be stored now (flow-control limit for the sender).
    pub fn limit(&self) -> u64 {
        self.cursors.last_processed + self.capacity as u64
    }

    /// Messages stored but not yet Processed.
    pub fn in_use(&self) -> usize {
        (self.cursors.last_stored - self.cursors.last_processed) as usize
    }

    /// Blocks of slots the ring holds now (none when every message is Processed).
    pub fn blocks_held(&self) -> usize {
        self.slots.held()
    }

    /// The slot holding `seq`, if `seq` is within `(last_processed, last_stored]`.
    pub fn slot(&self, seq: u64) -> Option<&RxSlot> {
        let c = self.cursors;
        if seq <= c.last_processed || seq > c.last_stored {
            return None;
        }
        self.slots.get(seq)
    }

    /// `Some(outcome)` if `seq` is Processed and its slot would not have been
    /// reused yet (it is within the last `capacity` seqs); `None` otherwise.
    pub fn processed_outcome(&self, seq: u64) -> Option<Option<Outcome>> {
        let c = self.cursors;
        match self.slot(seq) {
            Some(s) => s.processed(),
            None => remembered(
                seq,
                c.last_processed,
                c.last_stored,
                self.capacity,
                &self.history,
            ),
        }
    }

    /// Store the message numbered `seq`, filling the slot in place. Arrival must be
    /// in order: `seq <= last_stored` is a duplicate (ignored), `last_stored + 1` is
    /// stored, anything else is refused. Moves Last Stored.
    pub fn store(
        &mut self,
        seq: u64,
        from: Address,
        to: Address,
        coding: Coding,
        payload: &[u8],
    ) -> Result<Stored, RingError> {
        let envelope = Envelope {
            from,
            to,
            coding,
            client_ref: 0,
            kind: MessageKind::Sm,
            part: None,
        };
        self.store_envelope(seq, &envelope, payload)
    }

    /// `store` with every field of the message (reference, kind, part) as it came.
    pub fn store_envelope(
        &mut self,
        seq: u64,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<Stored, RingError> {
        let expected = self.cursors.last_stored + 1;
        if seq < expected {
            return Ok(Stored::Duplicate);
        }
        if seq != expected {
            return Err(RingError::OutOfOrder { seq, expected });
        }
        if seq > self.limit() {
            return Err(RingError::NotInRing {
                seq,
                low: self.cursors.last_processed + 1,
                high: self.limit(),
            });
        }
        // Payload length was checked by the decoder; a longer one cannot be stored.
        if payload.len() > MAX_PAYLOAD {
            return Err(RingError::NotInRing {
                seq,
                low: expected,
                high: expected,
            });
        }
        let slot = self.slots.slot_for(seq);
        let _ = slot.message.set_payload(payload);
        slot.seq = seq;
        slot.state = RxState::Stored;
        slot.outcome = None;
        slot.message.set_envelope(envelope);
        self.cursors.last_stored = seq;
        self.history
            .forget_through(seq.saturating_sub(self.capacity as u64));
        Ok(Stored::New)
    }

    /// Hand the next stored message to the application, in order. Moves Last Delivered.
    /// A slot already Processed (restored from a journal: the application had
    /// handed it on out of order before a restart) is passed over, never delivered
    /// twice.
    pub fn deliver_next(&mut self) -> Option<(u64, &Message)> {
        self.deliver_next_upto(self.cursors.last_stored)
    }

    /// [`deliver_next`](Self::deliver_next), but no message above `limit` (for
    /// example what a journal has not made durable yet).
    pub fn deliver_next_upto(&mut self, limit: u64) -> Option<(u64, &Message)> {
        let limit = limit.min(self.cursors.last_stored);
        loop {
            if self.cursors.last_delivered >= limit {
                return None;
            }
            let seq = self.cursors.last_delivered + 1;
            self.cursors.last_delivered = seq;
            debug_assert!(self.slots.get(seq).is_some(), "stored seq {seq} has a slot");
            if self
                .slots
                .get(seq)
                .is_none_or(|s| s.state == RxState::Processed)
            {
                continue;
            }
            let slot = self.slots.get_mut(seq)?;
            slot.state = RxState::Delivered;
            return Some((seq, &slot.message));
        }
    }

    /// Rebuild a receiving ring from a journal replay (the same rule as
    /// [`Ring::restore`]):
    /// each message held is Stored again, delivered anew; a Processed one keeps its
    /// outcome (announced again to the peer) and is never delivered again. Last
    /// Delivered restarts at Last Processed.
    pub fn restore(
        capacity: usize,
        base: u64,
        high: u64,
        slots: impl IntoIterator<Item = RestoredSlot>,
    ) -> Result<Self, RestoreError> {
        let mut ring = RxRing::new(capacity);
        let (window, last_processed) = replay(ring.capacity, base, high, slots)?;
        for (seq, held) in window {
            if seq <= last_processed {
                let outcome = match held {
                    Held::Outcome(o) => o,
                    Held::Message(_) => None,
                };
                ring.history.record(seq, outcome);
                continue;
            }
            let slot = ring.slots.slot_for(seq);
            slot.seq = seq;
            match held {
                Held::Message(m) => {
                    slot.message = *m;
                    slot.message.client_ref = 0;
                    slot.outcome = None;
                    slot.state = RxState::Stored;
                }
                Held::Outcome(o) => {
                    slot.message = Message::EMPTY;
                    slot.outcome = o;
                    slot.state = RxState::Processed;
                }
            }
        }
        ring.cursors = RxCursors {
            last_stored: high,
            last_delivered: last_processed,
            last_processed,
        };
        Ok(ring)
    }

    /// The application handed `seq` on with `outcome`. Must be Delivered; moves Last
    /// Processed when a gap closes.
    pub fn process(&mut self, seq: u64, outcome: Outcome) -> Result<(), RingError> {
        let c = self.cursors;
        if seq <= c.last_processed || seq > c.last_delivered {
            let state = if seq <= c.last_processed {
                RxState::Processed
            } else {
                RxState::Stored
            };
            if seq == 0 || seq > c.last_stored {
                return Err(RingError::NotInRing {
                    seq,
                    low: c.last_processed + 1,
                    high: c.last_delivered,
                });
            }
            return Err(RingError::BadRxTransition {
                seq,
                state,
                wanted: RxState::Processed,
            });
        }
        let Some(slot) = self.slots.get_mut(seq) else {
            return Err(RingError::NotInRing {
                seq,
                low: c.last_processed + 1,
                high: c.last_delivered,
            });
        };
        if slot.state != RxState::Delivered {
            return Err(RingError::BadRxTransition {
                seq,
                state: slot.state,
                wanted: RxState::Processed,
            });
        }
        slot.state = RxState::Processed;
        slot.outcome = Some(outcome);
        let c = &mut self.cursors;
        self.slots.advance_processed(
            &mut self.history,
            &mut c.last_processed,
            c.last_delivered,
            c.last_stored,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u64) -> Message {
        let mut m = Message::text("1", "2", &format!("m{n}")).unwrap();
        m.client_ref = n;
        m
    }

    #[test]
    fn push_until_full_then_refuse() {
        let mut r = Ring::new(3);
        assert_eq!(r.push(&msg(1)), Ok(1));
        assert_eq!(r.push(&msg(2)), Ok(2));
        assert_eq!(r.push(&msg(3)), Ok(3));
        assert!(r.is_full());
        assert_eq!(r.push(&msg(4)), Err(Full { capacity: 3 }));
        assert_eq!(r.cursors().last_retrieved, 3);
        assert_eq!(r.slot(2).unwrap().message.client_ref, 2);
        assert_eq!(r.slot(2).unwrap().state, SlotState::Retrieved);
    }

    #[test]
    fn each_step_moves_exactly_one_cursor() {
        let mut r = Ring::new(4);
        let c0 = r.cursors();
        r.push(&msg(1)).unwrap();
        let c1 = r.cursors();
        assert_eq!(
            c1,
            Cursors {
                last_retrieved: 1,
                ..c0
            }
        );
        assert!(r.mark_sent(1).unwrap());
        let c2 = r.cursors();
        assert_eq!(c2, Cursors { last_sent: 1, ..c1 });
        assert!(r.confirm(1).unwrap());
        let c3 = r.cursors();
        assert_eq!(
            c3,
            Cursors {
                last_confirmed: 1,
                ..c2
            }
        );
        assert!(r.process(1, Outcome::Accepted).unwrap());
        let c4 = r.cursors();
        assert_eq!(
            c4,
            Cursors {
                last_processed: 1,
                ..c3
            }
        );
        assert_eq!(r.processed_outcome(1), Some(Some(Outcome::Accepted)));
    }

    #[test]
    fn out_of_order_confirm_moves_cursor_when_gap_closes() {
        let mut r = Ring::new(8);
        for n in 1..=4 {
            r.push(&msg(n)).unwrap();
            r.mark_sent(n).unwrap();
        }
        r.confirm(3).unwrap();
        r.confirm(2).unwrap();
        assert_eq!(r.cursors().last_confirmed, 0);
        r.confirm(1).unwrap();
        assert_eq!(r.cursors().last_confirmed, 3);
        r.process(2, Outcome::Rejected { code: 11 }).unwrap();
        assert_eq!(r.cursors().last_processed, 0);
        r.process(1, Outcome::Accepted).unwrap();
        assert_eq!(r.cursors().last_processed, 2);
        // Processed straight from Sent (confirmation overtaken).
        r.process(4, Outcome::Accepted).unwrap();
        assert_eq!(r.cursors().last_confirmed, 4);
        assert_eq!(r.cursors().last_processed, 2);
        assert_eq!(
            r.processed_outcome(2),
            Some(Some(Outcome::Rejected { code: 11 }))
        );
    }

    #[test]
    fn processed_beyond_gap_does_not_free_space() {
        let mut r = Ring::new(2);
        for n in 1..=2 {
            r.push(&msg(n)).unwrap();
            r.mark_sent(n).unwrap();
        }
        r.process(2, Outcome::Accepted).unwrap();
        assert!(r.push(&msg(3)).is_err());
        r.process(1, Outcome::Accepted).unwrap();
        assert_eq!(r.push(&msg(3)), Ok(3));
        assert_eq!(r.push(&msg(4)), Ok(4));
        // Same position as seq % capacity: slot of 3 reused slot of 1.
        assert!(r.slot(1).is_none());
        assert_eq!(r.slot(3).unwrap().message.client_ref, 3);
    }

    #[test]
    fn refused_transitions() {
        let mut r = Ring::new(4);
        r.push(&msg(1)).unwrap();
        r.push(&msg(2)).unwrap();
        assert!(matches!(
            r.confirm(1),
            Err(RingError::BadTransition {
                state: SlotState::Retrieved,
                ..
            })
        ));
        assert!(matches!(
            r.process(1, Outcome::Accepted),
            Err(RingError::BadTransition { .. })
        ));
        assert_eq!(
            r.mark_sent(2),
            Err(RingError::OutOfOrder {
                seq: 2,
                expected: 1
            })
        );
        assert!(matches!(r.confirm(9), Err(RingError::NotInRing { .. })));
        assert!(matches!(r.mark_sent(0), Err(RingError::NotInRing { .. })));
        r.mark_sent(1).unwrap();
        assert!(!r.mark_sent(1).unwrap(), "resend changes nothing");
        r.process(1, Outcome::Accepted).unwrap();
        assert!(
            !r.confirm(1).unwrap(),
            "late confirm of a freed slot is ignored"
        );
        assert!(!r.process(1, Outcome::Accepted).unwrap());
        r.mark_sent(2).unwrap();
        r.process(2, Outcome::Accepted).unwrap();
        assert!(matches!(r.mark_sent(2), Err(RingError::NotInRing { .. })));
    }

    #[test]
    fn unconfirm_all_rewinds_processed_above_the_cursor_silently() {
        let mut r = Ring::new(8);
        for n in 1..=3 {
            r.push(&msg(n)).unwrap();
            r.mark_sent(n).unwrap();
        }
        r.process(2, Outcome::Rejected { code: 5 }).unwrap();
        r.confirm(3).unwrap();
        let mut seen = vec![];
        assert_eq!(r.unconfirm_all(|s| seen.push(s.seq)), 1);
        assert_eq!(seen, vec![3], "no news about 2: its outcome is known");
        assert_eq!(r.slot(2).unwrap().state, SlotState::Sent);
        // The new peer confirms and processes it again: no news, first outcome kept.
        assert_eq!(r.confirm(2), Ok(false));
        assert_eq!(r.process(2, Outcome::Accepted), Ok(false));
        assert_eq!(
            r.slot(2).unwrap().outcome,
            Some(Outcome::Rejected { code: 5 })
        );
        assert_eq!(r.cursors().last_processed, 0, "1 is not processed");
        assert_eq!(r.process(1, Outcome::Accepted), Ok(true));
        assert_eq!(r.cursors().last_processed, 2);
    }

    #[test]
    fn unconfirm_all_rewinds_confirmed_only() {
        let mut r = Ring::new(8);
        for n in 1..=4 {
            r.push(&msg(n)).unwrap();
            r.mark_sent(n).unwrap();
        }
        r.process(1, Outcome::Accepted).unwrap();
        r.confirm(2).unwrap();
        r.confirm(3).unwrap();
        assert_eq!(r.cursors().last_confirmed, 3);
        let mut seen = vec![];
        assert_eq!(r.unconfirm_all(|s| seen.push(s.seq)), 2);
        assert_eq!(seen, vec![2, 3]);
        assert_eq!(r.cursors().last_confirmed, 1);
        assert_eq!(r.slot(2).unwrap().state, SlotState::Sent);
        assert_eq!(r.processed_outcome(1), Some(Some(Outcome::Accepted)));
    }

    #[test]
    fn seqs_keep_counting_across_wraps() {
        let mut r = Ring::new(5);
        for n in 1..=23u64 {
            let seq = r.push(&msg(n)).unwrap();
            assert_eq!(seq, n);
            r.mark_sent(seq).unwrap();
            r.process(seq, Outcome::Accepted).unwrap();
        }
        assert_eq!(r.in_use(), 0);
    }

    #[test]
    fn slot_blocks_follow_the_messages_in_flight() {
        let mut r = Ring::new(255);
        assert_eq!(r.blocks_held(), 0, "a new ring holds no slots");
        for n in 1..=255 {
            r.push(&msg(n)).unwrap();
            r.mark_sent(n).unwrap();
        }
        assert_eq!(r.blocks_held(), 16, "255 seqs from 1 span blocks 0..=15");
        // Processed beyond a gap: nothing is given back while seq 1 holds the window.
        for n in 2..=255 {
            r.process(n, Outcome::Accepted).unwrap();
        }
        assert_eq!(r.blocks_held(), 16);
        r.process(1, Outcome::Rejected { code: 4 }).unwrap();
        assert_eq!(
            r.blocks_held(),
            0,
            "a processed window gives every block back"
        );
        assert_eq!(r.in_use(), 0);
        // The outcomes stay known until their positions would be reused.
        assert_eq!(
            r.processed_outcome(1),
            Some(Some(Outcome::Rejected { code: 4 }))
        );
        assert_eq!(r.processed_outcome(255), Some(Some(Outcome::Accepted)));
        r.push(&msg(256)).unwrap();
        assert_eq!(r.blocks_held(), 1);
        assert_eq!(r.processed_outcome(1), None, "position of 1 reused by 256");
        assert_eq!(r.processed_outcome(2), Some(Some(Outcome::Accepted)));

        let mut rx = RxRing::new(255);
        let (a, b) = (Address::new("1").unwrap(), Address::new("2").unwrap());
        for seq in 1..=255 {
            rx.store(seq, a, b, Coding::Text, &[b'x'; 160]).unwrap();
        }
        assert_eq!(rx.blocks_held(), 16);
        while rx.deliver_next().is_some() {}
        for seq in 1..=100 {
            rx.process(seq, Outcome::Accepted).unwrap();
        }
        // Blocks 0..=5 hold seqs up to 95 only; 96..=111 is still in use.
        assert_eq!(rx.blocks_held(), 10);
        for seq in 101..=255 {
            rx.process(seq, Outcome::Accepted).unwrap();
        }
        assert_eq!(rx.blocks_held(), 0);
        assert_eq!(rx.processed_outcome(7), Some(Some(Outcome::Accepted)));
    }

    #[test]
    fn rx_ring_in_order_store_deliver_process() {
        let mut rx = RxRing::new(3);
        let a = Address::new("1").unwrap();
        let b = Address::new("2").unwrap();
        assert_eq!(rx.store(1, a, b, Coding::Text, b"x"), Ok(Stored::New));
        assert_eq!(rx.store(1, a, b, Coding::Text, b"x"), Ok(Stored::Duplicate));
        assert_eq!(
            rx.store(3, a, b, Coding::Text, b"z"),
            Err(RingError::OutOfOrder {
                seq: 3,
                expected: 2
            })
        );
        assert_eq!(rx.store(2, a, b, Coding::Binary, b"y"), Ok(Stored::New));
        assert_eq!(rx.store(3, a, b, Coding::Text, b"z"), Ok(Stored::New));
        assert!(matches!(
            rx.store(4, a, b, Coding::Text, b"w"),
            Err(RingError::NotInRing { .. })
        ));
        assert!(matches!(
            rx.process(1, Outcome::Accepted),
            Err(RingError::BadRxTransition {
                state: RxState::Stored,
                ..
            })
        ));
        let (s, m) = rx.deliver_next().unwrap();
        assert_eq!((s, m.payload()), (1, &b"x"[..]));
        let (s, m) = rx.deliver_next().unwrap();
        assert_eq!((s, m.payload(), m.coding), (2, &b"y"[..], Coding::Binary));
        rx.process(2, Outcome::Accepted).unwrap();
        assert_eq!(rx.cursors().last_processed, 0);
        rx.process(1, Outcome::Rejected { code: 3 }).unwrap();
        assert_eq!(
            rx.cursors(),
            RxCursors {
                last_stored: 3,
                last_delivered: 2,
                last_processed: 2
            }
        );
        assert!(matches!(
            rx.process(1, Outcome::Accepted),
            Err(RingError::BadRxTransition {
                state: RxState::Processed,
                ..
            })
        ));
        assert_eq!(rx.limit(), 5);
        assert_eq!(rx.store(4, a, b, Coding::Text, b"w"), Ok(Stored::New));
        assert!(rx.slot(1).is_none());
        assert_eq!(rx.processed_outcome(2), Some(Some(Outcome::Accepted)));
        assert!(matches!(
            rx.process(9, Outcome::Accepted),
            Err(RingError::NotInRing { .. })
        ));
    }

    mod model {
        use super::super::*;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Op {
            Push,
            SendNext,
            Confirm(u8),
            Process(u8, bool),
            Unconfirm,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => Just(Op::Push),
                3 => Just(Op::SendNext),
                3 => any::<u8>().prop_map(Op::Confirm),
                3 => (any::<u8>(), any::<bool>()).prop_map(|(s, ok)| Op::Process(s, ok)),
                1 => Just(Op::Unconfirm),
            ]
        }

        /// The cursor definitions of the module docs, computed from scratch.
        fn expected(model: &BTreeMap<u64, SlotState>, last_retrieved: u64) -> Cursors {
            let upto = |ok: &dyn Fn(SlotState) -> bool| {
                let mut n = 0;
                while model.get(&(n + 1)).is_some_and(|s| ok(*s)) {
                    n += 1;
                }
                n
            };
            Cursors {
                last_retrieved,
                last_sent: model
                    .iter()
                    .filter(|(_, s)| **s != SlotState::Retrieved)
                    .map(|(q, _)| *q)
                    .max()
                    .unwrap_or(0),
                last_confirmed: upto(&|s| matches!(s, SlotState::Confirmed | SlotState::Processed)),
                last_processed: upto(&|s| s == SlotState::Processed),
            }
        }

        proptest! {
            #[test]
            fn ring_matches_model(cap in 1usize..6, ops in proptest::collection::vec(op(), 0..200)) {
                let mut ring = Ring::new(cap);
                let mut model: BTreeMap<u64, SlotState> = BTreeMap::new();
                // The first outcome of each seq (kept across Unconfirm).
                let mut outcomes: BTreeMap<u64, Outcome> = BTreeMap::new();
                let mut last_retrieved = 0;
                let m = Message::text("1", "2", "x").unwrap();
                // Checked before the first operation too, so that no case (not even
                // one without operations) passes unchecked.
                prop_assert_eq!(ring.cursors(), expected(&model, last_retrieved));
                prop_assert_eq!(ring.in_use(), 0);
                for op in ops {
                    let c = ring.cursors();
                    match op {
                        Op::Push => {
                            let r = ring.push(&m);
                            if (last_retrieved - c.last_processed) as usize >= cap {
                                prop_assert!(r.is_err());
                            } else {
                                last_retrieved += 1;
                                prop_assert_eq!(r, Ok(last_retrieved));
                                model.insert(last_retrieved, SlotState::Retrieved);
                            }
                        }
                        Op::SendNext => {
                            let seq = c.last_sent + 1;
                            let r = ring.mark_sent(seq);
                            if seq <= last_retrieved {
                                prop_assert_eq!(r, Ok(true));
                                model.insert(seq, SlotState::Sent);
                            } else {
                                prop_assert!(r.is_err());
                            }
                        }
                        Op::Confirm(k) => {
                            let seq = c.last_processed + (k as u64 % (cap as u64 + 1));
                            let r = ring.confirm(seq);
                            match model.get(&seq).copied() {
                                Some(SlotState::Sent) if seq > c.last_processed => {
                                    prop_assert_eq!(r, Ok(!outcomes.contains_key(&seq)));
                                    model.insert(seq, SlotState::Confirmed);
                                }
                                Some(SlotState::Retrieved) => prop_assert!(r.is_err()),
                                None => prop_assert!(r.is_err()),
                                _ => prop_assert!(!r.unwrap_or(true)),
                            }
                        }
                        Op::Process(k, ok) => {
                            let seq = c.last_processed + (k as u64 % (cap as u64 + 1));
                            let outcome = if ok { Outcome::Accepted } else { Outcome::Rejected { code: 1 } };
                            let r = ring.process(seq, outcome);
                            match model.get(&seq).copied() {
                                Some(SlotState::Sent | SlotState::Confirmed) => {
                                    prop_assert_eq!(r, Ok(!outcomes.contains_key(&seq)));
                                    model.insert(seq, SlotState::Processed);
                                    let first = *outcomes.entry(seq).or_insert(outcome);
                                    prop_assert_eq!(ring.processed_outcome(seq), Some(Some(first)));
                                }
                                Some(SlotState::Retrieved) => prop_assert!(r.is_err()),
                                None => prop_assert!(r.is_err()),
                                _ => prop_assert!(!r.unwrap_or(true)),
                            }
                        }
                        Op::Unconfirm => {
                            ring.unconfirm_all(|_| {});
                            for (seq, s) in model.iter_mut() {
                                let above = *seq > c.last_processed;
                                if *s == SlotState::Confirmed || (above && *s == SlotState::Processed) {
                                    *s = SlotState::Sent;
                                }
                            }
                        }
                    }
                    prop_assert_eq!(ring.cursors(), expected(&model, last_retrieved));
                    let c = ring.cursors();
                    prop_assert!(c.last_processed <= c.last_confirmed);
                    prop_assert!(c.last_confirmed <= c.last_sent);
                    prop_assert!(c.last_sent <= c.last_retrieved);
                    prop_assert!(ring.in_use() <= cap);
                    // Every live seq sits at seq % capacity with its own state.
                    for seq in c.last_processed + 1..=c.last_retrieved {
                        let slot = ring.slot(seq).expect("live slot");
                        prop_assert_eq!(Some(&slot.state), model.get(&seq));
                    }
                    // Processed seqs keep their first outcome until their slot
                    // position is reused, though their block is given back.
                    for seq in c.last_retrieved.saturating_sub(cap as u64) + 1..=c.last_processed {
                        prop_assert_eq!(ring.processed_outcome(seq), Some(outcomes.get(&seq).copied()));
                    }
                    if ring.in_use() == 0 {
                        prop_assert_eq!(ring.blocks_held(), 0);
                    }
                }
            }
        }
    }
}
