//! Structured log lines for the runtime and the daemons: one line per event,
//! `<UTC time> <LEVEL> key=value ...`, on stderr unless a sink is installed.
//!
//! Deliberately tiny: the runtime logs rarely (connections, refusals, faults), so a
//! global level and an optional sink cover it without a logging framework. A sink
//! receives each line as a [`Record`] (level, target, message, fields) so that
//! embedders (the C API, the Python module) can route lines into their own logs and
//! tests can assert what was logged. A line filtered out by the level costs one
//! atomic load: nothing is formatted or allocated.
//!
//! Call sites write `key=value` pairs (values with spaces in double quotes); the
//! fields are parsed back from that text only when a sink or the JSON format needs
//! them, so the text on stderr stays exactly what the call site wrote.

use std::borrow::Cow;
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

/// How lines are written to stderr when no sink is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<UTC time> <LEVEL> key=value ...`
    Text = 0,
    /// One JSON object per line: `ts`, `level`, `target`, `msg`, then the fields.
    Json = 1,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown log format {other:?} (text, json)")),
        }
    }
}

/// One `key=value` pair of a line; the value is unquoted (borrowed unless it had
/// escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub key: &'a str,
    pub value: Cow<'a, str>,
}

/// One line as a sink sees it. Everything borrows from the line being written.
#[derive(Debug)]
pub struct Record<'a> {
    pub level: Level,
    /// What the line is about: "link", "smsc" (from the line's first key), "runtime"
    /// by default, or what the call site named with `slog!(target: ...)`.
    pub target: &'a str,
    /// The line's text as written to stderr after the level (`key=value ...`).
    pub message: &'a str,
    pub fields: &'a [Field<'a>],
}

impl Record<'_> {
    /// The value of field `key`, if the line has one.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.value.as_ref())
    }
}

type Sink = Box<dyn Fn(&Record<'_>) + Send + Sync>;

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Text as u8);
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Lines up to and including `level` are written.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// How lines go to stderr (the sink, when installed, gets records either way).
pub fn set_format(format: Format) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

/// Send every line to `sink` instead of stderr; `None` restores stderr. The sink
/// runs on the logging thread (often a node's event-loop thread) and must not block.
pub fn set_sink(sink: Option<Sink>) {
    if let Ok(mut s) = SINK.write() {
        *s = sink;
    }
}

