//! Handing messages to a node: one (routed or on a given link), a batch, and
//! waiting for room on a full link.

use std::cell::RefCell;
use std::ffi::c_char;

use smslink_core::message::Message;

use crate::abi::{arg_bytes, arg_ref, arg_str, guard, out_ptr, timeout_from_ms, write_out, Error};
use crate::message::{
    smslink_message, smslink_receipt, SMSLINK_CODING_BINARY, SMSLINK_CODING_TEXT,
};
use crate::node::{node_error, smslink_node};
use crate::result::smslink_result;

thread_local! {
    /// Messages of a batch, converted from their C form.
    static BATCH_BUFFER: RefCell<Vec<Message>> = const { RefCell::new(Vec::new()) };
}

fn receipt_out(out: *mut smslink_receipt, r: smslink_core::runtime::Receipt) {
    write_out(
        out,
        smslink_receipt {
            link: r.link as u32,
            seq: r.seq,
        },
    );
}

/// Hand a message over, routed by its recipient. Returns at once: SMSLINK_OK with the
/// link and sequence number in `*out_receipt` (which may be NULL when not wanted), or
/// SMSLINK_FULL (nothing stored: retry after `smslink_node_wait_for_room`, or once a
/// status event shows progress),
/// SMSLINK_NO_ROUTE, SMSLINK_INVALID_ARGUMENT (bad address or payload),
/// SMSLINK_STOPPED.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send(
    node: *const smslink_node,
    message: *const smslink_message,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let message = unsafe { arg_ref(message, "message") }?.parse()?;
        let r = node.node.send(&message).map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// `smslink_node_send` on a given link instead of by route (SMSLINK_UNKNOWN_LINK
/// when there is no such link).
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_on(
    node: *const smslink_node,
    link: u32,
    message: *const smslink_message,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let message = unsafe { arg_ref(message, "message") }?.parse()?;
        let r = node
            .node
            .send_on(link as usize, &message)
            .map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// Send a text message (`text`: NUL-terminated UTF-8, up to
/// SMSLINK_MAX_LONG_PAYLOAD bytes), routed by `to`. A text longer than one SMS goes
/// as one message and reaches the phone as a concatenated SMS; one that needs more
/// than 255 parts is refused (SMSLINK_INVALID_ARGUMENT, nothing sent; see
/// `smslink_sms_parts`). `client_ref` comes back in status events and in the
/// delivery report (SMSLINK_EVENT_REPORT), when the buffer server's SMSC settings
/// ask for reports (they are requested per SMSC, not per message). As
/// `smslink_node_send` otherwise.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_text(
    node: *const smslink_node,
    from: *const c_char,
    to: *const c_char,
    text: *const c_char,
    client_ref: u64,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let from = unsafe { arg_str(from, "from") }?;
        let to = unsafe { arg_str(to, "to") }?;
        let text = unsafe { arg_str(text, "text") }?;
        let mut m = Message::text(from, to, text).map_err(|e| Error::invalid(e.to_string()))?;
        m.client_ref = client_ref;
        let r = node.node.send(&m).map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// Send `len` raw octets (up to SMSLINK_MAX_LONG_PAYLOAD; more than 140 go as a
/// concatenated SMS of 134-octet parts, at most 255), routed by `to`. As
/// `smslink_node_send_text` otherwise.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_binary(
    node: *const smslink_node,
    from: *const c_char,
    to: *const c_char,
    data: *const u8,
    len: usize,
    client_ref: u64,
    out_receipt: *mut smslink_receipt,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let from = unsafe { arg_str(from, "from") }?;
        let to = unsafe { arg_str(to, "to") }?;
        let data = unsafe { arg_bytes(data, len, "data") }?;
        let mut m = Message::binary(from, to, data).map_err(|e| Error::invalid(e.to_string()))?;
        m.client_ref = client_ref;
        let r = node.node.send(&m).map_err(node_error)?;
        receipt_out(out_receipt, r);
        Ok(())
    })
}

