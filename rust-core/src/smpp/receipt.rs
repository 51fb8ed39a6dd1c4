//! Delivery receipts as SMSCs really send them: the receipted_message_id and
//! message_state TLVs when present, else the text form of SMPP 3.4 appendix B
//! (`id:... sub:... dlvrd:... submit date:... done date:... stat:... err:... text:...`)
//! read tolerantly; and the message ids, normalised so that the id of a
//! submit_sm_resp and the id in its receipt compare equal.

use super::coding::{decode_text, TextConfig};
use super::pdu::{message_state, SubmitSm};

/// How an SMSC writes a message id in one place (submit_sm_resp, or a receipt's
/// text). SMSCs are known to give the id in hex in one and in decimal in the other;
/// a numeric form is read as a number, so `"00B8BE19"` (hex) and `"12107289"`
/// (decimal) normalise alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdFormat {
    /// An opaque string: compared without case and without leading zeros.
    #[default]
    AsIs,
    /// A hexadecimal number.
    Hex,
    /// A decimal number.
    Decimal,
}

impl IdFormat {
    /// The id in the one form every `IdFormat` normalises to: a number in decimal
    /// without leading zeros; an opaque id (or one that does not read as a number of
    /// this format, or is longer than 128 bits) in lower case without leading zeros.
    pub fn normalise(self, raw: &str) -> String {
        let id = raw.trim();
        let number = match self {
            IdFormat::AsIs => None,
            IdFormat::Hex if id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u128::from_str_radix(id, 16).ok()
            }
            IdFormat::Decimal if id.bytes().all(|b| b.is_ascii_digit()) => id.parse().ok(),
            IdFormat::Hex | IdFormat::Decimal => None,
        };
        if let Some(n) = number {
            return n.to_string();
        }
        let lower = id.to_ascii_lowercase();
        match lower.trim_start_matches('0') {
            "" if !lower.is_empty() => "0".to_owned(),
            rest => rest.to_owned(),
        }
    }
}

/// A date of a receipt's text: `YYMMDDhhmm`, `YYMMDDhhmmss` or `YYYYMMDDhhmmss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReceiptDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    /// Absent in the 10-digit form.
    pub second: Option<u8>,
}

impl ReceiptDate {
    /// Reads 10, 12 or 14 digits; anything else (or a field out of range) is `None`.
    pub fn parse(s: &str) -> Option<ReceiptDate> {
        let d = s.as_bytes();
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let two = |i: usize| -> u8 { (d[i] - b'0') * 10 + (d[i + 1] - b'0') };
        let (year, rest) = match d.len() {
            10 | 12 => (2000 + u16::from(two(0)), 2),
            14 => (u16::from(two(0)) * 100 + u16::from(two(2)), 4),
            _ => return None,
        };
        let date = ReceiptDate {
            year,
            month: two(rest),
            day: two(rest + 2),
            hour: two(rest + 4),
            minute: two(rest + 6),
            second: (d.len() > 10).then(|| two(rest + 8)),
        };
        let valid = (1..=12).contains(&date.month)
            && (1..=31).contains(&date.day)
            && date.hour < 24
            && date.minute < 60
            && date.second.is_none_or(|s| s < 60);
        valid.then_some(date)
    }
}

/// The fields of a receipt's text form; any of them may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptText {
    /// The message id as written (see `IdFormat`).
    pub id: Option<String>,
    /// Messages submitted (`sub:`), usually 1.
    pub submitted: Option<u32>,
    /// Messages delivered (`dlvrd:`).
    pub delivered: Option<u32>,
    pub submit_date: Option<ReceiptDate>,
    pub done_date: Option<ReceiptDate>,
    /// The final (or intermediate) state word, upper case: `DELIVRD`, `UNDELIV`...
    pub stat: Option<String>,
    /// The network-specific error code (`err:`), read as decimal.
    pub err: Option<u32>,
    /// The first characters of the original message.
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

/// The spellings met in the wild, lower case; tried in order at the start of a word.
const KEYS: &[(&str, Key)] = &[
    ("submit date", Key::SubmitDate),
    ("submit_date", Key::SubmitDate),
    ("submitdate", Key::SubmitDate),
    ("done date", Key::DoneDate),
    ("done_date", Key::DoneDate),
    ("donedate", Key::DoneDate),
    ("dlvrd", Key::Dlvrd),
    ("stat", Key::Stat),
    ("text", Key::Text),
    ("sub", Key::Sub),
    ("err", Key::Err),
    ("id", Key::Id),
];

/// The key starting at `at` (which starts a word), and where its value starts:
/// after the key, optional blanks and a colon.
fn key_at(lower: &[u8], at: usize) -> Option<(Key, usize)> {
    KEYS.iter().find_map(|&(name, key)| {
        let rest = lower.get(at..)?.strip_prefix(name.as_bytes())?;
        let blanks = rest.iter().take_while(|b| **b == b' ').count();
        (rest.get(blanks) == Some(&b':')).then_some((key, at + name.len() + blanks + 1))
    })
}

