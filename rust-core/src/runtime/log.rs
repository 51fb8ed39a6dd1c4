//! Structured log lines for the runtime and the daemons: one line per event,
//! `<UTC time> <LEVEL> key=value ...`, on stderr unless a sink is installed.
//!
//! Deliberately tiny: the runtime logs rarely (connections, refusals, faults), so a
//! global level and an optional sink cover it without a logging framework. A sink
//! lets tests assert that a refusal was logged and lets embedders route lines into
//! their own logs.

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Severity of a line; lines above the configured level are not formatted at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" | "warning" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            "off" | "none" => Ok(Level::Error),
            other => Err(format!(
                "unknown log level {other:?} (error, warn, info, debug)"
            )),
        }
    }
}

type Sink = Box<dyn Fn(Level, &str) + Send + Sync>;

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Lines up to and including `level` are written.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Send every line to `sink` (the text after the timestamp and level) instead of
/// stderr; `None` restores stderr.
pub fn set_sink(sink: Option<Sink>) {
    if let Ok(mut s) = SINK.write() {
        *s = sink;
    }
}

/// Write one line (use the [`slog!`](crate::slog) macro, which checks the level first).
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let text = args.to_string();
    if let Ok(sink) = SINK.read() {
        if let Some(sink) = sink.as_ref() {
            sink(level, &text);
            return;
        }
    }
    // A closed stderr must not take a daemon down (eprintln! would panic).
    let _ = writeln!(
        std::io::stderr(),
        "{} {:<5} {text}",
        utc_now(),
        level.as_str()
    );
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for now.
pub fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `slog!(Level::Info, "link={} event=up peer={}", name, peer)`: one structured line.
#[macro_export]
macro_rules! slog {
    ($level:expr, $($arg:tt)*) => {{
        let level = $level;
        if $crate::runtime::log::enabled(level) {
            $crate::runtime::log::write(level, format_args!($($arg)*));
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!("WARN".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().is_err());
        assert!(Level::Error < Level::Debug);
    }
}
