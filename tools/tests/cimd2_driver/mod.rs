//! A small blocking driver that runs a `ClientSession` over a real TCP socket, for
//! tests against the simulator and Kannel's test_cimd2. (The product drives sessions
//! with mio; a test only needs one connection.)

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use smslink::cimd2::session::{ClientConfig, ClientEvent, ClientSession, CloseReason};
use smslink::message::Message;

pub struct Driver {
    stream: TcpStream,
    pub session: ClientSession,
    pub events: VecDeque<ClientEvent>,
    out: Vec<u8>,
    buf: Vec<u8>,
    pub peer_closed: bool,
}

impl Driver {
    pub fn connect(addr: SocketAddr, config: ClientConfig) -> io::Result<Driver> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        let session = ClientSession::new(config, Instant::now());
        let mut d = Driver {
            stream,
            session,
            events: VecDeque::new(),
            out: Vec::new(),
            buf: vec![0; 64 * 1024],
            peer_closed: false,
        };
        d.flush()?;
        Ok(d)
    }

    /// Write what the session wants sent and collect its events.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.clear();
        self.session.poll_transmit(&mut self.out);
        if !self.out.is_empty() && !self.peer_closed {
            self.stream.write_all(&self.out)?;
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push_back(e);
        }
        Ok(())
    }

    /// One round: wait for input (at most until `deadline` or the session's timer),
    /// feed it, fire due timers, write output.
    pub fn step(&mut self, deadline: Instant) -> io::Result<()> {
        self.flush()?;
        if self.peer_closed || self.session.is_closed() {
            return Ok(());
        }
        let now = Instant::now();
        let wake = self
            .session
            .poll_timeout()
            .map_or(deadline, |t| t.min(deadline));
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        self.stream.set_read_timeout(Some(wait))?;
        match self.stream.read(&mut self.buf) {
            Ok(0) => {
                self.peer_closed = true;
                self.session.handle_connection_lost(Instant::now());
            }
            Ok(n) => self.session.handle_input(&self.buf[..n], Instant::now()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.peer_closed = true;
                self.session.handle_connection_lost(Instant::now());
            }
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        self.flush()
    }

    /// Step until an event matching `want` arrives (returned; earlier events are
    /// kept in `events`) or the deadline passes.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&ClientEvent) -> bool,
    ) -> io::Result<Option<ClientEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(&want) {
                return Ok(self.events.remove(i));
            }
            if Instant::now() >= deadline || self.session.is_closed() || self.peer_closed {
                return Ok(None);
            }
            self.step(deadline)?;
        }
    }

    /// Wait for the answer to the login: `LoggedIn` or `LoginFailed`.
    pub fn wait_for_login(&mut self, timeout: Duration) -> io::Result<Option<ClientEvent>> {
        self.wait_for(timeout, |e| {
            matches!(e, ClientEvent::LoggedIn | ClientEvent::LoginFailed { .. })
        })
    }

    /// Submit `message` and wait for its final answer: accepted, rejected or failed.
    pub fn submit_and_wait(
        &mut self,
        message: &Message,
        timeout: Duration,
    ) -> io::Result<Option<ClientEvent>> {
        self.session
            .submit(message.client_ref, message, Instant::now())
            .expect("submit while ready");
        self.wait_for(timeout, |e| {
            matches!(
                e,
                ClientEvent::SubmitAccepted { .. }
                    | ClientEvent::SubmitRejected { .. }
                    | ClientEvent::SubmitFailed { .. }
            )
        })
    }

    /// Log out and wait for the session to close; returns why it closed.
    pub fn logout_and_wait(&mut self, timeout: Duration) -> io::Result<Option<CloseReason>> {
        self.session.logout(Instant::now()).expect("logout");
        let closed = self.wait_for(timeout, |e| matches!(e, ClientEvent::Closed { .. }))?;
        Ok(match closed {
            Some(ClientEvent::Closed { reason }) => Some(reason),
            _ => None,
        })
    }
}
