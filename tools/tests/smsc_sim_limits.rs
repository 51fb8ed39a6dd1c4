//! The `smslink smsc-sim` process under hostile clients: at its descriptor limit
//! it keeps running and serves again once descriptors free up (idle sessions time
//! out), and a client that sends without reading is dropped with a log line.

mod cimd2_driver;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cimd2_driver::Driver;
use smslink::cimd2::session::{ClientConfig, ClientEvent};
use smslink_tools::child::{sim_listening_addr, KillOnDrop};

/// The simulator as a child process with at most `nofile` descriptors, and its
/// stderr lines.
struct Sim {
    child: KillOnDrop,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Sim {
    fn start(nofile: u64, args: &[&str]) -> Sim {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smslink"));
        cmd.args(["smsc-sim", "--listen", "127.0.0.1:0", "--user", "alice"])
            .args(["--password", "pw"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: only setrlimit between fork and exec (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = KillOnDrop(cmd.spawn().unwrap());
        let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
        let addr = sim_listening_addr(&mut stderr).unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Sim { child, addr, lines }
    }

    fn wait_for_line(&mut self, what: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if what(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!(
                    "line not seen ({e}); simulator: {:?}",
                    self.child.0.try_wait()
                ),
            }
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.0.try_wait().unwrap().is_none()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        user: "alice".into(),
        password: "pw".into(),
        keepalive: Duration::ZERO,
        response_timeout: Duration::from_secs(5),
        max_retries: 2,
        ..ClientConfig::default()
    }
}

#[test]
fn at_the_descriptor_limit_the_simulator_pauses_accepting_and_serves_again() {
    let mut sim = Sim::start(40, &["--idle-timeout-s", "1"]);
    // More idle connections than the simulator has descriptors: accept fails.
    let idle: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(sim.addr).unwrap())
        .collect();
    let failed = sim.wait_for_line(|l| l.contains("accept failed"));
    assert!(failed.contains("retrying in"), "{failed}");
    assert!(
        sim.is_running(),
        "the simulator exited at the descriptor limit"
    );
    // Idle sessions time out, descriptors free up, the backlog is served, and a
    // real client behind the flood logs in.
    let mut client = Driver::connect(sim.addr, client_config()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no login: {:?}", client.events);
        if client.wait_for_login(Duration::from_secs(1)).unwrap() == Some(ClientEvent::LoggedIn) {
            break;
        }
    }
    assert!(sim.is_running());
    drop(idle);
}

#[test]
fn a_client_that_sends_without_reading_is_dropped_with_a_log_line() {
    let mut sim = Sim::start(256, &["--max-output-bytes", "65536"]);
    let mut flood = TcpStream::connect(sim.addr).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // A small receive buffer: the kernel then holds little of the unread answers,
    // so the simulator's own output bound is reached within seconds even on a
    // loaded machine (with the default buffers it took megabytes of requests).
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on an open socket with a valid int option value.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&flood),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let mut batch = Vec::new();
    for n in 0..1000u32 {
        batch.extend_from_slice(format!("\x0240:{:03}\t\x03", n % 128 * 2 + 1).as_bytes());
    }
    let (tx, dropped) = mpsc::channel();
    let deadline = Instant::now() + Duration::from_secs(20);
    let writer = std::thread::spawn(move || {
        // Until the simulator cuts the connection or the test is over.
        while Instant::now() < deadline && dropped.try_recv().is_err() {
            match flood.write(&batch) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    });
    let line = sim.wait_for_line(|l| l.contains("does not read"));
    assert!(line.contains("dropped"), "{line}");
    let _ = tx.send(());
    writer.join().unwrap();
    assert!(sim.is_running());
}
