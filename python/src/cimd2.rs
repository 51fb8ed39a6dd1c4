//! The CIMD2 codec for Python: packets, framing, the streaming decoder and the
//! text conversions. Re-exported by `smslink.cimd2`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use smslink::cimd2::{self as codec, Decoded, Operation, UserData};

use crate::errors::CodecError;

fn codec_err(e: impl std::fmt::Display) -> PyErr {
    CodecError::new_err(e.to_string())
}

/// A parameter value given as str (its UTF-8 bytes) or bytes.
fn value_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(n) = v.extract::<u64>() {
        return Ok(n.to_string().into_bytes());
    }
    Err(CodecError::new_err(format!(
        "a CIMD2 parameter value is str, bytes or int, not {}",
        v.get_type().name()?
    )))
}

/// One CIMD2 packet: operation code, packet number, parameters in order.
#[pyclass(frozen, module = "smslink.cimd2")]
pub struct Packet {
    inner: codec::Packet,
}

fn build(op: u8, number: u8, params: &Bound<'_, PyAny>) -> PyResult<codec::Packet> {
    if op > 99 {
        return Err(CodecError::new_err(format!(
            "operation code {op} does not fit in two digits"
        )));
    }
    let mut p = codec::Packet::new(Operation::from_code(op), number);
    // A mapping gives its items; any other iterable gives (code, value) pairs.
    let items = match params.cast::<pyo3::types::PyDict>() {
        Ok(d) => d.items().into_any(),
        Err(_) => params.clone(),
    };
    for pair in items.try_iter()? {
        let (code, value): (u16, Bound<'_, PyAny>) = pair?.extract().map_err(|_| {
            CodecError::new_err("parameters are (code, value) pairs or a {code: value} dict")
        })?;
        p.try_push(code, value_bytes(&value)?).map_err(codec_err)?;
    }
    Ok(p)
}

#[pymethods]
impl Packet {
    #[new]
    #[pyo3(signature = (op, number, params=None))]
    fn new(
        py: Python<'_>,
        op: u8,
        number: u8,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let inner = match params {
            Some(params) => build(op, number, params)?,
            None => build(op, number, &PyList::empty(py).into_any())?,
        };
        Ok(Packet { inner })
    }

    #[getter]
    fn op(&self) -> u8 {
        self.inner.op.code()
    }

    #[getter]
    fn number(&self) -> u8 {
        self.inner.number
    }

    /// `(code, value)` pairs in packet order (repeats kept).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> Vec<(u16, Bound<'py, PyBytes>)> {
        self.inner
            .params()
            .map(|(c, v)| (c, PyBytes::new(py, v)))
            .collect()
    }

    /// The first value of parameter `code`, or None.
    fn get<'py>(&self, py: Python<'py>, code: u16) -> Option<Bound<'py, PyBytes>> {
        self.inner.get(code).map(|v| PyBytes::new(py, v))
    }

    /// The error code (900) of a negative response, if any.
    #[getter]
    fn error_code(&self) -> Option<u32> {
        self.inner.error_code()
    }

    /// The framed bytes, STX to ETX.
    #[pyo3(signature = (checksum=true))]
    fn encode<'py>(&self, py: Python<'py>, checksum: bool) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        codec::encode(&self.inner, checksum, &mut out);
        PyBytes::new(py, &out)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<Packet>() {
            Ok(o) => {
                let o = &o.get().inner;
                o.op == self.inner.op
                    && o.number == self.inner.number
                    && o.params().eq(self.inner.params())
            }
            Err(_) => false,
        }
    }

    fn __repr__(&self) -> String {
        let params: Vec<String> = self
            .inner
            .params()
            .map(|(c, v)| format!("({c:03}, {:?})", String::from_utf8_lossy(v)))
            .collect();
        format!(
            "Packet(op={:02}, number={:03}, params=[{}])",
            self.inner.op.code(),
            self.inner.number,
            params.join(", ")
        )
    }
}

