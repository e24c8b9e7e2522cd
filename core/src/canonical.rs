//! Canonical JSON per RFC 8785 (JSON Canonicalization Scheme, JCS), and the config hash.
//!
//! * Objects: members sorted by their names compared as UTF-16 code units (RFC 8785 section
//!   3.2.3), no whitespace anywhere.
//! * Strings: only the escapes JSON requires: `\"`, `\\`, the short forms `\b \f \n \r \t`, and
//!   `\u00xx` with lowercase hex for the other control characters below U+0020. Everything else,
//!   including `/`, DEL and non-ASCII, is written as raw UTF-8.
//! * Numbers: JCS treats every number as an IEEE-754 double and serialises it the way
//!   ECMAScript's `Number.prototype.toString` does (shortest round-trip digits; plain notation
//!   for decimal exponents in [-6, 21), otherwise `d.ddde±n`; `-0` becomes `0`).
//!
//! **Integers.** serde_json keeps integers as exact `u64`/`i64`, but JCS reads every number as a
//! double. Beyond ±2^53 an integer may not be a double at all, and where it is, ECMAScript may
//! print it with different low digits (2^60 = 1152921504606846976 prints as
//! `1152921504606847000`), so the canonical text would denote another integer than the config
//! holds, and two configs differing only there would hash the same. We accept an integer exactly
//! when its own decimal text is what JCS prints for it (read as a double, printed per ECMAScript):
//! every integer in ±2^53, and beyond that only integers already in that printed form (such as
//! `10575728201040564000`, which is also what a large double canonicalises to, so canonical
//! output read back by serde_json canonicalises again). Any other integer is refused with
//! [`CanonicalError::UnsafeInteger`] naming its JSON pointer; a value like a 64-bit seed belongs in
//! a string. Non-integral numbers that serde_json holds as `f64` are formatted as doubles.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Nesting limit, so a hostile document built in memory cannot overflow the stack.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error(
        "number {value} at {pointer} is an integer that RFC 8785 canonical JSON cannot represent exactly (numbers are IEEE-754 doubles, exact for integers within ±2^53); store it as a string"
    )]
    UnsafeInteger { pointer: String, value: String },
    #[error(
        "number at {pointer} is not finite; canonical JSON has no NaN or Infinity, write null instead"
    )]
    NonFinite { pointer: String },
    #[error(
        "JSON at {pointer} is nested more than {MAX_DEPTH} levels deep; canonicalisation refuses it"
    )]
    TooDeep { pointer: String },
}

/// The RFC 8785 canonical form of `v`, as UTF-8 bytes.
pub fn to_canonical_vec(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    write_value(v, &mut out, &mut path)?;
    Ok(out)
}

/// The config hash: lowercase hex SHA-256 of the canonical bytes.
pub fn canonical_sha256_hex(v: &Value) -> Result<String, CanonicalError> {
    Ok(hex::encode(Sha256::digest(to_canonical_vec(v)?)))
}

/// One step of the JSON pointer to the value being written, kept only to name it in errors.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer(path: &[Seg<'_>]) -> String {
    if path.is_empty() {
        return "/ (the document root)".to_owned();
    }
    let mut p = String::new();
    for seg in path {
        p.push('/');
        match seg {
            // RFC 6901 escaping, so the pointer can be fed back to a JSON pointer tool.
            Seg::Key(k) => p.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i) => p.push_str(&i.to_string()),
        }
    }
    p
}

fn write_value<'a>(
    v: &'a Value,
    out: &mut Vec<u8>,
    path: &mut Vec<Seg<'a>>,
) -> Result<(), CanonicalError> {
    if path.len() > MAX_DEPTH {
        return Err(CanonicalError::TooDeep {
            pointer: pointer(path),
        });
    }
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out, path)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                path.push(Seg::Index(i));
                write_value(item, out, path)?;
                path.pop();
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                path.push(Seg::Key(k));
                write_value(item, out, path)?;
                path.pop();
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(
    n: &serde_json::Number,
    out: &mut Vec<u8>,
    path: &[Seg<'_>],
) -> Result<(), CanonicalError> {
    let integer = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => Some((u.to_string(), u as f64)),
        (None, Some(i)) => Some((i.to_string(), i as f64)),
        (None, None) => None,
    };
    if let Some((text, as_double)) = integer {
        // Within ±2^53 the two always agree; beyond, only integers already in printed form do.
        if format_double(as_double) != text {
            return Err(CanonicalError::UnsafeInteger {
                pointer: pointer(path),
                value: text,
            });
        }
        out.extend_from_slice(text.as_bytes());
    } else {
        let f = n.as_f64().ok_or_else(|| CanonicalError::NonFinite {
            pointer: pointer(path),
        })?;
        if !f.is_finite() {
            return Err(CanonicalError::NonFinite {
                pointer: pointer(path),
            });
        }
        out.extend_from_slice(format_double(f).as_bytes());
    }
    Ok(())
}