/// Read the text form of a receipt. Keys are found at word starts in any case and
/// order; a value runs to the next key (its first word is taken, except for `text:`,
/// which runs to the end). Never fails: what cannot be read is `None`.
pub fn parse_receipt_text(text: &str) -> ReceiptText {
    let lower = text.to_ascii_lowercase().into_bytes();
    // (key, key start, value start), in text order; `text:` ends the scan.
    let mut found: Vec<(Key, usize, usize)> = Vec::new();
    let mut i = 0;
    while i < lower.len() {
        let word_start = i == 0 || lower[i - 1].is_ascii_whitespace();
        let hit = if word_start { key_at(&lower, i) } else { None };
        if let Some((key, value)) = hit {
            found.push((key, i, value));
            if key == Key::Text {
                break;
            }
            i = value;
        } else {
            i += 1;
        }
    }
    let mut r = ReceiptText::default();
    for (n, &(key, _, start)) in found.iter().enumerate() {
        let end = found.get(n + 1).map_or(text.len(), |next| next.1);
        // Keys are ASCII, so these offsets are character boundaries of `text` too.
        let value = text.get(start..end).unwrap_or_default();
        let word = value.split_whitespace().next();
        match key {
            Key::Id => r.id = r.id.take().or(word.map(str::to_owned)),
            Key::Sub => r.submitted = r.submitted.or(word.and_then(|w| w.parse().ok())),
            Key::Dlvrd => r.delivered = r.delivered.or(word.and_then(|w| w.parse().ok())),
            Key::SubmitDate => r.submit_date = r.submit_date.or(word.and_then(ReceiptDate::parse)),
            Key::DoneDate => r.done_date = r.done_date.or(word.and_then(ReceiptDate::parse)),
            Key::Stat => r.stat = r.stat.take().or(word.map(str::to_ascii_uppercase)),
            Key::Err => r.err = r.err.or(word.and_then(|w| w.parse().ok())),
            Key::Text => r.text = Some(value.trim_start_matches(' ').to_owned()),
        }
    }
    r
}

/// The `message_state` a receipt's `stat:` word stands for. `BUFFRED` (held by the
/// SMSC) is not an SMPP state: it reads as `ENROUTE`, not final.
pub fn state_of_stat(stat: &str) -> Option<u8> {
    Some(match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => message_state::DELIVERED,
        "ACCEPTD" | "ACCEPTED" => message_state::ACCEPTED,
        "ENROUTE" | "BUFFRED" | "BUFFERED" => message_state::ENROUTE,
        "EXPIRED" => message_state::EXPIRED,
        "DELETED" => message_state::DELETED,
        "UNDELIV" | "UNDELIVERABLE" => message_state::UNDELIVERABLE,
        "REJECTD" | "REJECTED" => message_state::REJECTED,
        "UNKNOWN" => message_state::UNKNOWN,
        _ => return None,
    })
}

/// The handset got the message.
pub fn is_delivered(state: u8) -> bool {
    state == message_state::DELIVERED
}

/// The SMSC gave up on the message.
pub fn is_failed(state: u8) -> bool {
    matches!(
        state,
        message_state::EXPIRED
            | message_state::DELETED
            | message_state::UNDELIVERABLE
            | message_state::REJECTED
            | message_state::UNKNOWN
    )
}

/// Where a receipt's message id was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// receipted_message_id: SMPP 3.4 defines it as the id submit_sm_resp gave, so
    /// it is read in the submit_sm_resp's `IdFormat`.
    Tlv,
    /// `id:` of the text, read in the receipt text's `IdFormat`.
    Text,
}

/// What a delivery receipt (deliver_sm or data_sm with a receipt esm_class) says,
/// each item from the TLVs first, else from the text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    /// The message id as written, and where it was found.
    pub id: Option<(String, IdSource)>,
    /// A `message_state` value.
    pub state: Option<u8>,
    /// network_error_code's error code, else the text's `err:`.
    pub error: Option<u32>,
    /// The text form as read (all `None` when the receipt had no text).
    pub text: ReceiptText,
}