/// A framed packet that could not be decoded (`op` and `number` when readable).
#[pyclass(frozen, get_all, module = "smslink.cimd2")]
pub struct Malformed {
    error: String,
    op: Option<u8>,
    number: Option<u8>,
}

#[pymethods]
impl Malformed {
    fn __repr__(&self) -> String {
        format!(
            "Malformed(error={:?}, op={:?}, number={:?})",
            self.error, self.op, self.number
        )
    }
}

/// Streaming decoder: `feed` bytes as they arrive, however they are cut; get back
/// the packets (and `Malformed` items) completed so far.
#[pyclass(module = "smslink.cimd2")]
pub struct Decoder {
    inner: codec::Decoder,
    skipped: usize,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (max_packet=4096, verify_checksum=true))]
    fn new(max_packet: usize, verify_checksum: bool) -> Self {
        let mut inner = codec::Decoder::new(max_packet);
        inner.set_verify_checksum(verify_checksum);
        Decoder { inner, skipped: 0 }
    }

    fn feed(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<Py<PyAny>>> {
        self.inner.push(data);
        let mut out = Vec::new();
        while let Some(item) = self.inner.poll() {
            match item {
                Decoded::Packet(p) => out.push(Py::new(py, Packet { inner: p })?.into_any()),
                Decoded::Skipped(n) => self.skipped += n,
                Decoded::Malformed { error, op, number } => out.push(
                    Py::new(
                        py,
                        Malformed {
                            error: error.to_string(),
                            op,
                            number,
                        },
                    )?
                    .into_any(),
                ),
            }
        }
        Ok(out)
    }

    /// Bytes outside any packet dropped so far.
    #[getter]
    fn skipped(&self) -> usize {
        self.skipped
    }

    /// Bytes held for a packet not yet complete.
    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}

/// Frame one packet: `op` (two digits), `number` (0..=255), parameters as
/// `(code, value)` pairs or a `{code: value}` dict (values str, bytes or int).
#[pyfunction]
#[pyo3(signature = (op, number, params, checksum=true))]
fn cimd2_encode<'py>(
    py: Python<'py>,
    op: u8,
    number: u8,
    params: &Bound<'py, PyAny>,
    checksum: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let p = build(op, number, params)?;
    let mut out = Vec::new();
    codec::encode(&p, checksum, &mut out);
    Ok(PyBytes::new(py, &out))
}

/// Text to CIMD2 user data: `(None, value_for_033)` when GSM 03.38 carries it,
/// else `(dcs, uppercase_hex_for_034)` (UCS-2, data coding scheme 8).
#[pyfunction]
fn cimd2_encode_text<'py>(
    py: Python<'py>,
    text: &str,
) -> PyResult<(Option<u8>, Bound<'py, PyBytes>)> {
    match codec::encode_text(text).map_err(codec_err)? {
        UserData::Text(v) => Ok((None, PyBytes::new(py, &v))),
        UserData::Binary { dcs, hex } => Ok((Some(dcs), PyBytes::new(py, &hex))),
    }
}

/// A 033 user-data value (CIMD2 escapes, GSM 03.38) back to text.
#[pyfunction]
fn cimd2_decode_text(user_data: &[u8]) -> PyResult<String> {
    codec::decode_text(user_data).map_err(codec_err)
}

/// A 034 value holding UCS-2 as hex back to text.
#[pyfunction]
fn cimd2_decode_ucs2_hex(hex: &[u8]) -> PyResult<String> {
    codec::decode_ucs2_hex(hex).map_err(codec_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Packet>()?;
    m.add_class::<Malformed>()?;
    m.add_class::<Decoder>()?;
    m.add_function(wrap_pyfunction!(cimd2_encode, m)?)?;
    m.add_function(wrap_pyfunction!(cimd2_encode_text, m)?)?;
    m.add_function(wrap_pyfunction!(cimd2_decode_text, m)?)?;
    m.add_function(wrap_pyfunction!(cimd2_decode_ucs2_hex, m)?)?;
    Ok(())
}
