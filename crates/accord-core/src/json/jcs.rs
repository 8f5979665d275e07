//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! Everything Accord signs is serialised with [`write_value`]. Parsing goes
//! through [`parse`], which — unlike `serde_json::from_str` — refuses duplicate
//! object keys instead of silently keeping the last one, because two parsers
//! that disagree on a duplicate key would see two different signed documents.
//!
//! Numbers follow RFC 8785 §3.2.2.3: every number is an IEEE-754 double,
//! printed the way ECMAScript's `Number.prototype.toString` prints it
//! (delegated to the `ryu-js` crate). Signed Accord documents additionally
//! forbid non-integers and integers beyond ±(2^53−1) ([`check_signable`]), so
//! their numbers never depend on float formatting at all.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Largest integer magnitude allowed in a signed document: 2^53 − 1, the
/// largest integer every JSON implementation represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a JSON text could not be parsed or canonicalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// The text is not valid JSON (or has a duplicate key); the message carries
    /// line and column from the parser.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A number in a document that will be signed is not an integer.
    #[error(
        "{path}: {value} is not an integer; signed documents carry no floating-point numbers (encode it as a string)"
    )]
    Float {
        /// JSON pointer of the offending value.
        path: String,
        /// The number as parsed.
        value: String,
    },
    /// An integer in a document that will be signed is outside ±(2^53−1).
    #[error("{path}: {value} is outside ±(2^53−1); encode large integers as strings")]
    IntegerRange {
        /// JSON pointer of the offending value.
        path: String,
        /// The number as parsed.
        value: String,
    },
}

/// Most levels of nesting of objects and arrays in any JSON text Accord
/// reads (serde_json's recursion limit of 128 counts the outermost call).
pub const MAX_DEPTH: usize = 127;

/// Levels of nesting of objects and arrays in `v` (a scalar is 0), counted
/// only up to `MAX_DEPTH + 1`: enough to tell whether `v` is within the
/// limit, without recursion, whatever the depth of a value built in memory.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Object(m) => Box::new(m.values()),
            Value::Array(a) => Box::new(a.iter()),
            _ => continue,
        };
        deepest = deepest.max(level);
        if level > MAX_DEPTH {
            break;
        }
        stack.extend(children.map(|c| (c, level + 1)));
    }
    deepest
}

/// Parses JSON text strictly: valid UTF-8 JSON per RFC 8259, no duplicate
/// keys, nothing but whitespace after the value, at most [`MAX_DEPTH`]
/// levels of nesting.
pub fn parse(text: &[u8]) -> Result<Value, JcsError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(|e| JcsError::Syntax(syntax_message(&e)))?;
    de.end().map_err(|e| JcsError::Syntax(syntax_message(&e)))?;
    Ok(value)
}

/// serde_json's message for `e`, with the limit named where serde_json's
/// wording does not: nesting ("recursion limit exceeded") and a number
/// beyond the IEEE-754 double range ("number out of range").
pub fn syntax_message(e: &serde_json::Error) -> String {
    let m = e.to_string();
    if m.starts_with("recursion limit exceeded") {
        format!(
            "nested more than {MAX_DEPTH} levels of arrays and objects, the limit (PROTOCOL.md 2): {m}"
        )
    } else if m.starts_with("number out of range") {
        format!(
            "a number beyond the IEEE-754 double range (magnitude ≥ 2^1024), which JSON texts may not hold (PROTOCOL.md 2): {m}"
        )
    } else {
        m
    }
}

/// Parses `text` and returns its RFC 8785 canonical form.
pub fn canonicalize(text: &[u8]) -> Result<Vec<u8>, JcsError> {
    let value = parse(text)?;
    Ok(to_vec(&value))
}

/// Returns the canonical form of an already parsed value.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    out
}

/// Appends the canonical form of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// Appends the canonical form of an object (members sorted by the UTF-16
/// code units of their names, RFC 8785 §3.2.3).
pub fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    // serde_json's map is usually already ordered by code point, which equals
    // UTF-16 order except around supplementary-plane characters; only sort
    // when the order actually differs.
    let sorted = map
        .keys()
        .zip(map.keys().skip(1))
        .all(|(a, b)| cmp_utf16(a, b) == Ordering::Less);
    if sorted {
        write_members(out, map.iter());
    } else {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by(|a, b| cmp_utf16(a.0, b.0));
        write_members(out, entries.into_iter());
    }
    out.push(b'}');
}

fn write_members<'a>(out: &mut Vec<u8>, members: impl Iterator<Item = (&'a String, &'a Value)>) {
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
}

/// Compares two strings by their UTF-16 code units, as RFC 8785 §3.2.3 sorts
/// property names.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.as_bytes().cmp(b.as_bytes());
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Appends a JSON string literal escaped as RFC 8785 §3.2.2.2 requires:
/// `"` and `\` escaped, the five short control escapes, other control
/// characters as `\u00xx` (lower-case hex), everything else verbatim.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a number in ECMAScript `Number.prototype.toString` form.
fn write_number(out: &mut Vec<u8>, n: &Number) {
    // Integers that a double holds exactly print as plain digits in both
    // worlds; skip the float formatter for them (the common case in Accord).
    if let Some(i) = n.as_i64()
        && i.unsigned_abs() <= MAX_SAFE_INTEGER
    {
        out.extend_from_slice(i.to_string().as_bytes());
        return;
    }
    let f = number_as_f64(n);
    let mut buf = ryu_js::Buffer::new();
    out.extend_from_slice(buf.format(f).as_bytes());
}

