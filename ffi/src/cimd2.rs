//! The CIMD2 codec from C: packets (build, read, encode into the caller's buffer) and
//! the streaming decoder. No sockets: the C stack moves the bytes itself.

use smslink_core::cimd2::{
    encode, message_from_packet, submit_packet, Decoded, Decoder, Operation, Packet,
};

use crate::abi::{
    arg_bytes, arg_mut, arg_ref, copy_to_buffer, guard, guard_void, out_ptr, write_out, BoxHandle,
    Error,
};
use crate::message::smslink_message;
use crate::result::smslink_result::{self, *};

/// One CIMD2 packet: operation, packet number and parameters in wire order.
/// Not thread-safe: one thread at a time (it may move between threads).
pub struct smslink_cimd2_packet {
    packet: Packet,
}

impl BoxHandle for smslink_cimd2_packet {}

/// A streaming CIMD2 decoder. Not thread-safe: one thread at a time (it may move
/// between threads).
pub struct smslink_cimd2_decoder {
    decoder: Decoder,
    skipped: u64,
}

impl BoxHandle for smslink_cimd2_decoder {}

fn new_packet(packet: Packet, out: *mut *mut smslink_cimd2_packet) {
    write_out(out, smslink_cimd2_packet { packet }.into_raw());
}

/// A new packet with operation code `operation` (e.g. 3 for submit, 1 for login) and
/// packet number `number` (CIMD2 uses odd numbers 1..=255 from the client), no
/// parameters. SMSLINK_INVALID_ARGUMENT when `operation` is above 99.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_new(
    operation: u8,
    number: u8,
    out: *mut *mut smslink_cimd2_packet,
) -> smslink_result {
    guard(|| {
        let out = out_ptr(out, "out")?;
        if operation > 99 {
            return Err(Error::invalid(format!(
                "operation {operation} does not fit in two digits"
            )));
        }
        new_packet(Packet::new(Operation::from_code(operation), number), out);
        Ok(())
    })
}

/// Free a packet (NULL: nothing happens).
///
/// Thread safety: no other call may be using `packet`.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_free(packet: *mut smslink_cimd2_packet) {
    // SAFETY: caller contract: from this library, not yet freed, or NULL.
    guard_void(|| unsafe { smslink_cimd2_packet::free_raw(packet) })
}

/// A submit (operation 03) carrying `message`: destination, originator (numeric or
/// alphanumeric), text in GSM 03.38 or UCS-2 as needed, or binary user data.
/// SMSLINK_INVALID_ARGUMENT when the message cannot be expressed (too long...).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_new_submit(
    message: *const smslink_message,
    number: u8,
    out: *mut *mut smslink_cimd2_packet,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let message = unsafe { arg_ref(message, "message") }?.parse()?;
        let out = out_ptr(out, "out")?;
        let packet = submit_packet(&message, number).map_err(|e| Error::invalid(e.to_string()))?;
        new_packet(packet, out);
        Ok(())
    })
}

/// The message a submit (03) or deliver (20) packet carries, into `*out`
/// (SMSLINK_INVALID_ARGUMENT when it is not one, or its parameters are wrong).
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_to_message(
    packet: *const smslink_cimd2_packet,
    out: *mut smslink_message,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_ref(packet, "packet") }?;
        let out = out_ptr(out, "out")?;
        let m = message_from_packet(&packet.packet).map_err(|e| Error::invalid(e.to_string()))?;
        write_out(out, smslink_message::from_message(&m)?);
        Ok(())
    })
}

/// The packet's operation code and number (either out-pointer may be NULL).
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_header(
    packet: *const smslink_cimd2_packet,
    out_operation: *mut u8,
    out_number: *mut u8,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_ref(packet, "packet") }?;
        write_out(out_operation, packet.packet.op.code());
        write_out(out_number, packet.packet.number);
        Ok(())
    })
}

/// Append parameter `code` (0..=999) with `len` value bytes (no STX, ETX or TAB).
/// Repeated codes are kept, in order.
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_add_param(
    packet: *mut smslink_cimd2_packet,
    code: u16,
    value: *const u8,
    len: usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_mut(packet, "packet") }?;
        let value = unsafe { arg_bytes(value, len, "value") }?;
        packet
            .packet
            .try_push(code, value)
            .map_err(|e| Error::invalid(e.to_string()))
    })
}

/// Copy the value of the first parameter `code` into `buf` (`len` bytes; not
/// NUL-terminated). Writes the value's length to `*out_len`, also with
/// SMSLINK_BUFFER_TOO_SMALL (then `buf` is untouched). SMSLINK_NOT_FOUND when the
/// packet has no such parameter.
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_get_param(
    packet: *const smslink_cimd2_packet,
    code: u16,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_ref(packet, "packet") }?;
        out_ptr(out_len, "out_len")?;
        let value = packet
            .packet
            .get(code)
            .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, format!("no parameter {code:03}")))?;
        copy_to_buffer(value, buf, len, out_len)
    })
}

/// Number of parameters in `*out_count`.
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_param_count(
    packet: *const smslink_cimd2_packet,
    out_count: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_ref(packet, "packet") }?;
        let out = out_ptr(out_count, "out_count")?;
        write_out(out, packet.packet.param_count());
        Ok(())
    })
}

