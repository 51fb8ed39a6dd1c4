//! Snapshots of a node's links and SMSC session, taken by its loop after each turn.

use std::ffi::c_char;

use smslink_core::runtime::NodeError;

use crate::abi::{arg_ref, copy_text_to_buffer, fill_c_array, guard, out_ptr, write_out, Error};
use crate::config::SMSLINK_NAME_SIZE;
use crate::node::{node_error, smslink_node};
use crate::result::smslink_result::{self, *};

/// A snapshot of one link (taken by the node's loop after its latest turn).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct smslink_link_stats {
    /// This side's link name, NUL-terminated.
    pub name: [c_char; SMSLINK_NAME_SIZE],
    /// Handshake done and the connection alive.
    pub up: bool,
    /// Slots in each ring.
    pub capacity: u32,
    /// Sending ring cursors: last seq taken in, put on the wire, confirmed stored by
    /// the peer, processed by the peer.
    pub tx_last_retrieved: u64,
    pub tx_last_sent: u64,
    pub tx_last_confirmed: u64,
    pub tx_last_processed: u64,
    /// Receiving ring cursors: last seq stored, handed to the application, acknowledged.
    pub rx_last_stored: u64,
    pub rx_last_delivered: u64,
    pub rx_last_processed: u64,
    /// Messages in the sending / receiving ring not yet processed.
    pub tx_in_use: u32,
    pub rx_in_use: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// DATA frames sent for the first time / again after a reconnection.
    pub data_sent: u64,
    pub data_resent: u64,
    /// New messages stored from the peer / duplicates ignored.
    pub data_received: u64,
    pub duplicates: u64,
    pub acks_sent: u64,
    pub pings_sent: u64,
    pub handshakes: u64,
    pub auth_failures: u64,
    pub link_downs: u64,
    /// Connections made or accepted / refused because too many were waiting.
    pub connects: u64,
    pub refused_connections: u64,
    /// Messages taken while the sending ring was full, waiting in the journal for
    /// a slot (0 without a journal).
    pub tx_backlog: u64,
    /// Unauthenticated connections waiting for the link now (listening links).
    pub pending_connections: u32,
    /// Messages confirmed by the peer so far, and the sum of their times from first
    /// transmission to confirmation in microseconds (mean = sum / count).
    pub ack_latency_count: u64,
    pub ack_latency_sum_us: u64,
}

/// A snapshot of the SMSC side of a buffer server.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct smslink_smsc_stats {
    /// The session is up (CIMD2 logged in, SMPP bound).
    pub logged_in: bool,
    pub connects: u64,
    pub mo_received: u64,
    /// MO held unconfirmed at the SMSC because the ring was full.
    pub mo_backpressured: u64,
    pub mt_submitted: u64,
    pub mt_accepted: u64,
    pub mt_rejected: u64,
    pub mt_resubmitted: u64,
    pub status_reports: u64,
    pub violations: u64,
    /// MO refused because the address had no normal form.
    pub mo_unattributable: u64,
    /// Held MO answered "retry later" once held for the protocol's limit.
    pub mo_deferred: u64,
    /// Temporary refusals (throttling, congestion): the message is tried again.
    pub mt_temporary_failures: u64,
    /// Report messages put on the link (all parts of a message folded into one).
    pub reports_forwarded: u64,
    /// Status reports for a message id not known: acknowledged and dropped.
    pub reports_unknown: u64,
    /// Accepted MT whose final report has not come yet (a gauge).
    pub reports_awaited: u64,
    /// MT restored from the journal after a restart and submitted again.
    pub resubmitted_after_restart: u64,
}

