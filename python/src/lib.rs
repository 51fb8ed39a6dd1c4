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
mod testing;
mod util;

#[pymodule]
fn _smslink(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    config::register(m)?;
    events::register(m)?;
    endpoint::register(m)?;
    cimd2::register(m)?;
    testing::register(m)?;
    Ok(())
}
