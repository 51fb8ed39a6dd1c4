//! What the application's handle and the event-loop thread share: the hand-off
//! queues, the cursors the loop publishes, the wake-ups in both directions.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::Waker;
use parking_lot::{Condvar, Mutex};

use super::api::{LinkId, LinkStats, LoopStats, NodeError, NodeEvent};
use super::notify::Notifier;
use super::spsc::{Consumer, Producer};
use crate::message::Message;
use crate::ring::Outcome;

/// What the handle asks of the loop besides sending.
pub(super) enum Command {
    Ack {
        link: LinkId,
        seq: u64,
        outcome: Outcome,
    },
    Shutdown {
        flush: Duration,
    },
}

/// Queued commands, shared by the handle's [`CommandSender`] and the loop's
/// [`CommandReceiver`].
type CommandQueue = Arc<Mutex<VecDeque<Command>>>;

/// The handle's commands to the loop: at most `limit` queued (room for every
/// slot of every link, so that acknowledgements never find it full), but memory
/// only for what is queued now. Reserved up front, that room cost 6 kB a link.
pub(super) fn command_queue(limit: usize) -> (CommandSender, CommandReceiver) {
    let queue = CommandQueue::default();
    let sender = CommandSender {
        queue: queue.clone(),
        limit,
    };
    let receiver = CommandReceiver {
        queue,
        batch: VecDeque::new(),
    };
    (sender, receiver)
}

/// The handle's end of the command queue (any thread).
pub(super) struct CommandSender {
    queue: CommandQueue,
    limit: usize,
}

impl CommandSender {
    /// Queue `command`, or give it back if `limit` commands wait already.
    pub(super) fn push(&self, command: Command) -> Result<(), Command> {
        let mut queue = self.queue.lock();
        if queue.len() >= self.limit {
            return Err(command);
        }
        queue.push_back(command);
        Ok(())
    }
}

/// Commands a drained batch keeps room for; a larger burst's room is given back.
const KEPT_COMMANDS: usize = 64;

/// The loop's end of the command queue: takes everything queued in one lock.
pub(super) struct CommandReceiver {
    queue: CommandQueue,
    /// Taken from the queue, not yet handled.
    batch: VecDeque<Command>,
}

impl CommandReceiver {
    pub(super) fn pop(&mut self) -> Option<Command> {
        if self.batch.is_empty() {
            if self.batch.capacity() > KEPT_COMMANDS {
                self.batch = VecDeque::new();
            }
            // The emptied batch becomes the queue the handle fills next.
            std::mem::swap(&mut *self.queue.lock(), &mut self.batch);
        }
        self.batch.pop_front()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.batch.is_empty() && self.queue.lock().is_empty()
    }
}

/// Per-link state the handle shares with the loop.
pub(super) struct LinkShared {
    pub(super) name: String,
    pub(super) capacity: usize,
    /// The link's far side is an SMSC: the application does not send on it.
    pub(super) serves_smsc: bool,
    /// The handle's side of the send queue and the seq the ring will give the next
    /// message pushed into it. The queue is the only way into the ring and keeps
    /// order, so the handle can tell the caller that number at once. Boxed: an
    /// empty queue then costs a pointer per slot, not a message.
    pub(super) producer: Mutex<(Producer<Box<Message>>, u64)>,
    /// Published by the loop: the sending ring's Last Processed cursor.
    pub(super) last_processed: AtomicU64,
    /// Published by the loop: the journal has no room for new messages (its disk
    /// budget is used up, or the disk is full): the link takes none.
    pub(super) journal_full: AtomicBool,
    /// The link has a journal: beyond the ring, messages overflow to disk, so only
    /// the hand-off queue (as large as the ring) and the journal's budget limit
    /// what it takes.
    pub(super) overflow: bool,
    pub(super) local_addr: Option<SocketAddr>,
    /// On a buffer-server link: the SMSC protocol ("cimd2", "smpp").
    pub(super) smsc_protocol: Option<&'static str>,
    /// The link's id is in `Shared::sent` (so that it is put there once).
    pub(super) queued: AtomicBool,
}

impl LinkShared {
    /// Messages the link takes now, given the send queue and the next seq the
    /// ring will give out: capacity less those given out and not yet Processed
    /// (with overflow to disk: the queue's free slots).
    pub(super) fn room(&self, queue: &(Producer<Box<Message>>, u64)) -> usize {
        let (producer, next_seq) = (&queue.0, queue.1);
        if self.journal_full.load(Ordering::Acquire) {
            return 0;
        }
        if self.overflow {
            return producer.free_slots();
        }
        let in_flight = next_seq - 1 - self.last_processed.load(Ordering::Acquire);
        (self.capacity as u64).saturating_sub(in_flight) as usize
    }

