//! What a node tells its operator: the Prometheus text exposition (format 0.0.4),
//! a JSON status document and a health verdict, all rendered from the stats
//! snapshot the event loop publishes every turn (nothing is scanned per request).
//!
//! The text format is a handful of line kinds, so it is written here rather than
//! through a metrics crate: no registry to keep in step with the snapshot, no
//! extra dependency in every host that embeds the core.

use std::fmt::Write;

use super::api::{LinkStats, LoopStats};
use super::latency::ACK_LATENCY_BUCKETS;
use super::shared::Shared;

/// `/healthz`: the loop runs and every SMSC session (if the node has one) is
/// logged in.
pub(super) fn healthy(shared: &Shared) -> bool {
    !shared.stopped.load(std::sync::atomic::Ordering::Acquire)
        && shared
            .stats
            .lock()
            .iter()
            .all(|l| l.smsc.is_none_or(|s| s.logged_in))
}

/// A label value with `\`, `"` and newlines escaped as the text format wants.
fn label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `name{link="..."[,extra]} value`.
fn sample(out: &mut String, name: &str, link: &str, extra: Option<(&str, &str)>, value: u64) {
    out.push_str(name);
    out.push_str("{link=\"");
    label_value(out, link);
    out.push('"');
    if let Some((k, v)) = extra {
        let _ = write!(out, ",{k}=\"");
        label_value(out, v);
        out.push('"');
    }
    let _ = writeln!(out, "}} {value}");
}

type Getter = fn(&LinkStats) -> u64;

/// Families with one sample per link.
const LINK_FAMILIES: &[(&str, &str, &str, Getter)] = &[
    (
        "smslink_link_up",
        "gauge",
        "1 when the link's handshake with its peer is done.",
        |l| l.up as u64,
    ),
    (
        "smslink_link_connects_total",
        "counter",
        "Connections to the peer established.",
        |l| l.connects,
    ),
    (
        "smslink_link_refused_connections_total",
        "counter",
        "Incoming connections refused (foreign protocol, too many waiting, no HELLO in time, penalised source).",
        |l| l.refused_connections,
    ),
    (
        "smslink_link_pending_connections",
        "gauge",
        "Unauthenticated connections waiting for the link (at most max_pending).",
        |l| l.pending_connections as u64,
    ),
    (
        "smslink_link_ring_capacity",
        "gauge",
        "Slots in each of the link's rings.",
        |l| l.capacity as u64,
    ),
    (
        "smslink_link_resends_total",
        "counter",
        "DATA frames sent again after a reconnection.",
        |l| l.counters.data_resent,
    ),
    (
        "smslink_link_duplicates_dropped_total",
        "counter",
        "DATA frames from the peer ignored because the message was already held.",
        |l| l.counters.duplicates,
    ),
    (
        "smslink_link_acks_sent_total",
        "counter",
        "Acknowledgement frames sent.",
        |l| l.counters.acks_sent,
    ),
    (
        "smslink_link_pings_sent_total",
        "counter",
        "Keep-alive pings sent.",
        |l| l.counters.pings_sent,
    ),
    (
        "smslink_link_handshakes_total",
        "counter",
        "Handshakes completed.",
        |l| l.counters.handshakes,
    ),
    (
        "smslink_link_auth_failures_total",
        "counter",
        "Handshakes that failed authentication.",
        |l| l.counters.auth_failures,
    ),
    (
        "smslink_link_downs_total",
        "counter",
        "Times the link went down (connection lost, protocol violation, peer closed).",
        |l| l.counters.link_downs,
    ),
];

/// Families with one sample per link and direction ("in": from the peer, "out": to it).
const DIRECTION_FAMILIES: &[(&str, &str, Getter, Getter)] = &[
    (
        "smslink_link_messages_total",
        "Messages carried: new ones stored from the peer (in), first transmissions (out).",
        |l| l.counters.data_received,
        |l| l.counters.data_sent,
    ),
    (
        "smslink_link_frames_total",
        "Link frames read and written.",
        |l| l.counters.frames_in,
        |l| l.counters.frames_out,
    ),
    (
        "smslink_link_bytes_total",
        "Bytes read and written on the link's connection.",
        |l| l.counters.bytes_in,
        |l| l.counters.bytes_out,
    ),
];

