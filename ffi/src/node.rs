//! The node handle: start, stop and free it, and look up its links (count, id by
//! name, route, listening address). Also what every node call shares: the mapping
//! of runtime errors to result codes and the "inside this node's own callback" check.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_char;
use std::net::SocketAddr;
use std::time::Duration;

use parking_lot::Mutex;
use smslink_core::runtime::{Node, NodeError, NodeEvent};

use crate::abi::{
    arg_ref, arg_str, copy_text_to_buffer, guard, out_ptr, write_out, BoxHandle, Error,
};
use crate::config::smslink_config;
use crate::result::smslink_result::{self, *};

thread_local! {
    /// Nodes whose callback is running on this thread (dispatch may nest across nodes).
    pub(crate) static IN_CALLBACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A running node (buffer server, or IM-side endpoint).
pub struct smslink_node {
    pub(crate) node: Node,
    /// An event a callback refused: delivered first by the next poll or dispatch.
    pub(crate) stash: Mutex<Option<NodeEvent>>,
    /// Payloads of received messages too long for `smslink_message`, by (link, seq),
    /// until acknowledged (`smslink_node_received_payload` copies them out).
    pub(crate) long_payloads: Mutex<HashMap<(u32, u64), Vec<u8>>>,
}

impl BoxHandle for smslink_node {}

fn in_callback(node: *const smslink_node) -> bool {
    IN_CALLBACK.with(|c| c.borrow().contains(&(node as usize)))
}

pub(crate) fn not_in_callback(node: *const smslink_node, what: &str) -> Result<(), Error> {
    if in_callback(node) {
        return Err(Error::new(
            SMSLINK_WRONG_THREAD,
            format!("{what} is not allowed inside this node's own event callback"),
        ));
    }
    Ok(())
}

pub(crate) fn node_error(e: NodeError) -> Error {
    let code = match e {
        NodeError::Full { .. } => SMSLINK_FULL,
        NodeError::NoRoute(_) => SMSLINK_NO_ROUTE,
        NodeError::UnknownLink(_) | NodeError::UnknownLinkName(_) => SMSLINK_UNKNOWN_LINK,
        NodeError::Stopped => SMSLINK_STOPPED,
        NodeError::Busy => SMSLINK_BUSY,
        NodeError::Config(_) => SMSLINK_CONFIG,
        NodeError::Io(_) => SMSLINK_IO,
    };
    Error::new(code, e.to_string())
}

/// Start a node from `config` (which stays the caller's: free it when convenient):
/// binds listening links, starts the node's event-loop thread, begins dialling.
/// Writes the handle to `*out`; free it with `smslink_node_free` or
/// `smslink_node_shutdown`.
///
/// Errors: SMSLINK_CONFIG (no link, bad capacity or name...), SMSLINK_IO (bind).
///
/// Thread safety: any thread; `config` must not be changed meanwhile.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_new(
    config: *const smslink_config,
    out: *mut *mut smslink_node,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let config = unsafe { arg_ref(config, "config") }?;
        let out = out_ptr(out, "out")?;
        let node = Node::start(config.node_config()).map_err(node_error)?;
        let handle = smslink_node {
            node,
            stash: Mutex::new(None),
            long_payloads: Mutex::new(HashMap::new()),
        };
        write_out(out, handle.into_raw());
        Ok(())
    })
}

fn shutdown(node: *mut smslink_node, flush: Duration, out_drained: *mut bool) -> Result<(), Error> {
    if node.is_null() {
        return Ok(());
    }
    not_in_callback(node, "freeing a node")?;
    // SAFETY: caller contract: from smslink_node_new, not yet freed, no other call
    // in progress on it.
    let handle = unsafe { Box::from_raw(node) };
    let report = handle.node.shutdown(flush);
    write_out(out_drained, report.drained);
    Ok(())
}

/// Stop the node at once and free it (NULL: nothing happens, SMSLINK_OK). Messages
/// not yet processed stay unprocessed: the peer's ring keeps what it stored.
///
/// Returns SMSLINK_WRONG_THREAD (and frees nothing) when called from inside one of
/// this node's own dispatch callbacks.
///
/// Thread safety: any thread, but no other call may be using `node` during or after.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_free(node: *mut smslink_node) -> smslink_result {
    guard(|| shutdown(node, Duration::ZERO, std::ptr::null_mut()))
}

/// Stop taking new messages, try for up to `flush_ms` to get every sent message
/// processed by the peer, then stop and free the node (NULL: nothing happens).
/// When `out_drained` is not NULL, writes whether every sending ring ended empty.
///
/// Returns SMSLINK_WRONG_THREAD (and frees nothing) when called from inside one of
/// this node's own dispatch callbacks.
///
/// Thread safety: any thread, but no other call may be using `node` during or after.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_shutdown(
    node: *mut smslink_node,
    flush_ms: u32,
    out_drained: *mut bool,
) -> smslink_result {
    guard(|| shutdown(node, Duration::from_millis(flush_ms.into()), out_drained))
}

/// Number of links in `*out_count`.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_link_count(
    node: *const smslink_node,
    out_count: *mut u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out_count, "out_count")?;
        write_out(out, node.node.link_count() as u32);
        Ok(())
    })
}

/// The id of the link named `name` (SMSLINK_UNKNOWN_LINK when none).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_link_id(
    node: *const smslink_node,
    name: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let out = out_ptr(out_link, "out_link")?;
        let id = node.node.link_id(name).map_err(node_error)?;
        write_out(out, id as u32);
        Ok(())
    })
}

/// The link a recipient would be routed to (SMSLINK_NO_ROUTE when none).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_route(
    node: *const smslink_node,
    recipient: *const c_char,
    out_link: *mut u32,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let recipient = unsafe { arg_str(recipient, "recipient") }?;
        let out = out_ptr(out_link, "out_link")?;
        let id = node
            .node
            .route(recipient)
            .ok_or_else(|| Error::new(SMSLINK_NO_ROUTE, format!("no route for {recipient:?}")))?;
        write_out(out, id as u32);
        Ok(())
    })
}

/// The address a listening link is bound to, as "ip:port" into `buf` (`len` bytes,
/// NUL-terminated). Writes the text length (without NUL) to `*out_len`, also with
/// SMSLINK_BUFFER_TOO_SMALL (then `buf` is untouched: `len` must exceed it).
/// SMSLINK_NOT_FOUND for a dialling link, SMSLINK_UNKNOWN_LINK for no such link.
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_local_addr(
    node: *const smslink_node,
    link: u32,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let addr = listening_addr(node, link)?.to_string();
        copy_text_to_buffer(&addr, buf, len, out_len)
    })
}

fn listening_addr(node: &smslink_node, link: u32) -> Result<SocketAddr, Error> {
    if link as usize >= node.node.link_count() {
        return Err(node_error(NodeError::UnknownLink(link as usize)));
    }
    node.node
        .local_addr(link as usize)
        .ok_or_else(|| Error::new(SMSLINK_NOT_FOUND, format!("link {link} does not listen")))
}

/// The port a listening link is bound to (handy after binding port 0).
///
/// Thread safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn smslink_node_local_port(
    node: *const smslink_node,
    link: u32,
    out_port: *mut u16,
) -> smslink_result {
    guard(|| {
        // SAFETY: per the header's contract.
        let node = unsafe { arg_ref(node, "node") }?;
        let out = out_ptr(out_port, "out_port")?;
        write_out(out, listening_addr(node, link)?.port());
        Ok(())
    })
}
