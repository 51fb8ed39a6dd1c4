//! The compiled half of the `smslink` Python package (`smslink._smslink`).
//!
//! Everything here is a thin, typed shell over the Rust crate: the runtime `Node`
//! (endpoint and buffer server), the CIMD2 codec, and the in-process test peers
//! (SMSC simulator, WAN emulator, acknowledging sink). The pure-Python package
//! `smslink/` adds asyncio on top and re-exports the names users see; the stub
//! `smslink/_smslink.pyi` describes this module and `mypy.stubtest` keeps it honest.

use pyo3::prelude::*;

mod cimd2;
mod config;
mod endpoint;
mod errors;
mod events;
mod logs;
mod testing;
mod util;

/// How much the runtime logs: 'error', 'warn', 'info' (the default) or 'debug'
/// (process-wide). Lines go to the `smslink.<target>` loggers (see `route_logs`),
/// which filter them further by their own levels.
#[pyfunction]
fn set_log_level(level: &str) -> PyResult<()> {
    let parsed: smslink::runtime::log::Level =
        level.parse().map_err(|e: String| errors::config_error(e))?;
    smslink::runtime::log::set_level(parsed);
    Ok(())
}

/// How many SMS `text` takes when sent (a concatenated SMS beyond one part). A
/// count above 255 means `send` refuses the text.
#[pyfunction]
fn sms_parts(text: &str) -> usize {
    match smslink::sms::parts_needed(text) {
        Ok(parts) => parts,
        Err(smslink::sms::ConcatError::TooManyParts { parts }) => parts,
        // A `str` is always UTF-8; no other error can come from text.
        Err(smslink::sms::ConcatError::NotUtf8) => 0,
    }
}

#[pymodule]
fn _smslink(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(sms_parts, m)?)?;
    errors::register(m)?;
    config::register(m)?;
    events::register(m)?;
    endpoint::register(m)?;
    cimd2::register(m)?;
    testing::register(m)?;
    logs::register(m)?;
    Ok(())
}
