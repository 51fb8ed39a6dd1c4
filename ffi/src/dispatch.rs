//! Events out of a node (poll, wait, dispatch to a callback, the event descriptor
//! for the caller's own poll loop) and acknowledgements of received messages.

use std::ffi::c_int;
use std::time::Duration;

use smslink_core::ring::Outcome;
use smslink_core::runtime::NodeEvent;

use crate::abi::{arg_ref, copy_to_buffer, guard, out_ptr, timeout_from_ms, write_out, Error};
use crate::event::{
    smslink_event, smslink_event_callback, SMSLINK_OUTCOME_ACCEPTED, SMSLINK_OUTCOME_REJECTED,
};
use crate::message::SMSLINK_MAX_PAYLOAD;
use crate::node::{node_error, not_in_callback, smslink_node, IN_CALLBACK};
use crate::result::smslink_result::{self, *};

/// Report the outcome of a received message (`link`, `seq` from its RECEIVED
/// event) once it is safely handed on: `outcome` is SMSLINK_OUTCOME_ACCEPTED, or
/// SMSLINK_OUTCOME_REJECTED with `error_code`. Frees its slot on both sides; the
/// sender sees a PROCESSED status event. Acknowledgements may come in any order. The
/// node checks `seq` on its own thread: an unknown one is logged there and ignored.
///
/// Errors: SMSLINK_UNKNOWN_LINK, SMSLINK_INVALID_ARGUMENT (outcome), SMSLINK_BUSY
/// (too many acknowledgements queued: retry), SMSLINK_STOPPED.
///
/// Thread safety: any thread (including inside a dispatch callback).
#[no_mangle]
pub unsafe extern "C" fn smslink_node_ack(
    node: *const smslink_node,
    link: u32,
    seq: u64,
    outcome: u32,
    error_code: u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let outcome = match outcome {
            SMSLINK_OUTCOME_ACCEPTED => Outcome::Accepted,
            SMSLINK_OUTCOME_REJECTED => Outcome::Rejected { code: error_code },
            other => {
                return Err(Error::invalid(format!(
                    "outcome {other} is not ACCEPTED or REJECTED"
                )))
            }
        };
        node.node
            .ack(link as usize, seq, outcome)
            .map_err(node_error)?;
        node.long_payloads.lock().remove(&(link, seq));
        Ok(())
    })
}

/// Copy the whole payload of a received message (`link`, `seq` from its RECEIVED
/// event) into `buf` of `len` bytes; writes its length to `*out_len`. Needed when
/// the event's `payload_len` is above SMSLINK_MAX_PAYLOAD (its `message.payload`
/// is then empty); such a payload stays in the node until `smslink_node_ack` for the
/// message, so it can be copied any number of times until then. No NUL is added.
///
/// Errors: SMSLINK_BUFFER_TOO_SMALL (`*out_len` says how much is needed, `buf`
/// untouched), SMSLINK_INVALID_ARGUMENT (no long payload is kept for that message:
/// it fitted the event, or was acknowledged already), SMSLINK_NULL_PARAMETER.
///
/// Thread safety: any thread (including inside a dispatch callback).
#[no_mangle]
pub unsafe extern "C" fn smslink_node_received_payload(
    node: *const smslink_node,
    link: u32,
    seq: u64,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let payloads = node.long_payloads.lock();
        let payload = payloads.get(&(link, seq)).ok_or_else(|| {
            Error::invalid(format!(
                "no long payload kept for message {seq} on link {link}"
            ))
        })?;
        copy_to_buffer(payload, buf, len, out_len)
    })
}

impl smslink_node {
    /// The C form of `ev`; a received payload too long for it is kept for
    /// `smslink_node_received_payload` until the message is acknowledged.
    fn c_event(&self, ev: &NodeEvent) -> smslink_event {
        if let NodeEvent::Received { link, seq, message } = ev {
            if message.payload().len() > SMSLINK_MAX_PAYLOAD {
                self.long_payloads
                    .lock()
                    .insert((*link as u32, *seq), message.payload().to_vec());
            }
        }
        smslink_event::from_event(ev)
    }

    fn next_event(&self) -> Option<NodeEvent> {
        if let Some(ev) = self.stash.lock().take() {
            return Some(ev);
        }
        self.node.try_event()
    }

    fn wait_next_event(&self, timeout_ms: i32) -> Option<NodeEvent> {
        if let Some(ev) = self.next_event() {
            return Some(ev);
        }
        let timeout = timeout_from_ms(timeout_ms);
        if timeout == Some(Duration::ZERO) {
            return None;
        }
        self.node.wait_event(timeout)
    }
}

