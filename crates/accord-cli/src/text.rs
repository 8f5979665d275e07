//! Showing untrusted text on a terminal.
//!
//! Payloads, agent names, received messages and parser errors that quote
//! them come from other parties. Shown raw, control characters could drive
//! the terminal (escape sequences) and invisible format characters (the
//! bidirectional overrides U+202A–U+202E and U+2066–U+2069, zero-width
//! characters, tags) could make a line read differently from what it holds
//! ("Trojan Source"). Both are shown escaped.

/// Characters with no visible glyph of their own that change how the text
/// around them is shown or read: Unicode's format characters (category Cf)
/// and the line and paragraph separators. Listed by range, so no Unicode
/// tables are needed; `hidden_chars_are_listed` checks the list.
const HIDDEN: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is invisible and changes how text around it is shown.
pub(crate) fn is_hidden(c: char) -> bool {
    let c = c as u32;
    HIDDEN.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n') || is_hidden(c)
}

/// `s` with control characters (but newlines) and hidden format characters
/// escaped as `\u{…}`.
pub(crate) fn printable(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if needs_escape(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A JSON text with hidden format characters written as `\uXXXX` escapes:
/// the same JSON value, safe to show. Canonical JSON escapes control
/// characters already, and these characters can occur only inside strings,
/// where the escape means the same character.
pub(crate) fn json_printable(json: &str) -> String {
    if !json.chars().any(is_hidden) {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_hidden(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// `n` with thousands separators.
pub(crate) fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_zero_width_characters_are_escaped() {
        let s = "ok\u{202E}txt.exe\u{200B}\u{2066}x\u{2069}\u{E0041}\u{1b}[2J";
        let p = printable(s);
        assert_eq!(
            p,
            "ok\\u{202e}txt.exe\\u{200b}\\u{2066}x\\u{2069}\\u{e0041}\\u{1b}[2J"
        );
        assert!(!p.chars().any(needs_escape));
        assert_eq!(
            printable("plain, ünïcödé ✓\nnext"),
            "plain, ünïcödé ✓\nnext"
        );
    }

    #[test]
    fn json_keeps_its_value() {
        let text = r#"{"a":"x\u202ey","b":"😀"}"#.replace("\\u202e", "\u{202E}");
        let text = format!("{}{}", &text[..text.len() - 1], ",\"t\":\"\u{E0041}\"}");
        let shown = json_printable(&text);
        assert!(!shown.chars().any(is_hidden));
        let a: serde_json::Value = serde_json::from_str(&text).unwrap();
        let b: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(a, b);
        assert!(shown.contains("\\udb40\\udc41"), "{shown}");
    }

    #[test]
    fn hidden_chars_are_listed() {
        // Every range is ordered, disjoint and holds no visible letter.
        for w in HIDDEN.windows(2) {
            assert!(w[0].1 < w[1].0);
        }
        for &(lo, hi) in HIDDEN {
            assert!(lo <= hi);
            for c in (lo..=hi).filter_map(char::from_u32) {
                assert!(!c.is_alphanumeric(), "{c:?}");
            }
        }
        for c in ['a', 'é', '中', ' ', '\u{FE0F}'] {
            assert!(!is_hidden(c));
        }
    }
}
