//! Lenient JSON reader for upstream HUSAI artifacts.
//!
//! Upstream wrote its JSON with Python's `json` module, which emits the non-standard tokens `NaN`, `Infinity` and
//! `-Infinity` for non-finite floats and reads them back. `serde_json` rejects them (and cannot hold non-finite
//! floats), so legacy artifacts are read with this small recursive-descent parser instead. It accepts exactly what
//! Python's `json.loads` accepts (RFC 8259 plus those three tokens, outside strings only) and produces a
//! [`LegacyValue`] that keeps the distinctions upstream's logic depends on:
//!
//! * integers and floats stay apart (`Int` vs `Float`), because Python prints `1` and `1.0` differently and the
//!   parity Markdown must match byte for byte;
//! * objects keep insertion order, and a duplicated key keeps its first position but takes the last value, as a
//!   Python `dict` does;
//! * Python's "is numeric" test (`isinstance(v, (int, float))`) is [`LegacyValue::as_python_number`]: it accepts
//!   booleans (a `bool` is an `int` in Python) and NaN. Strict callers use [`LegacyValue::as_f64`], which rejects
//!   booleans.
//!
//! Errors name the file, the 1-based line and column, and what was expected; an empty file gets its own error because
//! upstream's orchestration left 0-byte result files behind (FIXTURES.md §6).

use std::fmt;
use std::path::{Path, PathBuf};

/// A JSON value as Python's `json` module would have produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum LegacyValue {
    Null,
    Bool(bool),
    /// An integer literal (no fraction, no exponent) that fits in an `i64`. Larger integer literals become `Float`
    /// (Python would keep an exact big integer; no upstream artifact has one, and every consumer compares as f64).
    Int(i64),
    /// A float literal, including the non-finite `NaN`, `Infinity` and `-Infinity` tokens.
    Float(f64),
    String(String),
    Array(Vec<LegacyValue>),
    /// Key/value pairs in first-insertion order, keys unique (last value wins, as in a Python dict).
    Object(Vec<(String, LegacyValue)>),
}

