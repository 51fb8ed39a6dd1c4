//! CIMD2 session cost: one submit round trip (client submit -> server event ->
//! accept -> client event) through both sans-IO sessions in memory, and the same
//! over loopback TCP against the in-process simulator (stop-and-wait bound).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smslink::cimd2::session::{
    ClientConfig, ClientEvent, ClientSession, ServerConfig, ServerEvent, ServerSession,
};
use smslink::message::Message;
use smslink_tools::smsc_sim::{SimConfig, SmscSim};

fn client_config() -> ClientConfig {
    ClientConfig {
        user: "u".into(),
        password: "p".into(),
        keepalive: Duration::ZERO,
        ..ClientConfig::default()
    }
}

fn in_memory(c: &mut Criterion) {
    let now = Instant::now();
    let mut client = ClientSession::new(client_config(), now);
    let mut server = ServerSession::new(
        ServerConfig {
            user: "u".into(),
            password: "p".into(),
            ..ServerConfig::default()
        },
        now,
    );
    let mut wire = Vec::with_capacity(1024);
    client.poll_transmit(&mut wire);
    server.handle_input(&wire, now);
    wire.clear();
    server.poll_transmit(&mut wire);
    client.handle_input(&wire, now);
    while server.poll_event().is_some() {}
    assert_eq!(client.poll_event(), Some(ClientEvent::LoggedIn));
    let m = Message::text("4670000001", "12345", "hello, a typical short message").expect("msg");

    let mut g = c.benchmark_group("cimd2_session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit_round_trip_in_memory", |b| {
        b.iter(|| {
            client.submit(1, &m, now).expect("submit");
            wire.clear();
            client.poll_transmit(&mut wire);
            server.handle_input(&wire, now);
            let Some(ServerEvent::Submit { .. }) = server.poll_event() else {
                panic!("no submit");
            };
            server
                .accept_submit("12345", "261130120000", now)
                .expect("accept");
            wire.clear();
            server.poll_transmit(&mut wire);
            client.handle_input(&wire, now);
            let Some(ClientEvent::SubmitAccepted { .. }) = client.poll_event() else {
                panic!("not accepted");
            };
        })
    });
    g.finish();
}

fn loopback(c: &mut Criterion) {
    let sim = SmscSim::start(SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        user: "u".into(),
        password: "p".into(),
        log: false,
        ..SimConfig::default()
    })
    .expect("sim");
    let mut stream = TcpStream::connect(sim.local_addr()).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut client = ClientSession::new(client_config(), Instant::now());
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut pump = |client: &mut ClientSession, want: fn(&ClientEvent) -> bool| loop {
        out.clear();
        client.poll_transmit(&mut out);
        if !out.is_empty() {
            stream.write_all(&out).expect("write");
        }
        while let Some(e) = client.poll_event() {
            if want(&e) {
                return;
            }
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "simulator closed the connection");
        client.handle_input(&buf[..n], Instant::now());
    };
    pump(&mut client, |e| matches!(e, ClientEvent::LoggedIn));
    let m = Message::text("4670000001", "12345", "hello, a typical short message").expect("msg");
    let mut g = c.benchmark_group("cimd2_session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("submit_round_trip_loopback_sim", |b| {
        b.iter(|| {
            client.submit(1, &m, Instant::now()).expect("submit");
            pump(&mut client, |e| {
                matches!(e, ClientEvent::SubmitAccepted { .. })
            });
        })
    });
    g.finish();
}

criterion_group!(benches, in_memory, loopback);
criterion_main!(benches);