/// The parameter at `index` (wire order): its code in `*out_code` and its value as
/// `smslink_cimd2_packet_get_param` copies it. SMSLINK_NOT_FOUND past the end.
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_param_at(
    packet: *const smslink_cimd2_packet,
    index: usize,
    out_code: *mut u16,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_ref(packet, "packet") }?;
        let out_code = out_ptr(out_code, "out_code")?;
        out_ptr(out_len, "out_len")?;
        let (code, value) = packet
            .packet
            .params()
            .nth(index)
            .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, format!("no parameter at {index}")))?;
        copy_to_buffer(value, buf, len, out_len)?;
        write_out(out_code, code);
        Ok(())
    })
}

/// Write the framed packet (STX ... ETX, with the two-digit checksum when
/// `checksum`) into `buf` (`len` bytes). Writes the frame's length to `*out_len`,
/// also with SMSLINK_BUFFER_TOO_SMALL (then `buf` is untouched: call again with a
/// buffer of at least that size).
///
/// Thread safety: one thread at a time per packet.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_packet_encode(
    packet: *const smslink_cimd2_packet,
    checksum: bool,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let packet = unsafe { arg_ref(packet, "packet") }?;
        out_ptr(out_len, "out_len")?;
        let mut frame = Vec::new();
        encode(&packet.packet, checksum, &mut frame);
        copy_to_buffer(&frame, buf, len, out_len)
    })
}

/// A decoder for packets of at most `max_packet` bytes (STX to ETX; 0 means 4096).
/// Longer packets are reported as SMSLINK_MALFORMED and dropped, so memory stays
/// bounded whatever the peer sends.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_decoder_new(
    max_packet: usize,
    out: *mut *mut smslink_cimd2_decoder,
) -> smslink_result {
    guard(|| {
        let out = out_ptr(out, "out")?;
        let max = if max_packet == 0 { 4096 } else { max_packet };
        let decoder = smslink_cimd2_decoder {
            decoder: Decoder::new(max),
            skipped: 0,
        };
        write_out(out, decoder.into_raw());
        Ok(())
    })
}

/// Free a decoder (NULL: nothing happens).
///
/// Thread safety: no other call may be using `decoder`.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_decoder_free(decoder: *mut smslink_cimd2_decoder) {
    // SAFETY: caller contract: from this library, not yet freed, or NULL.
    guard_void(|| unsafe { smslink_cimd2_decoder::free_raw(decoder) })
}

/// Whether checksums present in packets are verified (default true; Kannel never
/// checks, so some peers send wrong ones).
///
/// Thread safety: one thread at a time per decoder.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_decoder_set_verify_checksum(
    decoder: *mut smslink_cimd2_decoder,
    verify: bool,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let decoder = unsafe { arg_mut(decoder, "decoder") }?;
        decoder.decoder.set_verify_checksum(verify);
        Ok(())
    })
}

/// Feed `len` bytes as read from the peer, cut anywhere. Then call
/// `smslink_cimd2_decoder_next` until SMSLINK_EMPTY.
///
/// Thread safety: one thread at a time per decoder.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_decoder_push(
    decoder: *mut smslink_cimd2_decoder,
    bytes: *const u8,
    len: usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let decoder = unsafe { arg_mut(decoder, "decoder") }?;
        let bytes = unsafe { arg_bytes(bytes, len, "bytes") }?;
        decoder.decoder.push(bytes);
        Ok(())
    })
}

/// The next complete packet, as a new handle in `*out` (free it with
/// `smslink_cimd2_packet_free`). SMSLINK_EMPTY when no complete packet is buffered;
/// SMSLINK_MALFORMED when a framed packet could not be decoded (it is dropped: the
/// text is in `smslink_last_error`; call again for the next one). Bytes outside any
/// packet are skipped and counted (`smslink_cimd2_decoder_skipped`).
///
/// Thread safety: one thread at a time per decoder.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_decoder_next(
    decoder: *mut smslink_cimd2_decoder,
    out: *mut *mut smslink_cimd2_packet,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let decoder = unsafe { arg_mut(decoder, "decoder") }?;
        let out = out_ptr(out, "out")?;
        loop {
            match decoder.decoder.poll() {
                None => return Err(Error::new(SMSLINK_EMPTY, "no complete packet buffered")),
                Some(Decoded::Skipped(n)) => decoder.skipped += n as u64,
                Some(Decoded::Packet(packet)) => {
                    new_packet(packet, out);
                    return Ok(());
                }
                Some(Decoded::Malformed { error, op, number }) => {
                    let header = match (op, number) {
                        (Some(op), Some(n)) => format!(" (operation {op:02}, number {n:03})"),
                        _ => String::new(),
                    };
                    return Err(Error::new(
                        SMSLINK_MALFORMED,
                        format!("malformed packet{header}: {error}"),
                    ));
                }
            }
        }
    })
}

/// Bytes dropped so far because they were outside any packet.
///
/// Thread safety: one thread at a time per decoder.
#[no_mangle]
pub unsafe extern "C" fn smslink_cimd2_decoder_skipped(
    decoder: *const smslink_cimd2_decoder,
    out_bytes: *mut u64,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let decoder = unsafe { arg_ref(decoder, "decoder") }?;
        let out = out_ptr(out_bytes, "out_bytes")?;
        write_out(out, decoder.skipped);
        Ok(())
    })
}