/// The IEEE-754 double a JSON number denotes (RFC 8785 §3.2.2.3). Integers
/// beyond 2^53 round to nearest, ties to even, like every JSON parser that
/// reads numbers as doubles.
fn number_as_f64(n: &Number) -> f64 {
    if let Some(u) = n.as_u64() {
        u as f64
    } else if let Some(i) = n.as_i64() {
        i as f64
    } else {
        // serde_json only yields finite doubles from JSON text.
        n.as_f64().unwrap_or(0.0)
    }
}

/// Checks that a value may appear in a signed Accord document: every number
/// is an integer within ±(2^53−1). Returns the JSON pointer of the first
/// offending number otherwise.
pub fn check_signable(value: &Value) -> Result<(), JcsError> {
    fn walk(value: &Value, path: &mut String) -> Result<(), JcsError> {
        match value {
            Value::Number(n) => {
                let in_range = match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => u <= MAX_SAFE_INTEGER,
                    (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                    (None, None) => {
                        return Err(JcsError::Float {
                            path: pointer(path),
                            value: n.to_string(),
                        });
                    }
                };
                if in_range {
                    Ok(())
                } else {
                    Err(JcsError::IntegerRange {
                        path: pointer(path),
                        value: n.to_string(),
                    })
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    walk(v, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    fn pointer(path: &str) -> String {
        if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        }
    }
    walk(value, &mut String::new())
}

/// Deserializes a JSON object strictly (duplicate keys refused at any
/// depth); for `#[serde(deserialize_with)]` on members of signed documents.
pub fn deserialize_object<'de, D: de::Deserializer<'de>>(
    d: D,
) -> Result<Map<String, Value>, D::Error> {
    match StrictValue.deserialize(d)? {
        Value::Object(m) => Ok(m),
        _ => Err(de::Error::custom("must be a JSON object")),
    }
}

/// A `serde_json::Value` deserializer that rejects duplicate object keys.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} (a signed document must have one meaning)"
                )));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(canonicalize(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn numbers_follow_ecmascript() {
        assert_eq!(
            canon("[-0, 0.0, -0.0, 1.0, 1e21, 1e20, 123e-20, 9007199254740993]"),
            "[0,0,0,1,1e+21,100000000000000000000,1.23e-18,9007199254740992]"
        );
        assert_eq!(
            canon("[5e-324, 1.7976931348623157e308, 0.1, 100, -1.5]"),
            "[5e-324,1.7976931348623157e+308,0.1,100,-1.5]"
        );
    }

    #[test]
    fn depth_is_counted_without_recursion() {
        let mut v = Value::from(1);
        assert_eq!(depth(&v), 0);
        for _ in 0..1_000 {
            v = Value::Array(vec![v]);
        }
        assert_eq!(depth(&v), MAX_DEPTH + 1, "counting stops past the limit");
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": {}}], "c": 2})), 4);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(depth(&parse(deep.as_bytes()).unwrap()), MAX_DEPTH);
        let deeper = format!("[{deep}]");
        assert!(parse(deeper.as_bytes()).is_err());
        std::mem::forget(v); // dropping deep values recurses
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let err = parse(br#"{"a":{"b":1,"b":2}}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key \"b\""), "{err}");
        assert!(parse(br#"{"a":1,"a":1}"#).is_err());
    }

    #[test]
    fn invalid_text_is_refused() {
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"{} {}",
            b"\"\\ud800\"",
            b"\xff",
            b"NaN",
            b"01",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+FB33 (one UTF-16 unit 0xFB33) sorts after U+1F602 (surrogates 0xD83D…)
        // although its code point is smaller.
        assert_eq!(
            canon("{\"\u{fb33}\":1,\"\u{1f602}\":2}"),
            "{\"\u{1f602}\":2,\"\u{fb33}\":1}"
        );
    }

    #[test]
    fn signable_rejects_floats_and_big_integers() {
        assert!(check_signable(&parse(b"{\"a\":[1,-9007199254740991]}").unwrap()).is_ok());
        let e = check_signable(&parse(b"{\"a\":[1,2.5]}").unwrap()).unwrap_err();
        assert!(
            matches!(e, JcsError::Float { ref path, .. } if path == "/a/1"),
            "{e}"
        );
        let e = check_signable(&parse(b"{\"x/y\":9007199254740992}").unwrap()).unwrap_err();
        assert!(
            matches!(e, JcsError::IntegerRange { ref path, .. } if path == "/x~1y"),
            "{e}"
        );
        assert!(check_signable(&parse(b"{\"a\":1.0}").unwrap()).is_err());
    }

    /// PROTOCOL.md 2: every JSON number is read as an IEEE-754 double; one
    /// beyond its range is refused (with the range named) wherever it is,
    /// one too small to represent reads as 0, and any integer literal that
    /// fits a double parses (a signed document then applies ±(2^53−1)).
    #[test]
    fn numbers_are_read_as_ieee_doubles() {
        for text in ["1e400", "-1e400", "[1,{\"unknown\":1e309}]"]
            .map(str::to_owned)
            .into_iter()
            .chain([format!("1{}", "0".repeat(309))])
        {
            let e = parse(text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains("IEEE-754 double range"), "{text}: {e}");
        }
        assert_eq!(
            canonicalize(b"1.7976931348623157e308").unwrap(),
            b"1.7976931348623157e+308"
        );
        assert_eq!(canonicalize(b"1e-400").unwrap(), b"0");
        assert_eq!(canonicalize(b"-0").unwrap(), b"0");
        let big = parse(b"{\"a\":123456789012345678901234567890}").unwrap();
        let e = check_signable(&big).unwrap_err();
        assert!(
            matches!(e, JcsError::IntegerRange { .. } | JcsError::Float { .. }),
            "{e}"
        );
    }

    #[test]
    fn depth_errors_name_the_limit() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = parse(deep.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("nested more than 127 levels"), "{e}");
    }
}
