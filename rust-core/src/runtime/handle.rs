//! The [`Node`] handle: how application threads send, acknowledge, wait and read
//! events. Every call returns at once or waits on a condition the event loop
//! signals; hand-off is lock-free for sends (one SPSC queue per link) and events
//! out (one SPSC queue); commands (acknowledgements) go through one short-locked
//! queue that the loop empties in one step per turn. The handle decides "full"
//! itself, from the sending ring's Last Processed cursor that the loop publishes,
//! so `send` answers at once with the sequence number the ring will give the
//! message.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::api::*;
use super::event_loop;
use super::shared::{Command, LinkShared, Shared};
use crate::message::Message;
use crate::ring::Outcome;

/// The application's handle on a running node. `Send + Sync`: any thread may call
/// any method; calls from several threads are serialised per queue.
pub struct Node {
    shared: Arc<Shared>,
    /// Taken by the first `close`; behind a lock so that `close` needs only `&self`
    /// (bindings close a node that other threads may be waiting on).
    thread: Mutex<Option<JoinHandle<ShutdownReport>>>,
}

impl Node {
    /// Bind listeners, start the event-loop thread, begin dialling.
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let (shared, thread) = event_loop::spawn(config)?;
        Ok(Node {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The link a recipient number routes to (longest prefix, else the default).
    pub fn route(&self, recipient: &str) -> Option<LinkId> {
        self.shared
            .routes
            .iter()
            .find(|(p, _)| recipient.starts_with(p.as_str()))
            .map(|(_, id)| *id)
            .or(self.shared.default_route)
    }

    pub fn link_id(&self, name: &str) -> Result<LinkId, NodeError> {
        self.shared
            .links
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| NodeError::UnknownLinkName(name.to_owned()))
    }

    pub fn link_count(&self) -> usize {
        self.shared.links.len()
    }

    pub fn link_name(&self, link: LinkId) -> Option<&str> {
        self.shared.links.get(link).map(|l| l.name.as_str())
    }

    /// Address a listening link is bound to.
    pub fn local_addr(&self, link: LinkId) -> Option<SocketAddr> {
        self.shared.links.get(link).and_then(|l| l.local_addr)
    }

    /// Route by recipient and hand the message over. Returns at once.
    pub fn send(&self, message: &Message) -> Result<Receipt, NodeError> {
        let link = self
            .route(message.to.as_str())
            .ok_or_else(|| NodeError::NoRoute(message.to.to_string()))?;
        self.send_on(link, message)
    }

    /// Hand a message to a given link. Returns at once: its seq, or `Full`.
    pub fn send_on(&self, link: LinkId, message: &Message) -> Result<Receipt, NodeError> {
        let shared = &*self.shared;
        let l = self.sendable(link)?;
        let seq = {
            let mut guard = l.producer.lock();
            let room = l.room(&guard);
            let (producer, next_seq) = &mut *guard;
            // The queue is as large as the ring, so it has room whenever the ring has.
            if room == 0 || producer.push(Box::new(message.clone())).is_err() {
                return Err(l.full(link));
            }
            let seq = *next_seq;
            *next_seq += 1;
            seq
        };
        shared.note_sent(link);
        shared.wake();
        Ok(Receipt { link, seq })
    }

    /// Send many messages to one link; stops at the first refusal. Returns how
    /// many were taken (their seqs follow each other, starting at the first receipt).
    pub fn send_batch(
        &self,
        link: LinkId,
        messages: &[Message],
    ) -> Result<(usize, Option<u64>), NodeError> {
        let shared = &*self.shared;
        let l = self.sendable(link)?;
        let (taken, first) = {
            let mut guard = l.producer.lock();
            let want = l.room(&guard).min(messages.len());
            let (producer, next_seq) = &mut *guard;
            let mut iter = messages[..want].iter().map(|m| Box::new(m.clone()));
            let taken = producer.push_from(&mut iter);
            let first = (taken > 0).then_some(*next_seq);
            *next_seq += taken as u64;
            (taken, first)
        };
        if taken > 0 {
            shared.note_sent(link);
            shared.wake();
        }
        Ok((taken, first))
    }

    /// A link the application may send on, while the node runs.
    fn sendable(&self, link: LinkId) -> Result<&LinkShared, NodeError> {
        let l = self
            .shared
            .links
            .get(link)
            .ok_or(NodeError::UnknownLink(link))?;
        if l.serves_smsc {
            return Err(NodeError::Config(format!(
                "link {:?} carries its SMSC's messages; the application cannot send on it",
                l.name
            )));
        }
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(NodeError::Stopped);
        }
        Ok(l)
    }

    /// How many more messages `link` takes now (its capacity less those not yet
    /// Processed, counting ones still queued for the loop).
    pub fn free_slots(&self, link: LinkId) -> Result<usize, NodeError> {
        let l = self
            .shared
            .links
            .get(link)
            .ok_or(NodeError::UnknownLink(link))?;
        let room = l.room(&l.producer.lock());
        Ok(room)
    }

