//! The emulator thread: one mio poll for the listener, every connection and the waker.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use smslink::runtime::{AcceptError, AcceptPause};

use super::rng::Rng;
use super::shaper::{chunk_limit, Item, LinkParams, Pipe};
use super::{Command, CutReason, Outage, Shared, WanConfig, WanEvent};

const LISTENER: Token = Token(0);
pub(super) const WAKER: Token = Token(1);
const READ_BUF: usize = 64 * 1024;

fn client_token(id: u64) -> Token {
    Token(2 + 2 * id as usize)
}

fn upstream_token(id: u64) -> Token {
    Token(3 + 2 * id as usize)
}

fn conn_of(token: Token) -> Option<u64> {
    token.0.checked_sub(2).map(|t| (t / 2) as u64)
}

/// Make the coming close send RST instead of FIN: that is what a cut link looks like.
fn close_with_reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open (we own `stream`), and the option value points to a live
    // `linger` of the size we pass. A failure only means a FIN instead of a RST.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

struct Conn {
    client: TcpStream,
    /// `None` while held by an [`Outage::Hang`].
    upstream: Option<TcpStream>,
    upstream_ready: bool,
    up: Pipe,
    down: Pipe,
}

enum Outcome {
    Open,
    Closed(String),
    Failed(String),
}

pub(super) struct Engine<F> {
    cfg: WanConfig,
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    on_event: F,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    rng: Rng,
    outage: Outage,
    manual_stall: bool,
    scheduled_stall: bool,
    next_stall_change: Option<Instant>,
    next_cut: Option<Instant>,
    buf: Vec<u8>,
    /// Accepting paused after a failure for lack of resources (descriptors).
    accept_pause: AcceptPause,
}