/// A snapshot of a link's cursors and counters into `*out`.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_link_stats(
    node: *const smslink_node,
    link: u32,
    out: *mut smslink_link_stats,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        let s = node
            .node
            .link_stats(link as usize)
            .ok_or_else(|| node_error(NodeError::UnknownLink(link as usize)))?;
        let c = &s.counters;
        let mut stats = smslink_link_stats {
            name: [0; SMSLINK_NAME_SIZE],
            up: s.up,
            capacity: s.capacity as u32,
            tx_last_retrieved: s.tx.last_retrieved,
            tx_last_sent: s.tx.last_sent,
            tx_last_confirmed: s.tx.last_confirmed,
            tx_last_processed: s.tx.last_processed,
            rx_last_stored: s.rx.last_stored,
            rx_last_delivered: s.rx.last_delivered,
            rx_last_processed: s.rx.last_processed,
            tx_in_use: s.tx_in_use as u32,
            rx_in_use: s.rx_in_use as u32,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            data_sent: c.data_sent,
            data_resent: c.data_resent,
            data_received: c.data_received,
            duplicates: c.duplicates,
            acks_sent: c.acks_sent,
            pings_sent: c.pings_sent,
            handshakes: c.handshakes,
            auth_failures: c.auth_failures,
            link_downs: c.link_downs,
            connects: s.connects,
            refused_connections: s.refused_connections,
            tx_backlog: s.tx_backlog,
            pending_connections: s.pending_connections.min(u32::MAX as usize) as u32,
            ack_latency_count: s.ack_latency.count,
            ack_latency_sum_us: s.ack_latency.sum_micros,
        };
        fill_c_array(&mut stats.name, &s.name);
        write_out(out, stats);
        Ok(())
    })
}

/// A snapshot of the SMSC session's counters (SMSLINK_NOT_FOUND on a node without
/// an SMSC).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_smsc_stats(
    node: *const smslink_node,
    out: *mut smslink_smsc_stats,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        let s = node
            .node
            .smsc_stats()
            .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, "this node has no SMSC"))?;
        write_out(
            out,
            smslink_smsc_stats {
                logged_in: s.logged_in,
                connects: s.connects,
                mo_received: s.mo_received,
                mo_backpressured: s.mo_backpressured,
                mt_submitted: s.mt_submitted,
                mt_accepted: s.mt_accepted,
                mt_rejected: s.mt_rejected,
                mt_resubmitted: s.mt_resubmitted,
                status_reports: s.status_reports,
                violations: s.violations,
                mo_unattributable: s.mo_unattributable,
                mo_deferred: s.mo_deferred,
                mt_temporary_failures: s.mt_temporary_failures,
                reports_forwarded: s.reports_forwarded,
                reports_unknown: s.reports_unknown,
                reports_awaited: s.reports_awaited,
                resubmitted_after_restart: s.resubmitted_after_restart,
            },
        );
        Ok(())
    })
}

/// The node's metrics in the Prometheus text format 0.0.4 (what GET /metrics
/// serves), for hosts that export metrics their own way, into `buf` (`len`
/// bytes, NUL-terminated). Writes the text length (without NUL) to `*out_len`,
/// also with SMSLINK_BUFFER_TOO_SMALL (then `buf` is untouched: call again with
/// more than `*out_len` bytes; the text may have grown a little meanwhile).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_metrics(
    node: *const smslink_node,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        copy_text_to_buffer(&node.node.metrics_text(), buf, len, out_len)
    })
}

/// The node's status as a JSON document (what GET /status serves), into `buf`
/// as `smslink_node_metrics` does.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_status_json(
    node: *const smslink_node,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        copy_text_to_buffer(&node.node.status_json(), buf, len, out_len)
    })
}

/// The port the metrics listener is bound to (SMSLINK_NOT_FOUND when the
/// configuration had no `smslink_config_set_metrics_listen`).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_metrics_port(
    node: *const smslink_node,
    out_port: *mut u16,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out_port, "out_port")?;
        let addr = node
            .node
            .metrics_addr()
            .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, "the node serves no metrics"))?;
        write_out(out, addr.port());
        Ok(())
    })
}
