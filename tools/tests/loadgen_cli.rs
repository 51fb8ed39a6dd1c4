//! `smslink loadgen` at a small scale: the node in its own process, SIGKILLed and
//! started again; every link comes back with never more handshakes at once than
//! the cap, and the busy links' messages arrive.

use std::process::Command;

#[test]
fn links_come_back_after_the_node_is_killed_within_the_handshake_cap() {
    const LINKS: u64 = 400;
    const CAP: u64 = 24;
    let out = Command::new(env!("CARGO_BIN_EXE_smslink"))
        .args(["loadgen", "--links", &LINKS.to_string(), "--busy", "0.05"])
        .args([
            "--seconds",
            "0.5",
            "--restart",
            "--json",
            "--timeout-s",
            "60",
        ])
        .args([
            "--max-handshakes",
            &CAP.to_string(),
            "--handshake-rate",
            "4000",
        ])
        // Two peer processes, so that the split is exercised too.
        .args(["--links-per-process", "250"])
        .output()
        .expect("smslink runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["links"], LINKS);
    assert_eq!(report["peer_processes"], 2);
    assert_eq!(report["busy_links"], 20);
    assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
    // The report is written only once every link came back after the restart.
    assert!(report["restart_s"].as_f64().is_some(), "{report}");
    for key in ["handshakes_peak", "restart_handshakes_peak"] {
        let peak = report[key].as_u64().unwrap();
        // 400 links dialling at once meet the cap, and never pass it.
        assert_eq!(peak, CAP, "{key}: {report}");
    }
}