    /// Block until `link` takes at least `min_room` messages (capped at its
    /// capacity; 0 counts as 1) and return the room there is; `Full` when `timeout`
    /// passes first (`None`: no limit), `Stopped` when the node stops. Woken by the
    /// loop when the link's Processed cursor moves (with a journal, also when it
    /// took queued messages): no polling, no sleeping.
    pub fn wait_for_room(
        &self,
        link: LinkId,
        min_room: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, NodeError> {
        let shared = &*self.shared;
        let l = shared.links.get(link).ok_or(NodeError::UnknownLink(link))?;
        let want = min_room.clamp(1, l.capacity.max(1));
        let deadline = timeout.map(|t| Instant::now() + t);
        let room = || l.room(&l.producer.lock());
        shared.room_waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = shared.room_lock.lock();
        let result = loop {
            let now_room = room();
            if now_room >= want {
                break Ok(now_room);
            }
            if shared.stopped.load(Ordering::Acquire) {
                break Err(NodeError::Stopped);
            }
            match deadline {
                Some(d) => {
                    if shared.room_changed.wait_until(&mut guard, d).timed_out() {
                        let now_room = room();
                        break if now_room >= want {
                            Ok(now_room)
                        } else {
                            Err(l.full(link))
                        };
                    }
                }
                None => shared.room_changed.wait(&mut guard),
            }
        };
        drop(guard);
        shared.room_waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// The application has safely handed on a received message: tell the peer
    /// (Processed), which frees its slot.
    pub fn ack(&self, link: LinkId, seq: u64, outcome: Outcome) -> Result<(), NodeError> {
        if link >= self.shared.links.len() {
            return Err(NodeError::UnknownLink(link));
        }
        self.command(Command::Ack { link, seq, outcome })
    }

    fn command(&self, command: Command) -> Result<(), NodeError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(NodeError::Stopped);
        }
        self.shared
            .commands
            .push(command)
            .map_err(|_| NodeError::Busy)?;
        self.shared.wake();
        Ok(())
    }

    /// The next event, if one is waiting.
    pub fn try_event(&self) -> Option<NodeEvent> {
        self.shared.events.lock().pop()
    }

    /// Wait up to `timeout` (`None`: forever) for an event.
    pub fn wait_event(&self, timeout: Option<Duration>) -> Option<NodeEvent> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.try_event() {
                return Some(e);
            }
            if self.shared.stopped.load(Ordering::Acquire) {
                // Whatever the loop pushed before it stopped is still there.
                return self.try_event();
            }
            let left = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    Some(left)
                }
                None => None,
            };
            self.shared.notifier.wait(left);
        }
    }

    /// Readable when events may be waiting (for select/poll/epoll/asyncio). After it
    /// turns readable, call `clear_event_fd` and then `try_event` until `None`.
    /// Do not read the descriptor yourself: `clear_event_fd` also re-arms the
    /// notification (the loop writes to the descriptor once per clear, not per event).
    pub fn event_fd(&self) -> RawFd {
        self.shared.notifier.as_raw_fd()
    }

    pub fn clear_event_fd(&self) {
        self.shared.notifier.clear();
    }

    pub fn link_stats(&self, link: LinkId) -> Option<LinkStats> {
        self.shared.stats.lock().get(link).cloned()
    }

    /// The SMSC side of a buffer server: the first link that serves an SMSC.
    pub fn smsc_stats(&self) -> Option<SmscStats> {
        self.shared.stats.lock().iter().find_map(|l| l.smsc)
    }

    /// Where the monitoring listener (`NodeConfig::metrics_listen`) is bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.shared.metrics_addr
    }

    /// The node's metrics in the Prometheus text format (0.0.4), as `/metrics`
    /// serves them, for hosts that export metrics their own way.
    pub fn metrics_text(&self) -> String {
        super::metrics::render_text(
            &self.shared.stats.lock(),
            self.shared.journal_syncs(),
            &self.shared.loop_stats.lock(),
        )
    }

    /// What the event loop's turns cost and how connection setup goes, as last
    /// published by the loop.
    pub fn loop_stats(&self) -> LoopStats {
        *self.shared.loop_stats.lock()
    }

    /// `fdatasync`s (and directory `fsync`s) the node's journal has made since the
    /// node started (`None`: no journal); `smslink_journal_syncs_total`.
    pub fn journal_syncs(&self) -> Option<u64> {
        self.shared.journal_syncs()
    }

    /// The `/status` JSON document.
    pub fn status_json(&self) -> String {
        super::metrics::render_status(&self.shared)
    }

    pub fn is_running(&self) -> bool {
        !self.shared.stopped.load(Ordering::Acquire)
    }

    /// Stop taking new work, try for up to `flush` to get every sent message
    /// Processed and every answer delivered, then close and report what is left.
    pub fn shutdown(self, flush: Duration) -> ShutdownReport {
        self.close(flush)
    }

    /// `shutdown` through a shared reference: the first call stops the node and
    /// reports; later calls return an empty report at once. Threads blocked in
    /// `wait_event` return when the loop has stopped.
    pub fn close(&self, flush: Duration) -> ShutdownReport {
        let Some(thread) = self.thread.lock().take() else {
            return ShutdownReport::default();
        };
        // The command queue may be full of acks; the loop drains it every turn.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self
                .shared
                .commands
                .push(Command::Shutdown { flush })
                .is_ok()
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::yield_now();
        }
        self.shared.loop_idle.store(true, Ordering::Release);
        self.shared.wake();
        thread.join().unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.close(Duration::ZERO);
    }
}