/// Copy the next waiting event into `*out`: SMSLINK_OK, or SMSLINK_EMPTY (nothing
/// waiting, `*out` untouched). Never blocks.
///
/// Thread safety: any thread (including inside a dispatch callback); each event
/// goes to exactly one caller.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_poll_event(
    node: *const smslink_node,
    out: *mut smslink_event,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        let ev = node
            .next_event()
            .ok_or_else(|| Error::new(SMSLINK_EMPTY, "no event waiting"))?;
        write_out(out, node.c_event(&ev));
        Ok(())
    })
}

/// As `smslink_node_poll_event`, but wait up to `timeout_ms` (negative: forever) for
/// an event. SMSLINK_EMPTY when none came in time; SMSLINK_WRONG_THREAD inside one
/// of this node's own callbacks.
///
/// Thread safety: any thread; each event goes to exactly one caller.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_wait_event(
    node: *const smslink_node,
    timeout_ms: i32,
    out: *mut smslink_event,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let handle = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out, "out")?;
        not_in_callback(node, "waiting")?;
        let ev = handle
            .wait_next_event(timeout_ms)
            .ok_or_else(|| Error::new(SMSLINK_EMPTY, "no event within the timeout"))?;
        write_out(out, handle.c_event(&ev));
        Ok(())
    })
}

/// Wait up to `timeout_ms` (0: do not wait, negative: forever) for a first event,
/// then call `callback(userdata, event)` on this thread for it and every event
/// already waiting. Writes the number of events the callback accepted to
/// `*out_count` (may be NULL).
///
/// Returns SMSLINK_OK (even when no event came), or SMSLINK_CALLBACK_ERROR when the
/// callback returned non-zero: dispatch stops and that event is delivered again by
/// the next poll or dispatch. SMSLINK_NULL_PARAMETER when `callback` is NULL,
/// SMSLINK_WRONG_THREAD when called from inside this node's own callback.
///
/// Inside the callback, `smslink_node_send*`, `smslink_node_ack`,
/// `smslink_node_poll_event` and the statistics calls are allowed;
/// `smslink_node_dispatch`, `smslink_node_wait_event`, `smslink_node_free` and
/// `smslink_node_shutdown` on the same node return SMSLINK_WRONG_THREAD.
///
/// Thread safety: any thread; several threads may dispatch the same node, each event
/// goes to exactly one of them.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_dispatch(
    node: *const smslink_node,
    timeout_ms: i32,
    callback: smslink_event_callback,
    userdata: *mut std::ffi::c_void,
    out_count: *mut usize,
) -> smslink_result {
    let mut delivered = 0usize;
    let result = guard(|| {
        // SAFETY: per the header's contract.
        let handle = unsafe { arg_ref(node, "node") }?;
        let callback = callback.ok_or_else(|| Error::null("callback"))?;
        not_in_callback(node, "dispatching")?;
        let mut next = handle.wait_next_event(timeout_ms);
        while let Some(ev) = next {
            let c_event = handle.c_event(&ev);
            IN_CALLBACK.with(|c| c.borrow_mut().push(node as usize));
            // SAFETY: a C function pointer given by the caller; the event lives on
            // our stack for the whole call.
            let rc = unsafe { callback(userdata, &c_event) };
            IN_CALLBACK.with(|c| {
                let mut c = c.borrow_mut();
                if let Some(i) = c.iter().rposition(|&n| n == node as usize) {
                    c.remove(i);
                }
            });
            if rc != 0 {
                *handle.stash.lock() = Some(ev);
                return Err(Error::new(
                    SMSLINK_CALLBACK_ERROR,
                    format!("event callback returned {rc}"),
                ));
            }
            delivered += 1;
            next = handle.next_event();
        }
        Ok(())
    });
    if result == SMSLINK_OK || result == SMSLINK_CALLBACK_ERROR {
        write_out(out_count, delivered);
    }
    result
}

/// A file descriptor that turns readable when events may be waiting, for the
/// caller's own select/poll/epoll loop (never read or close it). On readiness: call
/// `smslink_node_clear_event_fd`, then `smslink_node_poll_event` until SMSLINK_EMPTY
/// (clearing first means an event that arrives meanwhile makes it readable again).
///
/// Thread safety: any thread; the descriptor lives as long as the node.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_event_fd(
    node: *const smslink_node,
    out_fd: *mut c_int,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out_fd = out_ptr(out_fd, "out_fd")?;
        write_out(out_fd, node.node.event_fd());
        Ok(())
    })
}

/// Reset the event descriptor to not readable (see `smslink_node_event_fd`).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_clear_event_fd(node: *const smslink_node) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        node.node.clear_event_fd();
        Ok(())
    })
}