/// ECMAScript `Number.prototype.toString(x)` for finite `x` (ECMA-262, Number::toString, radix
/// 10). Rust's `{:e}` formatting yields the shortest digit string that round-trips (choosing the
/// closest such string), which is exactly the `s, k, n` triple ECMA-262 specifies; the rest is
/// the layout rule.
pub fn format_double(x: f64) -> String {
    if x == 0.0 {
        // Covers -0 too: ECMAScript prints both zeros as "0".
        return "0".to_owned();
    }
    if x < 0.0 {
        return format!("-{}", format_double(-x));
    }
    let sci = format!("{x:e}"); // e.g. "1.2345e-7", "5e-324", "1e21"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Rust never produces an exponent outside i32, but a parse failure must not panic.
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits = ties_to_even(x, digits, exp);
    let k = digits.len() as i32;
    // ECMA-262's n: the value is 0.digits × 10^n.
    let n = exp + 1;
    if k <= n && n <= 21 {
        let mut s = digits;
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
        s
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{sign}{}", e.abs())
        }
    }
}

/// ECMA-262 picks, among equally short digit strings that read back as `x`, the one closest to
/// `x`, and on an exact tie the even one. Rust's shortest formatting agrees except on that tie
/// (it rounds half up: 1424953923781206.25 gives "…206.3" where ECMAScript gives "…206.2"). A tie
/// means the exact decimal expansion of `x` continues with a single 5 right after the shortest
/// digits; then the even neighbour is used if it also reads back as `x`.
fn ties_to_even(x: f64, digits: String, exp: i32) -> String {
    if digits.as_bytes().last().is_none_or(|d| d % 2 == 0) {
        return digits;
    }
    // A double's exact decimal expansion has at most 767 significant digits, so 780 fractional
    // digits in scientific form print it exactly.
    let exact = format!("{x:.780e}");
    let Some((mantissa, exact_exp)) = exact.split_once('e') else {
        return digits;
    };
    if exact_exp.parse::<i32>() != Ok(exp) {
        return digits; // shortest form rounded up to the next power of ten: no tie possible
    }
    let exact_digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let k = digits.len();
    let tail = &exact_digits[k.min(exact_digits.len())..];
    if tail.first() != Some(&b'5') || tail[1..].iter().any(|&d| d != b'0') {
        return digits;
    }
    let lower = &exact_digits[..k];
    let other = if digits.as_bytes() == lower {
        match increment_decimal(lower) {
            Some(up) => up,
            None => return digits,
        }
    } else {
        lower.to_vec()
    };
    let Ok(other) = String::from_utf8(other) else {
        return digits;
    };
    let candidate = format!("{}.{}e{exp}", &other[..1], &other[1..]);
    if candidate.parse::<f64>() == Ok(x) {
        let trimmed = other.trim_end_matches('0');
        if trimmed.is_empty() {
            other
        } else {
            trimmed.to_owned()
        }
    } else {
        digits
    }
}

/// `digits + 1` as a decimal string of the same length; `None` if it would carry out (999 + 1).
fn increment_decimal(digits: &[u8]) -> Option<Vec<u8>> {
    let mut out = digits.to_vec();
    for d in out.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return Some(out);
        }
    }
    None
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        if short.is_none() && b >= 0x20 {
            continue;
        }
        // Bytes < 0x80 are whole characters in UTF-8, so `start..i` never splits one.
        out.extend_from_slice(&bytes[start..i]);
        match short {
            Some(esc) => out.extend_from_slice(esc),
            None => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
