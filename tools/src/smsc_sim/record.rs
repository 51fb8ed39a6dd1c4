//! The simulator's record of accepted submits: one JSON object per line. Written by
//! hand, because a JSON library would be the only reason for Python's
//! `smslink.testing` to carry one.

use std::fmt::Write as _;

use smslink::message::Message;

/// `{"seq":1,"from":"...","to":"...","timestamp":"...","text":"..."}`, with `hex`
/// (upper-case, two digits per octet) instead of `text` when the payload is not text,
/// and `"part":[reference,total,index]` when the submit is a part of a concatenated
/// SMS.
pub(super) fn submit_line(seq: u64, message: &Message, timestamp: &str) -> String {
    let mut line = String::with_capacity(96 + message.payload().len() * 2);
    let _ = write!(line, "{{\"seq\":{seq},");
    push_addresses(&mut line, message);
    line.push_str(",\"timestamp\":");
    smslink::runtime::json::push_string(&mut line, timestamp);
    push_payload(&mut line, message);
    line.push('}');
    line
}

/// `{"mo":1,"from":"...","to":"...","text":"..."}` (or `hex`): the `mo`th MO a client
/// acknowledged, over all connections.
pub(super) fn mo_line(n: u64, message: &Message) -> String {
    let mut line = String::with_capacity(64 + message.payload().len() * 2);
    let _ = write!(line, "{{\"mo\":{n},");
    push_addresses(&mut line, message);
    push_payload(&mut line, message);
    line.push('}');
    line
}

/// The complete lines of a record file the simulator may be appending to right now:
/// a last line without its newline is still being written (a reader can see a
/// write() half done) and is left for the next read.
pub fn complete_lines(text: &str) -> std::str::Lines<'_> {
    text[..text.rfind('\n').map_or(0, |i| i + 1)].lines()
}

fn push_addresses(line: &mut String, message: &Message) {
    line.push_str("\"from\":");
    smslink::runtime::json::push_string(line, message.from.as_str());
    line.push_str(",\"to\":");
    smslink::runtime::json::push_string(line, message.to.as_str());
}

fn push_payload(line: &mut String, message: &Message) {
    match message.text_str() {
        Some(text) => {
            line.push_str(",\"text\":");
            smslink::runtime::json::push_string(line, text);
        }
        None => {
            line.push_str(",\"hex\":\"");
            for b in message.payload() {
                let _ = write!(line, "{b:02X}");
            }
            line.push('"');
        }
    }
    if let Some(p) = &message.part {
        let _ = write!(line, ",\"part\":[{},{},{}]", p.reference, p.total, p.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = String::new();
        smslink::runtime::json::push_string(&mut out, s);
        out
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

        let mut part = Message::text("1", "2", "abc").unwrap();
        part.part = Some(smslink::message::Part::new(300, 3, 2).unwrap());
        let v: serde_json::Value =
            serde_json::from_str(&submit_line(9, &part, "260101120002")).expect("valid JSON");
        assert_eq!(v["part"], serde_json::json!([300, 3, 2]));
    }

    #[test]
    fn acknowledged_mo_make_one_json_object_each() {
        let mo = Message::text("4670", "12345", "mo \"1\"").unwrap();
        let v: serde_json::Value = serde_json::from_str(&mo_line(3, &mo)).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"mo": 3, "from": "4670", "to": "12345", "text": "mo \"1\""})
        );
    }
}