impl LegacyValue {
    /// The member `key` of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&LegacyValue> {
        match self {
            LegacyValue::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a chain of object keys (`["metrics", "delta"]`). Array indices are not supported on purpose: no
    /// upstream extraction chain indexes into arrays.
    pub fn get_path(&self, keys: &[&str]) -> Option<&LegacyValue> {
        keys.iter().try_fold(self, |value, key| value.get(key))
    }

    /// RFC 6901 JSON Pointer lookup (`/a/0/b`, with `~0` and `~1` escapes). The empty pointer is the value itself.
    pub fn pointer(&self, pointer: &str) -> Option<&LegacyValue> {
        if pointer.is_empty() {
            return Some(self);
        }
        let rest = pointer.strip_prefix('/')?;
        rest.split('/').try_fold(self, |value, raw| {
            let token = raw.replace("~1", "/").replace("~0", "~");
            match value {
                LegacyValue::Object(_) => value.get(&token),
                LegacyValue::Array(items) => {
                    // RFC 6901: decimal index without leading zeros.
                    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
                        return None;
                    }
                    token.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            }
        })
    }

    /// Python's `isinstance(v, (int, float))` followed by `float(v)`: ints, floats (NaN and infinities included) and
    /// booleans (`true` → 1.0, `false` → 0.0). This is the upstream gate's notion of "numeric" (reference §1.2).
    pub fn as_python_number(&self) -> Option<f64> {
        match self {
            LegacyValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            LegacyValue::Int(i) => Some(*i as f64),
            LegacyValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A JSON number as f64 (ints and floats, non-finite included); booleans are *not* numbers here.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            LegacyValue::Int(i) => Some(*i as f64),
            LegacyValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            LegacyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            LegacyValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[LegacyValue]> {
        match self {
            LegacyValue::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, LegacyValue)]> {
        match self {
            LegacyValue::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, LegacyValue::Null)
    }

    /// Python truthiness (`bool(v)`): used where upstream wrote `a or b`. NaN is truthy in Python.
    pub fn is_truthy(&self) -> bool {
        match self {
            LegacyValue::Null => false,
            LegacyValue::Bool(b) => *b,
            LegacyValue::Int(i) => *i != 0,
            LegacyValue::Float(f) => *f != 0.0,
            LegacyValue::String(s) => !s.is_empty(),
            LegacyValue::Array(items) => !items.is_empty(),
            LegacyValue::Object(members) => !members.is_empty(),
        }
    }

    /// The Python type name, for error messages ("expected a number, found str").
    pub fn type_name(&self) -> &'static str {
        match self {
            LegacyValue::Null => "null",
            LegacyValue::Bool(_) => "bool",
            LegacyValue::Int(_) => "int",
            LegacyValue::Float(_) => "float",
            LegacyValue::String(_) => "str",
            LegacyValue::Array(_) => "list",
            LegacyValue::Object(_) => "dict",
        }
    }

    /// Converts to a standard JSON value for output we write ourselves. Non-finite floats become `null` (DESIGN.md:
    /// "JSON we write never contains NaN or Infinity"); callers that must say why use [`Self::non_finite_pointers`].
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            LegacyValue::Null => Value::Null,
            LegacyValue::Bool(b) => Value::Bool(*b),
            LegacyValue::Int(i) => Value::from(*i),
            LegacyValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            LegacyValue::String(s) => Value::String(s.clone()),
            LegacyValue::Array(items) => {
                Value::Array(items.iter().map(LegacyValue::to_json).collect())
            }
            LegacyValue::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// JSON Pointers of every non-finite float in the value, in document order.
    pub fn non_finite_pointers(&self) -> Vec<String> {
        fn walk(value: &LegacyValue, at: &mut String, out: &mut Vec<String>) {
            match value {
                LegacyValue::Float(f) if !f.is_finite() => out.push(at.clone()),
                LegacyValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let len = at.len();
                        at.push('/');
                        at.push_str(&i.to_string());
                        walk(item, at, out);
                        at.truncate(len);
                    }
                }
                LegacyValue::Object(members) => {
                    for (k, v) in members {
                        let len = at.len();
                        at.push('/');
                        at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                        walk(v, at, out);
                        at.truncate(len);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut String::new(), &mut out);
        out
    }
}

/// A syntax error at a 1-based line and column (columns count characters, as Python's messages do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SyntaxError {}

/// Why a legacy JSON file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LegacyJsonError {
    #[error("cannot read {}: {source}; check that the path exists and is a readable file", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is empty (0 bytes); upstream leaves empty result files behind when a run dies, re-run the producer or drop this input", path.display())]
    Empty { path: PathBuf },
    #[error("{} is not UTF-8 (invalid byte at offset {offset}); it is not a JSON text", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{} is not valid JSON at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl LegacyJsonError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LegacyJsonError::Io { path, .. }
            | LegacyJsonError::Empty { path }
            | LegacyJsonError::NotUtf8 { path, .. }
            | LegacyJsonError::Syntax { path, .. } => path,
        }
    }
}

/// Reads and parses one upstream JSON file.
pub fn read_file(path: &Path) -> Result<LegacyValue, LegacyJsonError> {
    let bytes = std::fs::read(path).map_err(|source| LegacyJsonError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_bytes(&bytes).map_err(|e| e.with_path(path))
}

/// Why bytes could not be parsed, before a path is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseBytesError {
    Empty,
    NotUtf8 { offset: usize },
    Syntax(SyntaxError),
}

impl ParseBytesError {
    pub fn with_path(self, path: &Path) -> LegacyJsonError {
        let path = path.to_path_buf();
        match self {
            ParseBytesError::Empty => LegacyJsonError::Empty { path },
            ParseBytesError::NotUtf8 { offset } => LegacyJsonError::NotUtf8 { path, offset },
            ParseBytesError::Syntax(SyntaxError {
                line,
                column,
                message,
            }) => LegacyJsonError::Syntax {
                path,
                line,
                column,
                message,
            },
        }
    }
}

/// Parses the bytes of a file: empty input and non-UTF-8 input get their own errors.
pub fn parse_bytes(bytes: &[u8]) -> Result<LegacyValue, ParseBytesError> {
    if bytes.is_empty() {
        return Err(ParseBytesError::Empty);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ParseBytesError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    parse_str(text).map_err(ParseBytesError::Syntax)
}

/// Parses a JSON text the way Python's `json.loads` does.
pub fn parse_str(text: &str) -> Result<LegacyValue, SyntaxError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    if text.starts_with('\u{feff}') {
        return Err(parser.error_at(
            0,
            "unexpected UTF-8 byte order mark; save the file without a BOM",
        ));
    }
    parser.skip_ws();
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != parser.bytes.len() {
        return Err(parser.error_at(parser.pos, "extra data after the JSON value"));
    }
    Ok(value)
}