type SmscGetter = fn(&crate::bridge::SmscStats) -> u64;

const SMSC_FAMILIES: &[(&str, &str, &str, SmscGetter)] = &[
    (
        "smslink_smsc_up",
        "gauge",
        "1 when the session to the SMSC is logged in.",
        |s| s.logged_in as u64,
    ),
    (
        "smslink_smsc_connects_total",
        "counter",
        "Sessions to the SMSC logged in.",
        |s| s.connects,
    ),
    (
        "smslink_smsc_mo_received_total",
        "counter",
        "MO messages received from the SMSC.",
        |s| s.mo_received,
    ),
    (
        "smslink_smsc_mo_backpressured_total",
        "counter",
        "MO held unanswered at the SMSC because the ring was full.",
        |s| s.mo_backpressured,
    ),
    (
        "smslink_smsc_mo_deferred_total",
        "counter",
        "Held MO answered 'retry later' once held for the protocol's limit.",
        |s| s.mo_deferred,
    ),
    (
        "smslink_smsc_mo_unattributable_total",
        "counter",
        "MO refused toward the SMSC because an address has no usable form (with unattributable_mo = pass-on, only one that is empty or no valid address at all).",
        |s| s.mo_unattributable,
    ),
    (
        "smslink_smsc_mt_submitted_total",
        "counter",
        "MT submits sent to the SMSC.",
        |s| s.mt_submitted,
    ),
    (
        "smslink_smsc_mt_accepted_total",
        "counter",
        "MT accepted by the SMSC.",
        |s| s.mt_accepted,
    ),
    (
        "smslink_smsc_mt_rejected_total",
        "counter",
        "MT refused for good by the SMSC.",
        |s| s.mt_rejected,
    ),
    (
        "smslink_smsc_mt_temporary_failures_total",
        "counter",
        "Temporary MT refusals (throttling, congestion); the message is tried again.",
        |s| s.mt_temporary_failures,
    ),
    (
        "smslink_smsc_mt_resubmitted_total",
        "counter",
        "Submits of an MT that had been submitted before.",
        |s| s.mt_resubmitted,
    ),
    (
        "smslink_smsc_mt_resubmitted_after_restart_total",
        "counter",
        "MT restored from the journal and submitted again after a restart (the SMSC may have had them).",
        |s| s.resubmitted_after_restart,
    ),
    (
        "smslink_smsc_status_reports_total",
        "counter",
        "Status reports (delivery receipts) received.",
        |s| s.status_reports,
    ),
    (
        "smslink_smsc_reports_forwarded_total",
        "counter",
        "Delivery reports put on the link to the IM side (the parts of a long message folded into one).",
        |s| s.reports_forwarded,
    ),
    (
        "smslink_smsc_reports_unknown_total",
        "counter",
        "Status reports for a message id this server does not know (acknowledged to the SMSC and dropped).",
        |s| s.reports_unknown,
    ),
    (
        "smslink_smsc_reports_awaited",
        "gauge",
        "MT accepted by the SMSC whose final delivery report has not come yet.",
        |s| s.reports_awaited,
    ),
    (
        "smslink_smsc_violations_total",
        "counter",
        "Things the SMSC did that its protocol does not allow.",
        |s| s.violations,
    ),
];

