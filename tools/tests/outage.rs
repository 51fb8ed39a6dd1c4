//! A long link outage, short: the buffer server (a child process, on a journal)
//! keeps answering the SMSC's MO while the WAN emulator refuses the link, the MO
//! wait on disk behind the full ring with its memory bounded, and once the link
//! returns every one reaches the IM side exactly once and in order.
//! `smslink bench --outage-s 120 --mo-rate 1000 --journal` is the full-size run.
//! Loopback only; the scenario waits on events with deadlines.

use std::time::Duration;

use smslink_tools::scenario::{self, Scenario, TempDir};

#[test]
fn during_an_outage_mo_wait_on_disk_and_drain_exactly_once_when_the_link_returns() {
    let journal = TempDir::new("smslink-outage-test").unwrap();
    let rate = 1000.0;
    let outage = Duration::from_secs(5);
    let mo = 5000;
    let s = Scenario {
        mt: 0,
        mo,
        mo_rate: Some(rate),
        outage: Some(outage),
        journal_dir: Some(journal.path().to_owned()),
        bs_binary: Some(env!("CARGO_BIN_EXE_smslink").into()),
        via_wan: true,
        max_time: Duration::from_secs(120),
        ..Scenario::default()
    };
    let r = scenario::run(&s, |_| {}).unwrap();
    let o = r.outage.clone().unwrap();
    let during = o.smsc_mo_at_end - o.smsc_mo_at_start;
    let report = format!("{o:?}; MO {:?}; simulator {:?}", r.mo, r.sim);
    eprintln!("{o:?}");

    // The SMSC was never held back: no MO went unanswered for want of room, none
    // was refused or had to be delivered again, and it went on sending through
    // the outage (each answer waits for its fdatasync, one MO at a time over
    // CIMD2, so the pace is the disk's in a debug build on a busy machine).
    assert_eq!(o.smsc_held, 0, "{report}");
    assert_eq!(
        (r.sim.mo_rejected, r.sim.mo_retried, r.sim.mo_failed),
        (0, 0, 0),
        "{report}"
    );
    assert!(o.seconds >= outage.as_secs_f64(), "{report}");
    assert!(o.smsc_mo_per_s() >= 0.3 * rate, "{report}");
    // What came during the outage waited at the buffer server, far beyond its
    // ring (255 slots): on disk.
    assert!(o.backlog_peak > 2 * 255, "{report}");
    assert!(o.backlog_peak + 64 >= during, "{report}");
    // Its memory stayed within twice what it used with the link up and idle.
    let (idle, peak) = (o.rss_idle_kb.unwrap(), o.rss_peak_kb.unwrap());
    assert!(
        peak <= 2 * idle,
        "RSS {idle} kB idle, {peak} kB at most; {report}"
    );
    // After the link returned: everything arrived, once each, in order.
    assert!(r.clean(), "{report}");
    assert_eq!(r.mo.delivered, mo, "{report}");
    assert!(o.drained >= during, "{report}");
}