/// Nesting limit: deeper input is rejected instead of overflowing the stack (Python raises RecursionError near 1000).
const MAX_DEPTH: usize = 512;

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error_at(&self, pos: usize, message: &str) -> SyntaxError {
        let before = &self.text[..pos.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        SyntaxError {
            line,
            column,
            message: message.to_string(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat_literal(&mut self, literal: &str) -> bool {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<LegacyValue, SyntaxError> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.error_at(self.pos, "expecting a value, found end of input"));
        };
        match b {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(LegacyValue::String),
            b'n' if self.eat_literal("null") => Ok(LegacyValue::Null),
            b't' if self.eat_literal("true") => Ok(LegacyValue::Bool(true)),
            b'f' if self.eat_literal("false") => Ok(LegacyValue::Bool(false)),
            b'N' if self.eat_literal("NaN") => Ok(LegacyValue::Float(f64::NAN)),
            b'I' if self.eat_literal("Infinity") => Ok(LegacyValue::Float(f64::INFINITY)),
            b'-' if self.eat_literal("-Infinity") => Ok(LegacyValue::Float(f64::NEG_INFINITY)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.error_at(self.pos, "expecting a value")),
        }
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, "nesting deeper than 512 levels"));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<LegacyValue, SyntaxError> {
        self.enter()?;
        self.pos += 1; // '{'
        let mut members: Vec<(String, LegacyValue)> = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(LegacyValue::Object(members));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error_at(
                    self.pos,
                    "expecting a property name enclosed in double quotes",
                ));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error_at(self.pos, "expecting ':' delimiter"));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(LegacyValue::Object(members));
                }
                _ => return Err(self.error_at(self.pos, "expecting ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self) -> Result<LegacyValue, SyntaxError> {
        self.enter()?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(LegacyValue::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(LegacyValue::Array(items));
                }
                _ => return Err(self.error_at(self.pos, "expecting ',' or ']' in an array")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let digits = self.bytes.get(self.pos..self.pos + 4);
        let parsed = digits
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u16::from_str_radix(d, 16).ok());
        match parsed {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.error_at(self.pos, "invalid \\uXXXX escape")),
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Positions only stop at ASCII bytes, so this slice is on char boundaries.
            out.push_str(&self.text[run_start..self.pos]);
            match self.bytes.get(self.pos) {
                None => return Err(self.error_at(start, "unterminated string starting here")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let escape_at = self.pos;
                    self.pos += 1;
                    let Some(&e) = self.bytes.get(self.pos) else {
                        return Err(self.error_at(start, "unterminated string starting here"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&first)
                                && self.bytes[self.pos..].starts_with(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    let code = 0x10000
                                        + ((u32::from(first) - 0xD800) << 10)
                                        + (u32::from(second) - 0xDC00);
                                    char::from_u32(code)
                                } else {
                                    self.pos = save;
                                    None
                                }
                            } else {
                                char::from_u32(u32::from(first))
                            };
                            // Python keeps a lone surrogate in its str; a Rust String cannot, so it becomes U+FFFD.
                            out.push(ch.unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(self.error_at(escape_at, "invalid \\escape")),
                    }
                }
                Some(_) => {
                    return Err(self.error_at(self.pos, "invalid control character in string"));
                }
            }
        }
    }

    fn number(&mut self) -> Result<LegacyValue, SyntaxError> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while p.bytes.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos - s
        };
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.error_at(start, "expecting a value")),
        }
        let mut is_float = false;
        // Python's number pattern only takes the fraction/exponent when digits follow; otherwise the number ends and
        // the next token is an error ("extra data" or a missing delimiter), which the caller reports.
        if self.bytes.get(self.pos) == Some(&b'.')
            && self.bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            digits(self);
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            let mut p = self.pos + 1;
            if let Some(b'+' | b'-') = self.bytes.get(p) {
                p += 1;
            }
            if self.bytes.get(p).is_some_and(u8::is_ascii_digit) {
                self.pos = p;
                digits(self);
                is_float = true;
            }
        }
        let literal = &self.text[start..self.pos];
        if !is_float && let Ok(i) = literal.parse::<i64>() {
            return Ok(LegacyValue::Int(i));
        }
        // Rust's f64 parser is correctly rounded, like Python's float(); overflow gives ±inf in both.
        literal
            .parse::<f64>()
            .map(LegacyValue::Float)
            .map_err(|_| self.error_at(start, "invalid number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_non_finite_tokens_outside_strings_only() {
        let v = parse_str(r#"{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN"}"#).unwrap();
        assert!(v.get("a").unwrap().as_f64().unwrap().is_nan());
        assert_eq!(v.pointer("/b/0").unwrap().as_f64(), Some(f64::INFINITY));
        assert_eq!(v.pointer("/b/1").unwrap().as_f64(), Some(f64::NEG_INFINITY));
        assert_eq!(v.get("c").unwrap().as_str(), Some("NaN"));
        assert_eq!(v.non_finite_pointers(), vec!["/a", "/b/0", "/b/1"]);
        assert_eq!(v.to_json()["a"], serde_json::Value::Null);
    }

    #[test]
    fn keeps_ints_and_floats_apart_and_bools_are_python_numbers() {
        let v = parse_str(r#"[1, 1.0, 1e2, true, false, null, -0]"#).unwrap();
        let items = v.as_array().unwrap();
        assert_eq!(items[0], LegacyValue::Int(1));
        assert_eq!(items[1], LegacyValue::Float(1.0));
        assert_eq!(items[2], LegacyValue::Float(100.0));
        assert_eq!(items[3].as_python_number(), Some(1.0));
        assert_eq!(items[3].as_f64(), None);
        assert_eq!(items[4].as_python_number(), Some(0.0));
        assert_eq!(items[5].as_python_number(), None);
        assert_eq!(items[6], LegacyValue::Int(0));
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let v = parse_str(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        let members = v.as_object().unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0], ("a".to_string(), LegacyValue::Int(3)));
    }

    #[test]
    fn string_escapes_and_surrogates() {
        let v = parse_str(r#""a\n\u00e9\ud83d\ude00\ud800x""#).unwrap();
        assert_eq!(v.as_str(), Some("a\né😀\u{fffd}x"));
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_str("{\n  \"a\": 1,\n  \"b\": nan\n}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 8));
        assert!(e.message.contains("expecting a value"), "{e}");
        let e = parse_str("[1, 2] x").unwrap_err();
        assert_eq!((e.line, e.column), (1, 8));
        assert!(e.message.contains("extra data"));
        let e = parse_str("{\"a\" 1}").unwrap_err();
        assert!(e.message.contains("':'"), "{e}");
        let e = parse_str("\"abc").unwrap_err();
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = parse_str("[01]").unwrap_err();
        assert!(e.message.contains("expecting ','"), "{e}");
        let e = parse_str("\"a\tb\"").unwrap_err();
        assert!(e.message.contains("control character"), "{e}");
        let e = parse_str("-NaN").unwrap_err();
        assert_eq!(e.column, 1);
        let e = parse_str("   ").unwrap_err();
        assert!(e.message.contains("end of input"), "{e}");
    }

    #[test]
    fn empty_and_non_utf8_bytes() {
        assert_eq!(parse_bytes(b""), Err(ParseBytesError::Empty));
        assert_eq!(
            parse_bytes(b"[\"\xff\"]"),
            Err(ParseBytesError::NotUtf8 { offset: 2 })
        );
        assert!(
            parse_str("\u{feff}{}")
                .unwrap_err()
                .message
                .contains("byte order mark")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = "[".repeat(100_000);
        assert!(parse_str(&text).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn pointer_and_truthiness() {
        let v = parse_str(r#"{"a/b": {"~k": [10, 20]}, "z": 0.0, "n": NaN}"#).unwrap();
        assert_eq!(v.pointer("/a~1b/~0k/1"), Some(&LegacyValue::Int(20)));
        assert_eq!(v.pointer("/a~1b/~0k/01"), None);
        assert!(std::ptr::eq(v.pointer("").unwrap(), &v));
        assert!(!v.get("z").unwrap().is_truthy());
        assert!(v.get("n").unwrap().is_truthy());
        assert_eq!(
            v.get_path(&["a/b", "~k"])
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn big_integers_and_overflowing_floats() {
        let v = parse_str("[123456789012345678901234567890, 1e400, -1e400]").unwrap();
        let items = v.as_array().unwrap();
        assert_eq!(items[0], LegacyValue::Float(1.2345678901234568e29));
        assert_eq!(items[1].as_f64(), Some(f64::INFINITY));
        assert_eq!(items[2].as_f64(), Some(f64::NEG_INFINITY));
    }
}