impl<F: FnMut(&WanEvent)> Engine<F> {
    pub(super) fn new(
        cfg: WanConfig,
        poll: Poll,
        mut listener: TcpListener,
        shared: Arc<Shared>,
        on_event: F,
    ) -> io::Result<Self> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut rng = Rng::new(cfg.seed);
        let now = Instant::now();
        let next_cut = cfg.cut_every.map(|(a, b)| now + rng.between(a, b));
        let next_stall_change = cfg.stall_every.map(|(a, b)| now + rng.between(a, b));
        Ok(Engine {
            cfg,
            poll,
            listener,
            shared,
            on_event,
            conns: HashMap::new(),
            next_id: 0,
            rng,
            outage: Outage::None,
            manual_stall: false,
            scheduled_stall: false,
            next_stall_change,
            next_cut,
            buf: vec![0; READ_BUF],
            accept_pause: AcceptPause::default(),
        })
    }

    fn stalled(&self) -> bool {
        self.manual_stall || self.scheduled_stall
    }

    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut touched = HashSet::new();
        loop {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The poll itself broke: nothing can be served any more.
                self.cut_all(CutReason::Stop);
                return;
            }
            let mut accept = false;
            touched.clear();
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept = true,
                    WAKER => {}
                    token => {
                        if let Some(id) = conn_of(token) {
                            touched.insert(id);
                        }
                    }
                }
            }
            // Wakes coalesce, so the whole queue is drained on every turn.
            let (commands, sent) = {
                let mut queue = self.shared.commands.lock();
                (std::mem::take(&mut queue.pending), queue.sent)
            };
            let mut service_all = false;
            for command in commands {
                match command {
                    Command::Stop => {
                        self.cut_all(CutReason::Stop);
                        return;
                    }
                    other => service_all |= self.command(other),
                }
            }
            self.shared.mark_applied(sent);
            let now = Instant::now();
            service_all |= self.timers(now);
            if accept || self.accept_pause.is_due(now) {
                self.accept(now);
            }
            self.service(now, &touched, service_all);
        }
    }

    /// Apply a handle command; true if every connection should be served again.
    fn command(&mut self, command: Command) -> bool {
        match command {
            Command::CutAll => {
                self.cut_all(CutReason::Command);
                false
            }
            Command::Stall(on) => {
                let was = self.stalled();
                self.manual_stall = on;
                let now_stalled = self.stalled();
                if was != now_stalled {
                    (self.on_event)(&WanEvent::Stall(now_stalled));
                }
                true
            }
            Command::Outage(outage) => {
                let was = self.outage;
                self.outage = outage;
                if was != outage {
                    (self.on_event)(&WanEvent::Outage(outage));
                    if outage != Outage::None {
                        self.cut_all(CutReason::Outage);
                    } else {
                        self.release_held();
                    }
                }
                true
            }
            Command::SetDelay(up, down) => {
                self.cfg.up.delay = up;
                self.cfg.down.delay = down;
                (self.on_event)(&WanEvent::Delay { up, down });
                false
            }
            Command::SetBandwidth(up, down) => {
                self.cfg.up.bandwidth = up;
                self.cfg.down.bandwidth = down;
                false
            }
            Command::SetTamper(tamper) => {
                self.cfg.tamper = tamper;
                false
            }
            Command::Stop => false,
        }
    }

    /// Scheduled cuts and stalls; true if every connection should be served again.
    fn timers(&mut self, now: Instant) -> bool {
        let mut service_all = false;
        if let (Some(at), Some((a, b))) = (self.next_cut, self.cfg.cut_every) {
            if now >= at {
                self.cut_all(CutReason::Scheduled);
                self.next_cut = Some(now + self.rng.between(a, b));
            }
        }
        if let (Some(at), Some((a, b))) = (self.next_stall_change, self.cfg.stall_every) {
            if now >= at {
                let was = self.stalled();
                self.scheduled_stall = !self.scheduled_stall;
                let (c, d) = if self.scheduled_stall {
                    self.cfg.stall_for
                } else {
                    (a, b)
                };
                self.next_stall_change = Some(now + self.rng.between(c, d));
                let now_stalled = self.stalled();
                if was != now_stalled {
                    (self.on_event)(&WanEvent::Stall(now_stalled));
                }
                service_all = true;
            }
        }
        service_all
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next = [
            self.next_cut,
            self.next_stall_change,
            self.accept_pause.retry_at(),
        ]
        .into_iter()
        .flatten()
        .min();
        if !self.stalled() {
            let limit = self.cfg.max_queue_bytes;
            for conn in self.conns.values() {
                if conn.upstream.is_none() {
                    continue; // held: nothing moves until the outage ends
                }
                let ready_down = conn.upstream_ready && wants_read(&conn.down, limit);
                if wants_read(&conn.up, limit) || ready_down {
                    // Left unread after the round limit: come back at once.
                    return Some(Instant::now());
                }
                if conn.upstream_ready && !conn.up.write_blocked {
                    next = min_opt(next, conn.up.next_due());
                }
                if !conn.down.write_blocked {
                    next = min_opt(next, conn.down.next_due());
                }
            }
        }
        next
    }

    /// Accept what waits; out of descriptors, pause and retry later (the edge is
    /// gone), and report the failure once per episode.
    fn accept(&mut self, now: Instant) {
        if self.accept_pause.is_paused(now) {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    self.accept_pause.succeeded();
                    self.shared
                        .counters
                        .connections
                        .fetch_add(1, Ordering::Relaxed);
                    self.admit(stream, peer);
                }
                Err(e) => match AcceptError::of(&e) {
                    AcceptError::Drained => return,
                    AcceptError::Again => {}
                    AcceptError::Pause => {
                        if self.accept_pause.failed(now).1 {
                            (self.on_event)(&WanEvent::AcceptError(e.to_string()));
                        }
                        return;
                    }
                },
            }
        }
    }

    fn admit(&mut self, mut client: TcpStream, peer: std::net::SocketAddr) {
        if self.outage == Outage::Refuse {
            close_with_reset(client);
            self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            (self.on_event)(&WanEvent::Refused { peer });
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        // Small writes must not wait for Nagle: the delay we add is the whole point.
        let _ = client.set_nodelay(true);
        if let Err(e) = self.poll.registry().register(
            &mut client,
            client_token(id),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            close_with_reset(client);
            (self.on_event)(&WanEvent::Closed {
                id,
                reason: format!("register: {e}"),
            });
            return;
        }
        let conn = Conn {
            client,
            upstream: None,
            upstream_ready: false,
            up: Pipe::default(),
            down: Pipe::default(),
        };
        self.conns.insert(id, conn);
        self.shared.counters.active.fetch_add(1, Ordering::Relaxed);
        if self.outage == Outage::Hang {
            (self.on_event)(&WanEvent::Held { id, peer });
        } else {
            (self.on_event)(&WanEvent::Accepted { id, peer });
            self.connect_upstream(id);
        }
    }

    fn connect_upstream(&mut self, id: u64) {
        let result = TcpStream::connect(self.cfg.upstream).and_then(|mut stream| {
            self.poll.registry().register(
                &mut stream,
                upstream_token(id),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match result {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.upstream = Some(stream);
                }
            }
            Err(e) => self.fail(id, format!("upstream connect: {e}")),
        }
    }

    /// Held connections proceed once an [`Outage::Hang`] ends.
    fn release_held(&mut self) {
        let held: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.upstream.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            self.connect_upstream(id);
        }
    }

    fn remove(&mut self, id: u64) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        self.shared.counters.active.fetch_sub(1, Ordering::Relaxed);
        Some(conn)
    }

    fn reset(conn: Conn) {
        close_with_reset(conn.client);
        if let Some(upstream) = conn.upstream {
            close_with_reset(upstream);
        }
    }

    /// A side failed: reset the other one too, as a broken path would.
    fn fail(&mut self, id: u64, reason: String) {
        if let Some(conn) = self.remove(id) {
            Self::reset(conn);
            (self.on_event)(&WanEvent::Closed { id, reason });
        }
    }

    fn cut_all(&mut self, reason: CutReason) {
        let mut ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(conn) = self.remove(id) {
                Self::reset(conn);
                self.shared.counters.cuts.fetch_add(1, Ordering::Relaxed);
                (self.on_event)(&WanEvent::Cut { id, reason });
            }
        }
        self.publish_queued();
    }

    fn service(&mut self, now: Instant, touched: &HashSet<u64>, all: bool) {
        let stalled = self.stalled();
        let mut ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            let limit = self.cfg.max_queue_bytes;
            let due = |p: &Pipe| p.next_due().is_some_and(|d| d <= now) || wants_read(p, limit);
            if !(all || touched.contains(&id) || due(&conn.up) || due(&conn.down)) {
                continue;
            }
            if touched.contains(&id) {
                for pipe in [&mut conn.up, &mut conn.down] {
                    pipe.write_blocked = false;
                    pipe.read_drained = false;
                }
            }
            let was_ready = conn.upstream_ready;
            let mut io = Io {
                cfg: &self.cfg,
                rng: &mut self.rng,
                buf: &mut self.buf,
                shared: &self.shared,
                now,
            };
            let outcome = io.drive(conn, stalled);
            if !was_ready && conn.upstream_ready {
                (self.on_event)(&WanEvent::UpstreamConnected { id });
            }
            match outcome {
                Outcome::Open => {}
                Outcome::Closed(reason) => {
                    // Both FINs went through: a normal close on both sides.
                    self.remove(id);
                    (self.on_event)(&WanEvent::Closed { id, reason });
                }
                Outcome::Failed(reason) => self.fail(id, reason),
            }
        }
        self.publish_queued();
    }

    fn publish_queued(&self) {
        let (up, down) = self.conns.values().fold((0u64, 0u64), |(u, d), c| {
            (u + c.up.queued as u64, d + c.down.queued as u64)
        });
        let counters = &self.shared.counters;
        counters.queued_up.store(up, Ordering::Relaxed);
        counters.queued_down.store(down, Ordering::Relaxed);
    }
}