    pub(super) fn full(&self, link: LinkId) -> NodeError {
        NodeError::Full {
            link,
            capacity: self.capacity,
        }
    }
}

pub(super) struct Shared {
    pub(super) links: Vec<LinkShared>,
    pub(super) routes: Vec<(String, LinkId)>,
    pub(super) default_route: Option<LinkId>,
    pub(super) commands: CommandSender,
    pub(super) events: Mutex<Consumer<NodeEvent>>,
    pub(super) notifier: Notifier,
    pub(super) waker: Waker,
    /// Set by the loop just before it blocks in `poll`: only then is a wake needed.
    pub(super) loop_idle: AtomicBool,
    pub(super) stopped: AtomicBool,
    pub(super) stats: Mutex<Vec<LinkStats>>,
    /// Published by the loop after each commit: the journal's syncs so far
    /// (`None`: the node has no journal).
    pub(super) journal_syncs: Option<AtomicU64>,
    /// Where the monitoring listener is bound, if the node has one.
    pub(super) metrics_addr: Option<SocketAddr>,
    /// Senders blocked in `wait_for_room`; the loop signals `room_changed` when a
    /// Processed cursor moves (or the node stops) and someone waits.
    pub(super) room_waiters: AtomicUsize,
    pub(super) room_lock: Mutex<()>,
    pub(super) room_changed: Condvar,
    /// Links the handle queued messages on since the loop last looked: the loop
    /// visits those, not every link.
    pub(super) sent: Mutex<Vec<LinkId>>,
    /// Published by the loop: what its turns cost and how connection setup goes.
    pub(super) loop_stats: Mutex<LoopStats>,
}

impl Shared {
    /// The journal's syncs so far, as last published (`None`: no journal).
    pub(super) fn journal_syncs(&self) -> Option<u64> {
        self.journal_syncs
            .as_ref()
            .map(|s| s.load(Ordering::Relaxed))
    }

    /// Messages were queued on `link`: make sure the loop visits it.
    pub(super) fn note_sent(&self, link: LinkId) {
        if !self.links[link].queued.swap(true, Ordering::AcqRel) {
            self.sent.lock().push(link);
        }
    }

    /// Wake the loop if it is (about to be) blocked.
    pub(super) fn wake(&self) {
        if self.loop_idle.swap(false, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop after a Processed cursor moved or the node stopped. The
    /// lock orders this after a waiter's last look at the cursor: no lost wake-up.
    pub(super) fn signal_room(&self) {
        if self.room_waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.room_lock.lock();
            self.room_changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64) -> Command {
        Command::Ack {
            link: 0,
            seq,
            outcome: Outcome::Accepted,
        }
    }

    fn seq(c: Option<Command>) -> Option<u64> {
        match c {
            Some(Command::Ack { seq, .. }) => Some(seq),
            _ => None,
        }
    }

    #[test]
    fn command_queue_keeps_order_and_its_bound_and_gives_room_back() {
        let (tx, mut rx) = command_queue(3);
        assert!(rx.is_empty());
        for n in 1..=3 {
            assert!(tx.push(ack(n)).is_ok());
        }
        assert!(
            tx.push(ack(4)).is_err(),
            "bounded like the queue it replaced"
        );
        assert_eq!(seq(rx.pop()), Some(1));
        // Taken in one batch: the handle has room again at once.
        assert!(tx.push(ack(4)).is_ok());
        assert_eq!(seq(rx.pop()), Some(2));
        assert_eq!(seq(rx.pop()), Some(3));
        assert!(!rx.is_empty());
        assert_eq!(seq(rx.pop()), Some(4));
        assert!(rx.pop().is_none());
        assert!(rx.is_empty());

        let (tx, mut rx) = command_queue(10_000);
        for n in 0..10_000 {
            assert!(tx.push(ack(n)).is_ok());
        }
        for n in 0..10_000 {
            assert_eq!(seq(rx.pop()), Some(n));
        }
        assert!(rx.pop().is_none());
        assert!(rx.pop().is_none());
        // Both buffers of a burst are given back once drained.
        assert!(rx.batch.capacity() <= KEPT_COMMANDS);
        assert!(rx.queue.lock().capacity() <= KEPT_COMMANDS);
    }
}
