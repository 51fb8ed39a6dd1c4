//! The whole chain over real loopback sockets: IM-side node -> WAN emulator (cuts,
//! half-open stalls) -> buffer server node -> SMSC simulator, for both SMSC protocols
//! (CIMD2, and SMPP with its submit window).

use std::time::Duration;

use smslink_tools::scenario::{self, Scenario};
use smslink_tools::smsc_sim::Protocol;

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smslink-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Texts the SMSC accepted, in the order it accepted them.
fn recorded_texts(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn both_directions_through_cuts_and_stalls_exactly_once_in_order() {
    through_cuts_and_stalls(Protocol::Cimd2, 20_000);
}

#[test]
fn both_directions_through_cuts_and_stalls_exactly_once_in_order_over_smpp() {
    through_cuts_and_stalls(Protocol::Smpp, 10_000);
}

fn through_cuts_and_stalls(protocol: Protocol, n: u64) {
    let record = temp_file(&format!("mt-{}.jsonl", protocol.name()));
    let s = Scenario {
        protocol,
        mt: n,
        mo: n,
        one_way: Duration::from_millis(2),
        jitter: Duration::from_millis(1),
        cut_every: Some((Duration::from_millis(300), Duration::from_millis(900))),
        stall_every: Some((Duration::from_millis(500), Duration::from_millis(1500))),
        stall_for: (Duration::from_millis(400), Duration::from_millis(800)),
        heartbeat: Duration::from_millis(50),
        dead_after: Duration::from_millis(250),
        record: Some(record.clone()),
        max_time: Duration::from_secs(50),
        seed: 7,
        ..Scenario::default()
    };
    smslink::runtime::log::set_level(smslink::runtime::log::Level::Warn);
    let r = scenario::run(&s, |_| {}).unwrap();
    assert!(r.clean(), "lost, duplicated or reordered: {r:?}");
    // The faults really happened.
    assert!(r.cuts >= 1, "no cut happened: {r:?}");
    assert!(r.stalls >= 1, "no stall happened: {r:?}");
    assert!(r.reconnects >= 2, "{r:?}");
    // Every MT came back Processed exactly once, accepted; every MO arrived exactly
    // once and in order.
    assert_eq!(r.mt.delivered, n, "MT lost: {r:?}");
    assert_eq!(r.mt.duplicated, 0);
    assert!(r.mt.rejected.is_empty());
    assert_eq!(r.mo.delivered, n, "MO lost");
    assert_eq!(r.mo.duplicated, 0);
    assert_eq!(r.mo.out_of_order, 0);
    // The SMSC got each MT once, in the order the IM side sent them.
    assert_eq!(r.smsc_duplicates, 0);
    assert_eq!(r.sim.submits_accepted, n);
    let expected: Vec<String> = (0..n).map(|i| format!("mt {i}")).collect();
    assert_eq!(recorded_texts(&record), expected);
    // Every slot on both sides ended Processed.
    assert!(r.im_drained, "IM ring not drained");
    assert!(r.bs_drained, "buffer-server ring not drained");
    assert_eq!(r.sim.mo_acked, n);
}

#[test]
fn smsc_rejections_are_reported_with_their_code_and_the_rest_flow() {
    rejections(Protocol::Cimd2, 311);
}

#[test]
fn smsc_rejections_are_reported_with_their_code_and_the_rest_flow_over_smpp() {
    // ESME_RINVDSTADR: a permanent refusal.
    rejections(Protocol::Smpp, 0x0B);
}

fn rejections(protocol: Protocol, code: u32) {
    const N: u64 = 2_000;
    let record = temp_file(&format!("rejects-{}.jsonl", protocol.name()));
    let s = Scenario {
        protocol,
        mt: N,
        mo: 0,
        nack_fraction: 0.05,
        reject_fraction: 0.1,
        reject_code: Some(code),
        record: Some(record.clone()),
        max_time: Duration::from_secs(30),
        seed: 3,
        ..Scenario::default()
    };
    smslink::runtime::log::set_level(smslink::runtime::log::Level::Warn);
    let r = scenario::run(&s, |_| {}).unwrap();
    assert!(r.clean(), "lost, duplicated or reordered: {r:?}");
    assert_eq!(r.mt.delivered, N, "{r:?}");
    assert_eq!(r.mt.duplicated, 0);
    assert!(r.sim.submits_nacked > 0, "no NACK was drawn");
    // Each rejection reached the IM side as Processed with the SMSC's code.
    assert!(!r.mt.rejected.is_empty());
    assert_eq!(r.mt.rejected.len() as u64, r.sim.submits_rejected);
    assert!(r.mt.rejected.iter().all(|(_, c)| *c == code));
    // The rest were accepted once each, in order where the protocol resends a NACKed
    // submit itself (CIMD2); SMPP's generic_nack is a temporary refusal that the
    // buffer server retries after a back-off while the window moves on.
    let mut accepted = recorded_texts(&record);
    assert_eq!(accepted.len() as u64, N - r.sim.submits_rejected);
    let rejected: std::collections::HashSet<u64> =
        r.mt.rejected.iter().map(|(seq, _)| seq - 1).collect();
    let expected: Vec<String> = (0..N)
        .filter(|i| !rejected.contains(i))
        .map(|i| format!("mt {i}"))
        .collect();
    if protocol == Protocol::Smpp {
        let number = |t: &String| t[3..].parse::<u64>().unwrap();
        accepted.sort_by_key(number);
    }
    assert_eq!(accepted, expected);
}
