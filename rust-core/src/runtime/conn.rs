//! One non-blocking TCP connection as the drivers use it: read everything that is
//! there, keep what could not be written, and say when the peer has gone. A link
//! connection may run TLS: then the bytes read are decrypted before they are
//! handed up and the bytes queued are encrypted on their way out, so the protocol
//! above reads and writes plaintext either way.

use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// Upper bound on bytes read in one readiness event, so one busy peer cannot starve
/// the others on the same loop (the rest is read on the next turn).
pub const READ_BUDGET: usize = 1 << 20;

#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    out: Vec<u8>,
    out_pos: usize,
    pub connected: bool,
    tls: Option<Box<rustls::Connection>>,
    /// `established` has reported this connection ready.
    reported: bool,
}

/// A connection ready to carry the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Established {
    Plaintext,
    /// The TLS handshake completed; `binding` is the session's exporter value.
    Tls {
        binding: [u8; 32],
    },
}

/// Why reading failed: the socket, or the TLS session (a refused certificate, a
/// corrupted record).
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Tls(rustls::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Tls(e) => f.write_str(&super::tls::describe_error(e)),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// What a read turn found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Still open; `n` bytes were appended.
    Open(usize),
    /// The peer closed (EOF) after `n` more bytes.
    Closed(usize),
}

impl Conn {
    pub fn new(stream: TcpStream, connected: bool) -> Self {
        // Small request/response packets: Nagle would add up to 40 ms per packet.
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            // Grows with the output of a burst; see `shrink_buffers`.
            out: Vec::new(),
            out_pos: 0,
            connected,
            tls: None,
            reported: false,
        }
    }

    /// A connection that runs `session` (client or server) over the stream.
    pub fn with_tls(stream: TcpStream, connected: bool, session: rustls::Connection) -> Self {
        Conn {
            tls: Some(Box::new(session)),
            ..Conn::new(stream, connected)
        }
    }

    /// Once per connection: it is ready for the protocol (TCP connected and, with
    /// TLS, the handshake done). `Err` if the exporter fails (cannot happen after a
    /// completed TLS 1.3 handshake).
    pub fn established(&mut self) -> Result<Option<Established>, rustls::Error> {
        if self.reported || !self.connected {
            return Ok(None);
        }
        let ready = match &self.tls {
            None => Established::Plaintext,
            Some(tls) if tls.is_handshaking() => return Ok(None),
            Some(tls) => Established::Tls {
                binding: tls.export_keying_material([0u8; 32], super::tls::EXPORTER_LABEL, None)?,
            },
        };
        self.reported = true;
        Ok(Some(ready))
    }

    /// Read TLS records until the socket is empty (or the budget is spent),
    /// appending the plaintext to `buf`. The socket is read in large chunks here
    /// and handed to rustls from memory: rustls reads at most a few KiB per call,
    /// which would cost a system call each.
    fn read_tls_into(&mut self, buf: &mut Vec<u8>) -> Result<ReadOutcome, ReadError> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(ReadOutcome::Open(0));
        };
        let mut total = 0;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::Open(total))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let mut rest = &chunk[..n];
            while !rest.is_empty() {
                if tls.read_tls(&mut rest)? == 0 {
                    return Err(io::Error::from(io::ErrorKind::InvalidData).into());
                }
                if let Err(e) = tls.process_new_packets() {
                    // rustls queued an alert telling the peer why: try to send it.
                    let _ = tls.write_tls(&mut self.stream);
                    return Err(ReadError::Tls(e));
                }
                let before = buf.len();
                let closed = match tls.reader().read_to_end(buf) {
                    // The peer's close_notify, or a session cut short.
                    Ok(_) => true,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                    Err(e) => return Err(e.into()),
                };
                total += buf.len() - before;
                if closed {
                    return Ok(ReadOutcome::Closed(total));
                }
            }
            if n == 0 {
                return Ok(ReadOutcome::Closed(total));
            }
            // A short read emptied the socket buffer (see `read_plain_into`).
            if total >= READ_BUDGET || n < chunk.len() {
                return Ok(ReadOutcome::Open(total));
            }
        }
    }

    /// Read until WouldBlock (or the budget), appending the plaintext to `buf`.
    pub fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<ReadOutcome, ReadError> {
        if self.tls.is_some() {
            return self.read_tls_into(buf);
        }
        Ok(self.read_plain_into(buf)?)
    }

    fn read_plain_into(&mut self, buf: &mut Vec<u8>) -> io::Result<ReadOutcome> {
        let mut total = 0;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(ReadOutcome::Closed(total)),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    total += n;
                    // A short read emptied the socket buffer: epoll reports the next
                    // arrival as a new edge, so asking again would only return
                    // EAGAIN (one wasted syscall per wake, as tokio also reasons).
                    if total >= READ_BUDGET || n < chunk.len() {
                        return Ok(ReadOutcome::Open(total));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::Open(total))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The buffer the protocol appends its output to.
    pub fn out_buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    pub fn has_pending_output(&self) -> bool {
        self.out_pos < self.out.len() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Give back the output buffer's capacity once everything was written.
    pub fn shrink_buffers(&mut self) {
        if self.out_pos == self.out.len() && self.out.capacity() > 0 {
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }

    /// Bytes queued but not yet written.
    pub fn pending_output(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Write as much of the pending output as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            loop {
                // Hand plaintext to the session as far as its buffer takes it, and
                // write the records it makes.
                if self.out_pos < self.out.len() && !tls.is_handshaking() {
                    let n = tls.writer().write(&self.out[self.out_pos..])?;
                    self.out_pos += n;
                }
                if !tls.wants_write() {
                    if self.out_pos < self.out.len() && !tls.is_handshaking() {
                        continue;
                    }
                    break;
                }
                match tls.write_tls(&mut self.stream) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            self.compact();
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.compact();
        Ok(())
    }

    fn compact(&mut self) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 256 * 1024 {
            // Keep the buffer from creeping forward forever under a slow peer.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Close without losing what was written: send the rest, then FIN, then read and
    /// discard until the peer closes too or `deadline` passes. Closing a socket with
    /// unread input makes the kernel send a reset, and a reset can destroy data the
    /// peer has received but not yet read (here: the last acknowledgements).
    pub fn close_gracefully(&mut self, deadline: std::time::Instant) {
        use std::os::fd::AsRawFd;
        if !self.connected {
            return;
        }
        let fd = self.stream.as_raw_fd();
        let mut fin_sent = false;
        let mut notify_queued = false;
        let mut scratch = [0u8; 4096];
        loop {
            if !fin_sent {
                if let Some(tls) = self.tls.as_mut() {
                    if !notify_queued && !tls.is_handshaking() && self.out_pos == self.out.len() {
                        tls.send_close_notify();
                        notify_queued = true;
                    }
                }
                if self.flush().is_err() {
                    return;
                }
                if !self.has_pending_output() {
                    let _ = self.stream.shutdown(std::net::Shutdown::Write);
                    fin_sent = true;
                }
            }
            loop {
                match self.stream.read(&mut scratch) {
                    Ok(0) if fin_sent => return,
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let mut pfd = libc::pollfd {
                fd,
                events: if fin_sent {
                    libc::POLLIN
                } else {
                    libc::POLLIN | libc::POLLOUT
                },
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd on a descriptor this connection owns.
            if unsafe { libc::poll(&mut pfd, 1, ms) } < 0
                && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted
            {
                return;
            }
        }
    }

    /// A non-blocking connect finished: check whether it succeeded.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(true);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}