/// Rounds of write/read per connection and turn.
const MAX_ROUNDS: usize = 8;

/// The source may hold unread data and the queue has room for it.
fn wants_read(pipe: &Pipe, limit: usize) -> bool {
    !pipe.read_eof && !pipe.read_drained && pipe.queued < limit
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What one pass over a connection needs, borrowed apart from the connection table.
struct Io<'a> {
    cfg: &'a WanConfig,
    rng: &'a mut Rng,
    buf: &'a mut [u8],
    shared: &'a Shared,
    now: Instant,
}

impl Io<'_> {
    fn drive(&mut self, conn: &mut Conn, stalled: bool) -> Outcome {
        let Some(upstream) = conn.upstream.as_mut() else {
            return Outcome::Open; // held by a hang outage: not even read
        };
        if !conn.upstream_ready {
            match upstream.take_error() {
                Ok(Some(e)) | Err(e) => return Outcome::Failed(format!("upstream connect: {e}")),
                Ok(None) => {}
            }
            match upstream.peer_addr() {
                Ok(_) => conn.upstream_ready = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Outcome::Failed(format!("upstream connect: {e}")),
            }
        }
        if stalled {
            return Outcome::Open;
        }
        let limit = self.cfg.max_queue_bytes;
        // Write, read, write again; repeat while a read stopped only because the queue
        // was full and writing has since made room (edge-triggered readiness will not
        // tell us again). Bounded, so one busy connection cannot starve the others;
        // `wants_read` brings it back on the next turn.
        let counters = &self.shared.counters;
        for _ in 0..MAX_ROUNDS {
            if conn.upstream_ready {
                if let Err(e) = self.write(upstream, &mut conn.up, &counters.bytes_up) {
                    return Outcome::Failed(format!("toward upstream: {e}"));
                }
            }
            if let Err(e) = self.write(&mut conn.client, &mut conn.down, &counters.bytes_down) {
                return Outcome::Failed(format!("toward client: {e}"));
            }
            if !(wants_read(&conn.up, limit)
                || conn.upstream_ready && wants_read(&conn.down, limit))
            {
                break;
            }
            if let Err(e) = self.read(&mut conn.client, &mut conn.up, &self.cfg.up, limit) {
                return Outcome::Failed(format!("client read: {e}"));
            }
            if conn.upstream_ready {
                if let Err(e) = self.read(upstream, &mut conn.down, &self.cfg.down, limit) {
                    return Outcome::Failed(format!("upstream read: {e}"));
                }
            }
        }
        if conn.up.fin_sent && conn.down.fin_sent {
            return Outcome::Closed("both sides closed".into());
        }
        Outcome::Open
    }

    /// Read the source until it would block, it ends, or the queue is full.
    fn read(
        &mut self,
        src: &mut TcpStream,
        pipe: &mut Pipe,
        params: &LinkParams,
        limit: usize,
    ) -> io::Result<()> {
        let chunk = chunk_limit(params);
        pipe.read_drained = false;
        while !pipe.read_eof && pipe.queued < limit {
            let room = (limit - pipe.queued).min(self.buf.len());
            match src.read(&mut self.buf[..room]) {
                Ok(0) => {
                    if let Some(held) = pipe.tamper.take_held() {
                        pipe.push_data(self.now, &held, params, self.rng);
                    }
                    pipe.push_fin(self.now, params);
                }
                Ok(n) => {
                    for part in self.buf[..n].chunks(chunk) {
                        let Some(tamper) = &self.cfg.tamper else {
                            if let Some(held) = pipe.tamper.take_held() {
                                pipe.push_data(self.now, &held, params, self.rng);
                            }
                            pipe.push_data(self.now, part, params, self.rng);
                            continue;
                        };
                        let mut forward = Vec::new();
                        let mut counts = self.shared.tamper_counts.lock();
                        pipe.tamper
                            .apply(tamper, part, self.rng, &mut counts, &mut forward);
                        drop(counts);
                        for bytes in forward {
                            pipe.push_data(self.now, &bytes, params, self.rng);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pipe.read_drained = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    pipe.push_reset(self.now, params);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Write every due item, counting the bytes delivered.
    fn write(
        &mut self,
        dst: &mut TcpStream,
        pipe: &mut Pipe,
        delivered: &AtomicU64,
    ) -> io::Result<()> {
        while let Some(item) = pipe.queue.front_mut() {
            if item.due() > self.now || pipe.write_blocked {
                break;
            }
            match item {
                Item::Data { bytes, written, .. } => match dst.write(&bytes[*written..]) {
                    Ok(n) => {
                        *written += n;
                        pipe.queued -= n;
                        delivered.fetch_add(n as u64, Ordering::Relaxed);
                        if *written == bytes.len() {
                            pipe.queue.pop_front();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        pipe.write_blocked = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                },
                Item::Reset { .. } => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "passing on the reset of the other side",
                    ));
                }
                Item::Fin { .. } => {
                    // If the peer is already gone the next read or write says so.
                    let _ = dst.shutdown(Shutdown::Write);
                    pipe.fin_sent = true;
                    pipe.queue.pop_front();
                }
            }
        }
        Ok(())
    }
}