impl Receipt {
    /// Read a receipt from the fields of its deliver_sm. The user data is read as
    /// text per its data_coding, or as Latin-1 when that fails (the fields are ASCII).
    pub fn from_sm(sm: &SubmitSm, config: &TextConfig) -> Receipt {
        let data = sm.user_data();
        let text = decode_text(data, sm.data_coding, config)
            .unwrap_or_else(|_| data.iter().map(|&b| char::from(b)).collect());
        let parsed = parse_receipt_text(&text);
        let tlv_id = sm
            .tlvs
            .receipted_message_id()
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .filter(|id| !id.trim().is_empty());
        let id = match tlv_id {
            Some(id) => Some((id, IdSource::Tlv)),
            None => parsed.id.clone().map(|id| (id, IdSource::Text)),
        };
        Receipt {
            id,
            state: sm
                .tlvs
                .message_state()
                .or_else(|| parsed.stat.as_deref().and_then(state_of_stat)),
            error: sm
                .tlvs
                .network_error_code()
                .map(|(_, code)| u32::from(code))
                .or(parsed.err),
            text: parsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_normalise_per_format() {
        let cases = [
            (IdFormat::AsIs, "00B8BE19", "b8be19"),
            (IdFormat::AsIs, " b8be19 ", "b8be19"),
            (IdFormat::AsIs, "000", "0"),
            (IdFormat::AsIs, "", ""),
            (IdFormat::AsIs, "0a-1B-c", "a-1b-c"),
            (IdFormat::Hex, "00B8BE19", "12107289"),
            (IdFormat::Hex, "b8be19", "12107289"),
            (IdFormat::Decimal, "0012107289", "12107289"),
            (IdFormat::Decimal, "12107289", "12107289"),
            // Not a number of the format: compared as an opaque id.
            (IdFormat::Hex, "+12", "+12"),
            (IdFormat::Decimal, "00AB", "ab"),
            (IdFormat::Hex, &"F".repeat(40), &"f".repeat(40)),
        ];
        for (format, raw, normal) in cases {
            assert_eq!(format.normalise(raw), normal, "{format:?} {raw:?}");
        }
        // A decimal id reads the same opaque or decimal.
        assert_eq!(
            IdFormat::AsIs.normalise("0042"),
            IdFormat::Decimal.normalise("42")
        );
    }

    #[test]
    fn dates_of_10_12_and_14_digits() {
        assert_eq!(
            ReceiptDate::parse("2402291305"),
            Some(ReceiptDate {
                year: 2024,
                month: 2,
                day: 29,
                hour: 13,
                minute: 5,
                second: None
            })
        );
        assert_eq!(
            ReceiptDate::parse("240229130559").map(|d| (d.year, d.second)),
            Some((2024, Some(59)))
        );
        assert_eq!(
            ReceiptDate::parse("19991231235958").map(|d| (d.year, d.month, d.second)),
            Some((1999, 12, Some(58)))
        );
        for bad in [
            "",
            "24022913",
            "24022913055",
            "2413011200",
            "24x2291305",
            "2402291360",
        ] {
            assert_eq!(ReceiptDate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_standard_text_form() {
        let r = parse_receipt_text(
            "id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done date:2401011205 \
             stat:DELIVRD err:000 text:Hello id:not-this stat:UNDELIV",
        );
        assert_eq!(r.id.as_deref(), Some("0123456789"));
        assert_eq!((r.submitted, r.delivered), (Some(1), Some(1)));
        assert_eq!(r.submit_date.map(|d| d.minute), Some(0));
        assert_eq!(r.done_date.map(|d| d.minute), Some(5));
        assert_eq!(r.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(r.err, Some(0));
        assert_eq!(
            r.text.as_deref(),
            Some("Hello id:not-this stat:UNDELIV"),
            "text runs to the end"
        );
    }

    #[test]
    fn text_forms_with_missing_fields_other_cases_and_spellings() {
        let r = parse_receipt_text("Id: ab12  Stat : undeliv Err:34");
        assert_eq!(r.id.as_deref(), Some("ab12"));
        assert_eq!(r.stat.as_deref(), Some("UNDELIV"));
        assert_eq!(r.err, Some(34));
        assert_eq!((r.submitted, r.delivered, r.text), (None, None, None));
        let r = parse_receipt_text("id:9 submit_date:240101120000 DONE DATE:20240101120105");
        assert_eq!(r.submit_date.and_then(|d| d.second), Some(0));
        assert_eq!(
            r.done_date.map(|d| (d.year, d.second)),
            Some((2024, Some(5)))
        );
        // Words that merely contain a key are not keys.
        let r = parse_receipt_text("paid:1 substat:2 id:3");
        assert_eq!(r.id.as_deref(), Some("3"));
        assert_eq!(r.submitted, None);
        assert_eq!(parse_receipt_text(""), ReceiptText::default());
        assert_eq!(
            parse_receipt_text("no receipt here"),
            ReceiptText::default()
        );
        // Not UTF-8 trouble: non-ASCII text stays intact.
        let r = parse_receipt_text("id:1 text:héllo ✓");
        assert_eq!(r.text.as_deref(), Some("héllo ✓"));
    }

    #[test]
    fn stat_words_and_their_finality() {
        let cases = [
            ("DELIVRD", true, false),
            ("delivrd", true, false),
            ("ACCEPTD", false, false),
            ("ENROUTE", false, false),
            ("BUFFRED", false, false),
            ("EXPIRED", false, true),
            ("DELETED", false, true),
            ("UNDELIV", false, true),
            ("REJECTD", false, true),
            ("UNKNOWN", false, true),
        ];
        for (stat, delivered, failed) in cases {
            let state = state_of_stat(stat).expect(stat);
            assert_eq!(
                (is_delivered(state), is_failed(state)),
                (delivered, failed),
                "{stat}"
            );
        }
        assert_eq!(state_of_stat("WHATEVER"), None);
    }
}