/// Write one line (use the [`slog!`](crate::slog) macro, which checks the level
/// first). `target` is `None` to derive it from the line's first key.
pub fn write(level: Level, target: Option<&'static str>, args: fmt::Arguments<'_>) {
    let text = args.to_string();
    if let Ok(sink) = SINK.read() {
        if let Some(sink) = sink.as_ref() {
            let fields = parse_fields(&text);
            sink(&Record {
                level,
                target: target.unwrap_or_else(|| target_of(&fields)),
                message: &text,
                fields: &fields,
            });
            return;
        }
    }
    let line = if FORMAT.load(Ordering::Relaxed) == Format::Json as u8 {
        let fields = parse_fields(&text);
        json_line(
            &utc_now(),
            &Record {
                level,
                target: target.unwrap_or_else(|| target_of(&fields)),
                message: &text,
                fields: &fields,
            },
        )
    } else {
        format!("{} {:<5} {text}", utc_now(), level.as_str())
    };
    // A closed stderr must not take a daemon down (eprintln! would panic).
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The subsystem a line is about, from its first key.
fn target_of(fields: &[Field<'_>]) -> &'static str {
    match fields.first().map(|f| f.key) {
        Some("link") => "link",
        Some("smsc") => "smsc",
        _ => "runtime",
    }
}

/// The `key=value` pairs of a line. A value is a run of non-spaces or a
/// double-quoted string (`\"` and `\\` escaped, as `{:?}` writes them); words
/// without `=` continue the previous unquoted value (a `reason={reason}` whose text
/// has spaces). Never fails: text that is not a pair is skipped.
pub fn parse_fields(text: &str) -> Vec<Field<'_>> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    // Where the last unquoted value starts, to extend it by a continuation word.
    let mut open_value: Option<usize> = None;
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let word_len = rest.find(' ').unwrap_or(rest.len());
        if word_len == 0 {
            pos += 1;
            continue;
        }
        match rest[..word_len].find('=') {
            Some(eq) if eq > 0 => {
                let key = &rest[..eq];
                let value_at = pos + eq + 1;
                if let Some(quoted) = text[value_at..].strip_prefix('"') {
                    let (value, used) = unquote(quoted);
                    fields.push(Field { key, value });
                    open_value = None;
                    pos = value_at + 1 + used;
                } else {
                    let end =
                        value_at + text[value_at..].find(' ').unwrap_or(text.len() - value_at);
                    fields.push(Field {
                        key,
                        value: Cow::Borrowed(&text[value_at..end]),
                    });
                    open_value = Some(value_at);
                    pos = end;
                }
            }
            _ => {
                let end = pos + word_len;
                if let (Some(start), Some(last)) = (open_value, fields.last_mut()) {
                    last.value = Cow::Borrowed(&text[start..end]);
                }
                pos = end;
            }
        }
    }
    fields
}

/// The text of a quoted value (after its opening quote) and the bytes it used,
/// closing quote included; an unterminated value runs to the end.
fn unquote(s: &str) -> (Cow<'_, str>, usize) {
    let mut owned: Option<String> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let value = owned.map_or(Cow::Borrowed(&s[..i]), Cow::Owned);
                return (value, i + 1);
            }
            '\\' => {
                let buf = owned.get_or_insert_with(|| s[..i].to_owned());
                match chars.next().map(|(_, e)| e) {
                    Some('n') => buf.push('\n'),
                    Some('r') => buf.push('\r'),
                    Some('t') => buf.push('\t'),
                    Some(e) => buf.push(e),
                    None => buf.push('\\'),
                }
            }
            c => {
                if let Some(buf) = owned.as_mut() {
                    buf.push(c);
                }
            }
        }
    }
    (owned.map_or(Cow::Borrowed(s), Cow::Owned), s.len())
}

/// One JSON object: `ts`, `level`, `target`, `msg`, then each field as a string
/// (a field named like one of the first four gets a `field_` prefix).
pub fn json_line(ts: &str, record: &Record<'_>) -> String {
    let mut out = String::with_capacity(64 + 2 * record.message.len());
    out.push_str("{\"ts\":");
    super::json::push_string(&mut out, ts);
    out.push_str(",\"level\":");
    super::json::push_string(&mut out, record.level.as_str());
    out.push_str(",\"target\":");
    super::json::push_string(&mut out, record.target);
    out.push_str(",\"msg\":");
    super::json::push_string(&mut out, record.message);
    for f in record.fields {
        out.push(',');
        if matches!(f.key, "ts" | "level" | "target" | "msg") {
            super::json::push_string(&mut out, &format!("field_{}", f.key));
        } else {
            super::json::push_string(&mut out, f.key);
        }
        out.push(':');
        super::json::push_string(&mut out, &f.value);
    }
    out.push('}');
    out
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

/// Bytes of peer input a log line quotes at most.
pub const EXCERPT_MAX: usize = 48;

/// A short, printable prefix of peer input for a log line: at most [`EXCERPT_MAX`]
/// bytes, escaped, with the total length when cut (input is never echoed whole).
pub fn excerpt(input: &[u8]) -> String {
    let shown = &input[..input.len().min(EXCERPT_MAX)];
    let mut out: String = shown.escape_ascii().to_string();
    if input.len() > shown.len() {
        out.push_str(&format!("...({} bytes)", input.len()));
    }
    out
}

/// Bytes of a message about peer input (an error that may quote it) a line keeps.
pub const DETAIL_MAX: usize = 200;

/// `text` cut to at most [`DETAIL_MAX`] bytes (at a character boundary), marked when
/// cut: for error texts that may quote what a peer sent.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= DETAIL_MAX {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = DETAIL_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}...({} bytes)", &text[..end], text.len()))
}

