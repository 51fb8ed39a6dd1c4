//! The node's monitoring listener: a minimal HTTP/1.x GET server driven by the
//! node's own event loop (no thread, no second runtime). Every bound is fixed so
//! that scrapers, port scanners or slow clients cannot hurt the links: a request
//! head of at most [`MAX_HEAD`] bytes, at most [`MAX_CONNECTIONS`] connections
//! (more are accepted and closed at once), [`DEADLINE`] for a connection's whole
//! life, one response per connection (`Connection: close`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};

use super::log::Level;
use super::metrics;
use super::shared::Shared;
use super::{AcceptError, AcceptPause};

pub(super) const MAX_HEAD: usize = 4096;
pub(super) const MAX_CONNECTIONS: usize = 16;
pub(super) const DEADLINE: Duration = Duration::from_secs(5);

/// Tokens at the top of the token space, below the loop's waker: the listener,
/// then one per connection slot.
const LISTENER: Token = Token(usize::MAX - 2);
fn conn_token(slot: usize) -> Token {
    Token(usize::MAX - 3 - slot)
}

struct HttpConn {
    stream: TcpStream,
    head: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// The response is out and the write side shut: wait for the client's close
    /// (closing with unread input would reset the connection under the response).
    draining: bool,
    deadline: Instant,
}

pub(super) struct MetricsServer {
    listener: TcpListener,
    conns: Vec<Option<HttpConn>>,
    /// Accepting paused after a failure for lack of resources (the edge is gone).
    accept_pause: AcceptPause,
}

impl MetricsServer {
    pub(super) fn bind(poll: &Poll, addr: SocketAddr) -> std::io::Result<(Self, SocketAddr)> {
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let local = listener.local_addr()?;
        let server = MetricsServer {
            listener,
            conns: (0..MAX_CONNECTIONS).map(|_| None).collect(),
            accept_pause: AcceptPause::default(),
        };
        Ok((server, local))
    }

    pub(super) fn owns(token: Token) -> bool {
        token.0 <= LISTENER.0 && token.0 > LISTENER.0 - 1 - MAX_CONNECTIONS
    }

    pub(super) fn on_ready(&mut self, poll: &Poll, token: Token, now: Instant, shared: &Shared) {
        if token == LISTENER {
            self.accept(poll, now);
        } else {
            let slot = LISTENER.0 - 1 - token.0;
            self.serve(poll, slot, shared);
        }
    }

    /// Close connections past their deadline; retry a failed accept.
    pub(super) fn turn(&mut self, poll: &Poll, now: Instant) {
        if self.accept_pause.is_due(now) {
            self.accept(poll, now);
        }
        for slot in 0..self.conns.len() {
            if self.conns[slot].as_ref().is_some_and(|c| c.deadline <= now) {
                self.close(poll, slot);
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let retry = self.accept_pause.retry_at();
        self.conns
            .iter()
            .flatten()
            .map(|c| c.deadline)
            .chain(retry)
            .min()
    }

    fn accept(&mut self, poll: &Poll, now: Instant) {
        if self.accept_pause.is_paused(now) {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    self.accept_pause.succeeded();
                    // Over the limit: accepted and closed at once.
                    let Some(slot) = self.conns.iter().position(Option::is_none) else {
                        continue;
                    };
                    let token = conn_token(slot);
                    if poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.conns[slot] = Some(HttpConn {
                        stream,
                        head: Vec::new(),
                        out: Vec::new(),
                        written: 0,
                        draining: false,
                        deadline: now + DEADLINE,
                    });
                }
                Err(e) => match AcceptError::of(&e) {
                    AcceptError::Drained => return,
                    AcceptError::Again => {}
                    AcceptError::Pause => {
                        let (pause, first) = self.accept_pause.failed(now);
                        if first {
                            crate::slog!(
                                Level::Warn,
                                "event=metrics_accept_failed error=\"{e}\" retry_ms={}",
                                pause.as_millis()
                            );
                        }
                        return;
                    }
                },
            }
        }
    }

    fn close(&mut self, poll: &Poll, slot: usize) {
        if let Some(mut c) = self.conns[slot].take() {
            let _ = poll.registry().deregister(&mut c.stream);
        }
    }

    /// Read the head, answer it, write the answer, wait for the close: whatever
    /// the socket allows now (readiness is edge-triggered, so each step runs until
    /// it would block).
    fn serve(&mut self, poll: &Poll, slot: usize, shared: &Shared) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut buf = [0u8; 1024];
        if c.out.is_empty() || c.draining {
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return self.close(poll, slot),
                    Ok(_) if c.draining => {}
                    Ok(n) => {
                        c.head.extend_from_slice(&buf[..n]);
                        if let Some(response) = respond_to(&c.head, shared) {
                            c.out = response;
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return self.close(poll, slot),
                }
            }
        }
        if !c.draining && c.written < c.out.len() {
            loop {
                match c.stream.write(&c.out[c.written..]) {
                    Ok(0) => return self.close(poll, slot),
                    Ok(n) => {
                        c.written += n;
                        if c.written == c.out.len() {
                            c.draining = true;
                            c.head = Vec::new();
                            if c.stream.shutdown(Shutdown::Write).is_err() {
                                return self.close(poll, slot);
                            }
                            // Input that came with the request may already be read.
                            return self.serve(poll, slot, shared);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return self.close(poll, slot),
                }
            }
        }
    }
}

/// The response to a request head, once there is enough of it to answer.
fn respond_to(head: &[u8], shared: &Shared) -> Option<Vec<u8>> {
    let Some(end) = memchr::memmem::find(head, b"\r\n\r\n") else {
        return (head.len() > MAX_HEAD).then(|| {
            response(
                431,
                "Request Header Fields Too Large",
                "text/plain",
                b"request head too large\n",
            )
        });
    };
    if end + 4 > MAX_HEAD {
        return Some(response(
            431,
            "Request Header Fields Too Large",
            "text/plain",
            b"request head too large\n",
        ));
    }
    let line_end = memchr::memmem::find(head, b"\r\n").unwrap_or(end);
    let line = std::str::from_utf8(&head[..line_end]).unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(response(400, "Bad Request", "text/plain", b"bad request\n"));
    };
    if !version.starts_with("HTTP/1.") {
        return Some(response(400, "Bad Request", "text/plain", b"bad request\n"));
    }
    if method != "GET" {
        return Some(response(
            405,
            "Method Not Allowed",
            "text/plain",
            b"only GET\n",
        ));
    }
    let path = target.split('?').next().unwrap_or("");
    Some(match path {
        "/metrics" => {
            let text = metrics::render_text(
                &shared.stats.lock(),
                shared.journal_syncs(),
                &shared.loop_stats.lock(),
            );
            response(
                200,
                "OK",
                "text/plain; version=0.0.4; charset=utf-8",
                text.as_bytes(),
            )
        }
        "/status" => {
            let json = metrics::render_status(shared);
            response(200, "OK", "application/json", json.as_bytes())
        }
        "/healthz" => {
            if metrics::healthy(shared) {
                response(200, "OK", "text/plain", b"ok\n")
            } else {
                response(503, "Service Unavailable", "text/plain", b"not ready\n")
            }
        }
        _ => response(404, "Not Found", "text/plain", b"not found\n"),
    })
}

fn response(code: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
