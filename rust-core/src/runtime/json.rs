//! The one JSON string writer the runtime and the tools share (log lines, `/status`,
//! the simulator's record): no JSON library in the core for a few literals.

use std::fmt::Write as _;

/// `s` as a JSON string literal (RFC 8259, section 7): quotes, backslash and control
/// characters (and DEL) escaped; everything else, non-ASCII included, as it is.
pub fn push_string(out: &mut String, s: &str) {
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
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::push_string;

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_string(&mut out, s);
        out
    }

    #[test]
    fn quotes_backslashes_and_controls_are_escaped() {
        assert_eq!(json(""), r#""""#);
        assert_eq!(json(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(json(r"a\b"), r#""a\\b""#);
        assert_eq!(json("1\n2\r3\t4"), r#""1\n2\r3\t4""#);
        assert_eq!(json("\u{08}\u{0C}"), r#""\b\f""#);
        assert_eq!(
            json("\u{0}\u{1b}\u{1f}\u{7f}"),
            r#""\u0000\u001b\u001f\u007f""#
        );
        // Non-ASCII needs no escape.
        assert_eq!(json("é€😀"), "\"é€😀\"");
    }
}