/// Rate limit for log lines about a peer: `burst` lines per key per `window`; the lines
/// held back are counted and the count goes into the next line for that key (or is
/// reported by [`take_quiet`](Self::take_quiet) once the key falls silent). Keys are
/// bounded: when the table is full, new keys share one overflow entry. Sans-IO:
/// `now` comes in.
#[derive(Debug)]
pub struct Limiter<K> {
    window: std::time::Duration,
    burst: u32,
    max_keys: usize,
    keys: std::collections::HashMap<K, Window>,
    overflow: Window,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: Option<std::time::Instant>,
    lines: u32,
    suppressed: u64,
}

impl Window {
    fn allow(
        &mut self,
        now: std::time::Instant,
        window: std::time::Duration,
        burst: u32,
    ) -> Option<u64> {
        match self.start {
            Some(start) if now < start + window => {
                if self.lines < burst {
                    self.lines += 1;
                    return Some(std::mem::take(&mut self.suppressed));
                }
                self.suppressed += 1;
                None
            }
            _ => {
                self.start = Some(now);
                self.lines = 1;
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Where a held-back count belongs: a key, or every key that did not fit the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey<K> {
    Key(K),
    Others,
}

impl<K: Clone + Eq + std::hash::Hash> Limiter<K> {
    pub fn new(window: std::time::Duration, burst: u32, max_keys: usize) -> Self {
        Limiter {
            window,
            burst: burst.max(1),
            max_keys,
            keys: std::collections::HashMap::new(),
            overflow: Window::default(),
        }
    }

    pub fn window(&self) -> std::time::Duration {
        self.window
    }

    /// An event about `key`: `Some(n)` to write its line now, with `n` lines held
    /// back since the last one; `None` to count it and stay quiet.
    pub fn allow(&mut self, key: &K, now: std::time::Instant) -> Option<u64> {
        if let Some(w) = self.keys.get_mut(key) {
            return w.allow(now, self.window, self.burst);
        }
        if self.keys.len() >= self.max_keys {
            let window = self.window;
            self.keys
                .retain(|_, w| w.suppressed > 0 || w.start.is_some_and(|s| now < s + window));
        }
        if self.keys.len() >= self.max_keys {
            return self.overflow.allow(now, self.window, self.burst);
        }
        let mut w = Window::default();
        let out = w.allow(now, self.window, self.burst);
        self.keys.insert(key.clone(), w);
        out
    }

    /// Counts held back in windows that have ended with no line since: write one
    /// summary line for each. Forgets keys that are quiet.
    pub fn take_quiet(&mut self, now: std::time::Instant) -> Vec<(LimitKey<K>, u64)> {
        let window = self.window;
        let mut out = Vec::new();
        self.keys.retain(|k, w| {
            let ended = w.start.is_none_or(|s| now >= s + window);
            if ended && w.suppressed > 0 {
                out.push((LimitKey::Key(k.clone()), w.suppressed));
            }
            !ended
        });
        if self.overflow.start.is_none_or(|s| now >= s + window) && self.overflow.suppressed > 0 {
            out.push((
                LimitKey::Others,
                std::mem::take(&mut self.overflow.suppressed),
            ));
            self.overflow.start = None;
        }
        out
    }
}

/// `slog!(Level::Info, "link={} event=up peer={}", name, peer)`: one structured line,
/// its target taken from the first key; `slog!(target: "node", Level::Info, ...)`
/// names the target.
#[macro_export]
macro_rules! slog {
    (target: $target:expr, $level:expr, $($arg:tt)*) => {{
        let level = $level;
        if $crate::runtime::log::enabled(level) {
            $crate::runtime::log::write(level, Some($target), format_args!($($arg)*));
        }
    }};
    ($level:expr, $($arg:tt)*) => {{
        let level = $level;
        if $crate::runtime::log::enabled(level) {
            $crate::runtime::log::write(level, None, format_args!($($arg)*));
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

    fn pairs(text: &str) -> Vec<(&str, String)> {
        parse_fields(text)
            .into_iter()
            .map(|f| (f.key, f.value.into_owned()))
            .collect()
    }

    #[test]
    fn fields_parse_bare_quoted_escaped_and_continued() {
        assert_eq!(
            pairs("link=a event=up peer=1.2.3.4:5"),
            [
                ("link", "a".into()),
                ("event", "up".into()),
                ("peer", "1.2.3.4:5".into())
            ]
        );
        assert_eq!(
            pairs(r#"link=a reason="no room" x=1"#),
            [
                ("link", "a".into()),
                ("reason", "no room".into()),
                ("x", "1".into())
            ]
        );
        assert_eq!(
            pairs(r#"event=bad_input reason="say \"hi\"\\" n=2"#),
            [
                ("event", "bad_input".into()),
                ("reason", r#"say "hi"\"#.into()),
                ("n", "2".into())
            ]
        );
        // An unquoted value with spaces (`reason={reason}`) keeps its words.
        assert_eq!(
            pairs("link=a event=down reason=peer closed the connection"),
            [
                ("link", "a".into()),
                ("event", "down".into()),
                ("reason", "peer closed the connection".into())
            ]
        );
        // Text that is not a pair is skipped; an unterminated quote runs to the end.
        assert_eq!(pairs("  stray =x y=\"open"), [("y", "open".into())]);
        assert!(pairs("").is_empty());
    }

    #[test]
    fn targets_come_from_the_first_key() {
        assert_eq!(target_of(&parse_fields("link=a event=up")), "link");
        assert_eq!(
            target_of(&parse_fields("smsc=1.2.3.4:5 event=down")),
            "smsc"
        );
        assert_eq!(target_of(&parse_fields("event=started link=a")), "runtime");
    }

    #[test]
    fn json_lines_escape_and_flatten() {
        let text = "link=a event=refused reason=\"say \\\"hi\\\"\" msg=x";
        let fields = parse_fields(text);
        let record = Record {
            level: Level::Warn,
            target: "link",
            message: "tab\there \u{1}",
            fields: &fields,
        };
        assert_eq!(
            json_line("2026-01-01T00:00:00.000Z", &record),
            r#"{"ts":"2026-01-01T00:00:00.000Z","level":"WARN","target":"link","msg":"tab\there \u0001","link":"a","event":"refused","reason":"say \"hi\"","field_msg":"x"}"#
        );
    }

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<Format>(), Ok(Format::Json));
        assert_eq!("text".parse::<Format>(), Ok(Format::Text));
        assert!("xml".parse::<Format>().is_err());
    }

    #[test]
    fn limiter_lets_one_line_per_window_through_and_counts_the_rest() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l: Limiter<u8> = Limiter::new(Duration::from_secs(10), 2, 2);
        assert_eq!(l.allow(&1, t0), Some(0));
        assert_eq!(l.allow(&1, t0), Some(0), "a burst of two");
        for _ in 0..1233 {
            assert_eq!(l.allow(&1, t0 + s), None);
        }
        assert_eq!(l.allow(&2, t0), Some(0), "keys are independent");
        assert_eq!(l.allow(&1, t0 + 10 * s), Some(1233));
        // Key 2 is quiet and forgotten to make room; then the table is full and
        // further keys share the overflow entry.
        assert_eq!(l.allow(&3, t0 + 10 * s), Some(0));
        assert_eq!(l.allow(&4, t0 + 11 * s), Some(0));
        assert_eq!(l.allow(&5, t0 + 11 * s), Some(0));
        assert_eq!(l.allow(&5, t0 + 11 * s), None);
        assert_eq!(l.allow(&1, t0 + 12 * s), Some(0));
        assert_eq!(l.allow(&1, t0 + 12 * s), None);
        let quiet = l.take_quiet(t0 + 25 * s);
        assert_eq!(quiet.len(), 2);
        assert!(quiet.contains(&(LimitKey::Key(1), 1)));
        assert!(quiet.contains(&(LimitKey::Others, 1)));
        assert!(l.take_quiet(t0 + 40 * s).is_empty());
    }

    #[test]
    fn clipped_details_keep_short_texts_and_cut_long_ones_at_a_char() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert!(c.len() < DETAIL_MAX + 20);
        assert!(c.ends_with("...(2000 bytes)"));
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"ab\n\x01"), "ab\\n\\x01");
        let long = vec![b'x'; 64 << 20];
        let e = excerpt(&long);
        assert!(e.len() < 100, "{e}");
        assert!(e.ends_with("...(67108864 bytes)"));
    }
}