/// The Prometheus text exposition of `links` and the node's journal syncs
/// (format 0.0.4).
pub(super) fn render_text(
    links: &[LinkStats],
    journal_syncs: Option<u64>,
    loop_stats: &LoopStats,
) -> String {
    let mut out = String::with_capacity(4096 + links.len() * 4096);
    header(
        &mut out,
        "smslink_build_info",
        "gauge",
        "The smslink version of this node.",
    );
    let _ = writeln!(
        out,
        "smslink_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    for (name, kind, help, get) in LINK_FAMILIES {
        header(&mut out, name, kind, help);
        for l in links {
            sample(&mut out, name, &l.name, None, get(l));
        }
    }
    for (name, help, inbound, outbound) in DIRECTION_FAMILIES {
        header(&mut out, name, "counter", help);
        for l in links {
            sample(
                &mut out,
                name,
                &l.name,
                Some(("direction", "in")),
                inbound(l),
            );
            sample(
                &mut out,
                name,
                &l.name,
                Some(("direction", "out")),
                outbound(l),
            );
        }
    }
    let name = "smslink_link_ring_in_use";
    header(
        &mut out,
        name,
        "gauge",
        "Messages in the ring not yet Processed (tx: sending, rx: receiving).",
    );
    for l in links {
        sample(
            &mut out,
            name,
            &l.name,
            Some(("direction", "tx")),
            l.tx_in_use as u64,
        );
        sample(
            &mut out,
            name,
            &l.name,
            Some(("direction", "rx")),
            l.rx_in_use as u64,
        );
    }
    let name = "smslink_link_tx_backlog";
    header(
        &mut out,
        name,
        "gauge",
        "Messages waiting in the journal for a slot in the sending ring (overflow to disk).",
    );
    for l in links {
        sample(&mut out, name, &l.name, None, l.tx_backlog);
    }
    let name = "smslink_link_tx_cursor";
    header(
        &mut out,
        name,
        "gauge",
        "The sending ring's cursors (sequence numbers).",
    );
    for l in links {
        for (cursor, v) in [
            ("retrieved", l.tx.last_retrieved),
            ("sent", l.tx.last_sent),
            ("confirmed", l.tx.last_confirmed),
            ("processed", l.tx.last_processed),
        ] {
            sample(&mut out, name, &l.name, Some(("cursor", cursor)), v);
        }
    }
    let name = "smslink_link_rx_cursor";
    header(
        &mut out,
        name,
        "gauge",
        "The receiving ring's cursors (sequence numbers).",
    );
    for l in links {
        for (cursor, v) in [
            ("stored", l.rx.last_stored),
            ("delivered", l.rx.last_delivered),
            ("processed", l.rx.last_processed),
        ] {
            sample(&mut out, name, &l.name, Some(("cursor", cursor)), v);
        }
    }
    render_histogram(&mut out, links);
    if let Some(syncs) = journal_syncs {
        let name = "smslink_journal_syncs_total";
        header(
            &mut out,
            name,
            "counter",
            "fdatasync (and directory fsync) calls of the node's journal: each covers every record written while the one before it ran.",
        );
        let _ = writeln!(out, "{name} {syncs}");
    }
    render_loop(&mut out, loop_stats);
    if links.iter().any(|l| l.smsc.is_some()) {
        for (name, kind, help, get) in SMSC_FAMILIES {
            header(&mut out, name, kind, help);
            for l in links {
                if let Some(s) = &l.smsc {
                    sample(&mut out, name, &l.name, None, get(s));
                }
            }
        }
    }
    out
}

/// The event loop's own work: with many links, visits per turn show whether idle
/// links cost anything, and the setup gauges show a reconnect storm's progress.
fn render_loop(out: &mut String, l: &LoopStats) {
    for (name, kind, help, v) in [
        (
            "smslink_loop_turns_total",
            "counter",
            "Turns of the node's event loop.",
            l.turns,
        ),
        (
            "smslink_loop_link_visits_total",
            "counter",
            "Links a turn of the event loop visited (only links with work), over all turns.",
            l.link_visits,
        ),
        (
            "smslink_link_setups_in_progress",
            "gauge",
            "Dialled link connections in setup now (the node's handshake budget caps them).",
            l.handshakes_in_progress as u64,
        ),
        (
            "smslink_link_setups_waiting",
            "gauge",
            "Links waiting for the handshake budget before they dial.",
            l.handshakes_waiting as u64,
        ),
    ] {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {v}");
    }
}

