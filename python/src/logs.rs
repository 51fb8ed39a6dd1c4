//! The runtime's log lines into Python's `logging`, without ever taking the GIL on
//! a node's thread: the sink only queues records; a Python thread
//! (`smslink._logs`) takes them with `_take_log_records`, which waits with the GIL
//! released. A node thread blocked on the GIL could deadlock with a Python thread
//! that holds it while joining that node (dropping an `Endpoint` does).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use smslink::runtime::log::{self, Record};

/// Lines kept while nobody takes them; more are counted and dropped.
const QUEUE_LIMIT: usize = 10_000;

/// level, target, message, fields (in line order).
type OwnedRecord = (&'static str, String, String, Vec<(String, String)>);

struct Queue {
    records: VecDeque<OwnedRecord>,
    dropped: u64,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    records: VecDeque::new(),
    dropped: 0,
});
static QUEUED: Condvar = Condvar::new();

fn push(record: &Record<'_>) {
    let mut q = QUEUE.lock();
    if q.records.len() >= QUEUE_LIMIT {
        q.dropped += 1;
        return;
    }
    q.records.push_back((
        record.level.as_str(),
        record.target.to_owned(),
        record.message.to_owned(),
        record
            .fields
            .iter()
            .map(|f| (f.key.to_owned(), f.value.clone().into_owned()))
            .collect(),
    ));
    QUEUED.notify_one();
}

/// Queue the runtime's lines for `_take_log_records` (True) or write them to stderr
/// again (False).
#[pyfunction]
fn _queue_log_records(on: bool) {
    log::set_sink(on.then(|| Box::new(push) as Box<dyn Fn(&Record<'_>) + Send + Sync>));
}

/// The queued lines as (level, target, message, fields) tuples, waiting up to
/// `timeout` seconds (GIL released) for the first one. Lines dropped because the
/// queue was full come back as one WARN line saying how many.
#[pyfunction]
fn _take_log_records(py: Python<'_>, timeout: f64) -> Vec<OwnedRecord> {
    let wait = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
    py.detach(|| {
        let mut q = QUEUE.lock();
        if q.records.is_empty() && q.dropped == 0 {
            let _ = QUEUED.wait_for(&mut q, wait);
        }
        let mut out: Vec<OwnedRecord> = q.records.drain(..).collect();
        if q.dropped > 0 {
            let count = q.dropped.to_string();
            out.push((
                "WARN",
                "runtime".to_owned(),
                format!("event=log_lines_dropped count={count}"),
                vec![
                    ("event".to_owned(), "log_lines_dropped".to_owned()),
                    ("count".to_owned(), count),
                ],
            ));
            q.dropped = 0;
        }
        out
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_queue_log_records, m)?)?;
    m.add_function(wrap_pyfunction!(_take_log_records, m)?)?;
    Ok(())
}