/// Hand `count` messages to `link` in one go, in order, as far as the ring has room.
/// Writes how many were taken to `*out_taken`; their sequence numbers follow each
/// other from `*out_first_seq` (written only when at least one was taken;
/// `out_first_seq` may be NULL). Taking fewer than `count` (even 0) is SMSLINK_OK:
/// the ring was full. A malformed message fails the whole call before any is taken.
///
/// Thread safety: any thread; concurrent senders are serialised per link.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_send_batch(
    node: *const smslink_node,
    link: u32,
    messages: *const smslink_message,
    count: usize,
    out_taken: *mut usize,
    out_first_seq: *mut u64,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out_taken = out_ptr(out_taken, "out_taken")?;
        let messages: &[smslink_message] = if count == 0 {
            &[]
        } else if messages.is_null() {
            return Err(Error::null("messages"));
        } else {
            // SAFETY: `count` readable messages (caller contract).
            unsafe { std::slice::from_raw_parts(messages, count) }
        };
        // One buffer per thread, kept between calls: a batch of 256 messages is
        // 180 KB, and allocating that on every call costs more than the hand-off.
        let (taken, first) = BATCH_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            for m in messages {
                buffer.push(m.parse()?);
            }
            let sent = node.node.send_batch(link as usize, &buffer);
            // Do not keep a huge batch's memory for the thread's lifetime.
            if buffer.capacity() > 1024 {
                *buffer = Vec::new();
            } else {
                buffer.clear();
            }
            sent.map_err(node_error)
        })?;
        write_out(out_taken, taken);
        if let Some(first) = first {
            write_out(out_first_seq, first);
        }
        Ok(())
    })
}

/// Block until `link` takes at least `min_room` more messages (0 counts as 1; more
/// than the link's capacity counts as the capacity), for up to `timeout_ms`
/// (0: only look, negative: no limit). The node's loop wakes the caller when the
/// peer has processed messages: no polling, and no event is taken off the node.
/// On SMSLINK_OK writes the room there is (at least what was asked) to `*out_room`.
///
/// Errors: SMSLINK_FULL (less room than asked when the timeout passed; `*out_room`
/// untouched), SMSLINK_UNKNOWN_LINK, SMSLINK_STOPPED.
///
/// Thread safety: any thread, several at once; also inside one of this node's own
/// callbacks (room is freed by the node's loop, not by the caller), though the
/// events behind the one being handled then wait too.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_wait_for_room(
    node: *const smslink_node,
    link: u32,
    min_room: usize,
    timeout_ms: i32,
    out_room: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out_room = out_ptr(out_room, "out_room")?;
        let link = link as usize;
        let room = node
            .node
            .wait_for_room(link, min_room, timeout_from_ms(timeout_ms))
            .map_err(node_error)?;
        write_out(out_room, room);
        Ok(())
    })
}

/// How many SMS a payload of `len` bytes takes (`coding` SMSLINK_CODING_TEXT:
/// UTF-8 text, GSM 03.38 or UCS-2 as it needs; SMSLINK_CODING_BINARY: octets),
/// written to `*out_parts`: 1 when it fits one SMS, else the parts of the
/// concatenated SMS. Above 255 the sends refuse it. `payload` may be NULL when
/// `len` is 0.
///
/// Errors: SMSLINK_INVALID_ARGUMENT (text not UTF-8, unknown coding),
/// SMSLINK_NULL_PARAMETER.
///
/// Thread safety: any thread; needs no node.
#[no_mangle]
pub unsafe extern "C" fn smslink_sms_parts(
    payload: *const u8,
    len: usize,
    coding: u32,
    out_parts: *mut u32,
) -> smslink_result {
    use smslink_core::sms::concat::{split_binary, split_text, RefWidth};
    use smslink_core::sms::ConcatError;
    guard(|| {
        // SAFETY: per the header's contract.
        let data = unsafe { arg_bytes(payload, len, "payload") }?;
        let out_parts = out_ptr(out_parts, "out_parts")?;
        let split = match coding {
            SMSLINK_CODING_TEXT => {
                let text = std::str::from_utf8(data)
                    .map_err(|_| Error::invalid("text payload is not UTF-8"))?;
                split_text(text, RefWidth::Eight)
            }
            SMSLINK_CODING_BINARY => split_binary(data, RefWidth::Eight),
            other => return Err(Error::invalid(format!("unknown coding {other}"))),
        };
        let parts = match split {
            Ok(split) => split.total(),
            Err(ConcatError::TooManyParts { parts }) => parts,
            Err(ConcatError::NotUtf8) => return Err(Error::invalid("text payload is not UTF-8")),
        };
        write_out(out_parts, u32::try_from(parts).unwrap_or(u32::MAX));
        Ok(())
    })
}