fn render_histogram(out: &mut String, links: &[LinkStats]) {
    let name = "smslink_link_ack_latency_seconds";
    header(
        out,
        name,
        "histogram",
        "Time from a message's first transmission to the peer's confirmation.",
    );
    for l in links {
        let h = &l.ack_latency;
        let mut cumulative = 0;
        for (bound, n) in ACK_LATENCY_BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            sample(
                out,
                &format!("{name}_bucket"),
                &l.name,
                Some(("le", &bound.to_string())),
                cumulative,
            );
        }
        sample(
            out,
            &format!("{name}_bucket"),
            &l.name,
            Some(("le", "+Inf")),
            h.count,
        );
        out.push_str(name);
        out.push_str("_sum{link=\"");
        label_value(out, &l.name);
        let _ = writeln!(out, "\"}} {}", h.sum_micros as f64 / 1e6);
        sample(out, &format!("{name}_count"), &l.name, None, h.count);
    }
}

fn json_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => super::json::push_string(out, s),
        None => out.push_str("null"),
    }
}

/// The `/status` document: the version, whether the node runs and is healthy,
/// and per link its peer, cursors, ring occupancy, counters and SMSC side.
pub(super) fn render_status(shared: &Shared) -> String {
    let running = !shared.stopped.load(std::sync::atomic::Ordering::Acquire);
    let healthy = healthy(shared);
    let links = shared.stats.lock().clone();
    let mut out = String::with_capacity(1024 + links.len() * 1024);
    let _ = write!(
        out,
        "{{\"version\":\"{}\",\"running\":{running},\"healthy\":{healthy},\"links\":[",
        env!("CARGO_PKG_VERSION")
    );
    for (i, (l, ls)) in links.iter().zip(&shared.links).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        super::json::push_string(&mut out, &l.name);
        let _ = write!(out, ",\"up\":{},\"peer\":", l.up);
        json_opt_str(&mut out, l.peer.as_deref());
        out.push_str(",\"local_addr\":");
        json_opt_str(&mut out, l.local_addr.map(|a| a.to_string()).as_deref());
        let c = &l.counters;
        let _ = write!(
            out,
            ",\"capacity\":{},\"tx\":{{\"retrieved\":{},\"sent\":{},\"confirmed\":{},\"processed\":{},\"in_use\":{}}},\
             \"rx\":{{\"stored\":{},\"delivered\":{},\"processed\":{},\"in_use\":{}}},\
             \"connects\":{},\"refused_connections\":{},\
             \"counters\":{{\"bytes_in\":{},\"bytes_out\":{},\"frames_in\":{},\"frames_out\":{},\"messages_out\":{},\
             \"resends\":{},\"messages_in\":{},\"duplicates\":{},\"acks_sent\":{},\"pings_sent\":{},\"handshakes\":{},\
             \"auth_failures\":{},\"link_downs\":{}}},\"ack_latency\":{{\"count\":{},\"sum_seconds\":{}}},\"last_error\":",
            l.capacity,
            l.tx.last_retrieved,
            l.tx.last_sent,
            l.tx.last_confirmed,
            l.tx.last_processed,
            l.tx_in_use,
            l.rx.last_stored,
            l.rx.last_delivered,
            l.rx.last_processed,
            l.rx_in_use,
            l.connects,
            l.refused_connections,
            c.bytes_in,
            c.bytes_out,
            c.frames_in,
            c.frames_out,
            c.data_sent,
            c.data_resent,
            c.data_received,
            c.duplicates,
            c.acks_sent,
            c.pings_sent,
            c.handshakes,
            c.auth_failures,
            c.link_downs,
            l.ack_latency.count,
            l.ack_latency.sum_micros as f64 / 1e6,
        );
        json_opt_str(&mut out, l.last_error.as_deref());
        out.push_str(",\"smsc\":");
        match &l.smsc {
            None => out.push_str("null"),
            Some(s) => {
                out.push_str("{\"protocol\":");
                json_opt_str(&mut out, ls.smsc_protocol);
                let _ = write!(
                    out,
                    ",\"logged_in\":{},\"connects\":{},\"mo_received\":{},\"mo_backpressured\":{},\
                     \"mo_deferred\":{},\"mt_submitted\":{},\"mt_accepted\":{},\"mt_rejected\":{},\
                     \"mt_resubmitted\":{},\"mt_temporary_failures\":{},\"status_reports\":{},\"violations\":{},\
                     \"mo_unattributable\":{},\"reports_forwarded\":{},\"reports_unknown\":{},\
                     \"reports_awaited\":{},\"resubmitted_after_restart\":{}}}",
                    s.logged_in,
                    s.connects,
                    s.mo_received,
                    s.mo_backpressured,
                    s.mo_deferred,
                    s.mt_submitted,
                    s.mt_accepted,
                    s.mt_rejected,
                    s.mt_resubmitted,
                    s.mt_temporary_failures,
                    s.status_reports,
                    s.violations,
                    s.mo_unattributable,
                    s.reports_forwarded,
                    s.reports_unknown,
                    s.reports_awaited,
                    s.resubmitted_after_restart,
                );
            }
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", "a\"b\\c\nd", None, 3);
        assert_eq!(out, "m{link=\"a\\\"b\\\\c\\nd\"} 3\n");
    }

    #[test]
    fn the_report_and_number_counters_are_exported() {
        let smsc = crate::bridge::SmscStats {
            mo_unattributable: 1,
            reports_forwarded: 2,
            reports_unknown: 3,
            reports_awaited: 4,
            resubmitted_after_restart: 5,
            ..Default::default()
        };
        let l = LinkStats {
            name: "bs".into(),
            smsc: Some(smsc),
            ..LinkStats::default()
        };
        let text = render_text(&[l], None, &LoopStats::default());
        for (line, kind) in [
            (
                "smslink_smsc_mo_unattributable_total{link=\"bs\"} 1\n",
                "counter",
            ),
            (
                "smslink_smsc_reports_forwarded_total{link=\"bs\"} 2\n",
                "counter",
            ),
            (
                "smslink_smsc_reports_unknown_total{link=\"bs\"} 3\n",
                "counter",
            ),
            ("smslink_smsc_reports_awaited{link=\"bs\"} 4\n", "gauge"),
            (
                "smslink_smsc_mt_resubmitted_after_restart_total{link=\"bs\"} 5\n",
                "counter",
            ),
        ] {
            assert!(text.contains(line), "{line} missing");
            let name = &line[..line.find('{').unwrap()];
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        }
    }

    #[test]
    fn journal_syncs_are_exported_only_with_a_journal() {
        let name = "smslink_journal_syncs_total";
        let idle = LoopStats::default();
        assert!(!render_text(&[], None, &idle).contains(name));
        assert!(render_text(&[], Some(42), &idle).contains(&format!("\n{name} 42\n")));
    }

    #[test]
    fn loop_work_is_exported() {
        let stats = LoopStats {
            turns: 7,
            link_visits: 9,
            handshakes_in_progress: 3,
            handshakes_waiting: 5,
            ..LoopStats::default()
        };
        let text = render_text(&[], None, &stats);
        for line in [
            "\nsmslink_loop_turns_total 7\n",
            "\nsmslink_loop_link_visits_total 9\n",
            "\nsmslink_link_setups_in_progress 3\n",
            "\nsmslink_link_setups_waiting 5\n",
            "# TYPE smslink_link_setups_waiting gauge\n",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut l = LinkStats {
            name: "x".into(),
            ..LinkStats::default()
        };
        l.ack_latency.observe(Duration::from_micros(500));
        l.ack_latency.observe(Duration::from_millis(30));
        l.ack_latency.observe(Duration::from_secs(60));
        let text = render_text(&[l], None, &LoopStats::default());
        assert!(
            text.contains("smslink_link_ack_latency_seconds_bucket{link=\"x\",le=\"0.001\"} 1\n")
        );
        assert!(
            text.contains("smslink_link_ack_latency_seconds_bucket{link=\"x\",le=\"0.05\"} 2\n")
        );
        assert!(text.contains("smslink_link_ack_latency_seconds_bucket{link=\"x\",le=\"10\"} 2\n"));
        assert!(
            text.contains("smslink_link_ack_latency_seconds_bucket{link=\"x\",le=\"+Inf\"} 3\n")
        );
        assert!(text.contains("smslink_link_ack_latency_seconds_count{link=\"x\"} 3\n"));
    }
}
