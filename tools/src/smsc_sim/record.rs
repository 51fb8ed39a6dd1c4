//! The simulator's record of accepted submits: one JSON object per line. Written by
//! hand, because a JSON library would be the only reason for Python's
//! `smslink.testing` to carry one.

use std::fmt::Write as _;

use smslink::message::Message;

/// `{"seq":1,"from":"...","to":"...","timestamp":"...","text":"..."}`, with `hex`
/// (upper-case, two digits per octet) instead of `text` when the payload is not text.
pub(super) fn submit_line(seq: u64, message: &Message, timestamp: &str) -> String {
    let mut line = String::with_capacity(96 + message.payload().len() * 2);
    let _ = write!(line, "{{\"seq\":{seq},\"from\":");
    push_json_string(&mut line, message.from.as_str());
    line.push_str(",\"to\":");
    push_json_string(&mut line, message.to.as_str());
    line.push_str(",\"timestamp\":");
    push_json_string(&mut line, timestamp);
    match message.text_str() {
        Some(text) => {
            line.push_str(",\"text\":");
            push_json_string(&mut line, text);
        }
        None => {
            line.push_str(",\"hex\":\"");
            for b in message.payload() {
                let _ = write!(line, "{b:02X}");
            }
            line.push('"');
        }
    }
    line.push('}');
    line
}

/// `s` as a JSON string literal (RFC 8259, section 7): quotes, backslash and the
/// control characters escaped; everything else, non-ASCII included, as it is.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_string(&mut out, s);
        out
    }

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(json(""), r#""""#);
        assert_eq!(json(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(json(r"a\b"), r#""a\\b""#);
        assert_eq!(json("1\n2\r3\t4"), r#""1\n2\r3\t4""#);
        assert_eq!(json("\u{08}\u{0C}"), r#""\b\f""#);
        assert_eq!(json("\u{0}\u{1b}\u{1f}"), r#""\u0000\u001b\u001f""#);
        // DEL and non-ASCII need no escape.
        assert_eq!(json("\u{7f}é€😀"), "\"\u{7f}é€😀\"");
    }

    #[test]
    fn every_character_class_survives_a_json_parser() {
        let mut all: String = (0u32..0x250).filter_map(char::from_u32).collect();
        all.push_str("\u{2028}\u{2029}\u{FFFD}\u{10FFFF}😀 \"quoted\" \\path\\");
        let parsed: String = serde_json::from_str(&json(&all)).expect("valid JSON");
        assert_eq!(parsed, all);
    }

    #[test]
    fn text_and_binary_submits_make_one_json_object_each() {
        let text = Message::text("Shop A", "+4670", "line 1\nline \"2\" \\ €").unwrap();
        let line = submit_line(7, &text, "260101120000");
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({
                "seq": 7,
                "from": "Shop A",
                "to": "+4670",
                "timestamp": "260101120000",
                "text": "line 1\nline \"2\" \\ €",
            })
        );

        let binary = Message::binary("1", "2", &[0, 0x1f, 0xab, 0xff]).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&submit_line(8, &binary, "260101120001")).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({
                "seq": 8,
                "from": "1",
                "to": "2",
                "timestamp": "260101120001",
                "hex": "001FABFF",
            })
        );
    }
}
