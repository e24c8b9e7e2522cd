//! Python-compatible text formatting, for byte-identical parity outputs.
//!
//! Upstream renders values with Python's `str()` (Markdown) and `json.dumps(..., indent=2)` (JSON). Both print floats
//! with `float.__repr__`: the shortest digit string that round-trips, in fixed notation when the decimal exponent is
//! in [-4, 16) and in scientific notation otherwise, with an explicit exponent sign and at least two exponent digits
//! (`6.183199584486321e-05`, `1e+16`). Rust's `{}` prints the same digits in a different layout (`6.183199584486321e-5`
//! is `{:e}`; `{}` never uses an exponent), so the layout is rebuilt here from Rust's shortest round-trip digits.

use super::json::LegacyValue;

/// `repr(x)` for a Python float.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits as `d[.ddd]e<exp>`, where exp is the exponent of the first digit.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("`{:e}` output always contains 'e'");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    // Python switches to exponent notation when decpt <= -4 or decpt > 16, with decpt = exp + 1.
    if !(-4..16).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{frac}e{exp_sign}{:02}", exp.abs());
    }
    let decpt = exp + 1;
    let n = digits.len() as i32;
    let body = if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (int_part, frac_part) = digits.split_at(decpt as usize);
        format!("{int_part}.{frac_part}")
    };
    format!("{sign}{body}")
}

/// Python's `str(v)` for the values upstream interpolates into Markdown: `True`/`False`/`None`, int and float repr,
/// strings verbatim; lists and dicts in Python's literal syntax.
pub fn py_str(value: &LegacyValue) -> String {
    match value {
        LegacyValue::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(v)`.
pub fn py_repr(value: &LegacyValue) -> String {
    match value {
        LegacyValue::Null => "None".to_string(),
        LegacyValue::Bool(true) => "True".to_string(),
        LegacyValue::Bool(false) => "False".to_string(),
        LegacyValue::Int(i) => i.to_string(),
        LegacyValue::Float(f) => float_repr(*f),
        LegacyValue::String(s) => string_repr(s),
        LegacyValue::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        LegacyValue::Object(members) => format!(
            "{{{}}}",
            members
                .iter()
                .map(|(k, v)| format!("{}: {}", string_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `repr(str)`: single quotes unless the text contains a single quote and no double quote.
fn string_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `json.dumps(value, indent=indent)` with Python's defaults (`ensure_ascii=True`, separators `", "`/`": "` reduced to
/// `","` at line ends by the indent, float repr) followed by nothing; callers add the trailing newline upstream wrote.
///
/// One intended difference: a non-finite float is written as `null`, not as Python's bare `NaN`/`Infinity` tokens
/// (DESIGN.md: JSON we write never contains them).
pub fn json_dumps(value: &LegacyValue, indent: usize) -> String {
    let mut out = String::new();
    write_json(value, indent, 0, &mut out);
    out
}

fn write_json(value: &LegacyValue, indent: usize, level: usize, out: &mut String) {
    match value {
        LegacyValue::Null => out.push_str("null"),
        LegacyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        LegacyValue::Int(i) => out.push_str(&i.to_string()),
        LegacyValue::Float(f) if f.is_finite() => out.push_str(&float_repr(*f)),
        LegacyValue::Float(_) => out.push_str("null"),
        LegacyValue::String(s) => json_string(s, out),
        LegacyValue::Array(items) if items.is_empty() => out.push_str("[]"),
        LegacyValue::Object(members) if members.is_empty() => out.push_str("{}"),
        LegacyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent, level + 1, out);
                write_json(item, indent, level + 1, out);
            }
            newline(indent, level, out);
            out.push(']');
        }
        LegacyValue::Object(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(indent, level + 1, out);
                json_string(k, out);
                out.push_str(": ");
                write_json(v, indent, level + 1, out);
            }
            newline(indent, level, out);
            out.push('}');
        }
    }
}

/// `json.dumps(value, sort_keys=sort_keys)` on one line, with Python's default separators (`", "` and `": "`).
/// Non-finite floats become `null`, as in [`json_dumps`].
pub fn json_dumps_inline(value: &LegacyValue, sort_keys: bool) -> String {
    let mut out = String::new();
    write_inline(value, sort_keys, &mut out);
    out
}

fn write_inline(value: &LegacyValue, sort_keys: bool, out: &mut String) {
    match value {
        LegacyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_inline(item, sort_keys, out);
            }
            out.push(']');
        }
        LegacyValue::Object(members) => {
            let mut ordered: Vec<&(String, LegacyValue)> = members.iter().collect();
            if sort_keys {
                ordered.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (k, v)) in ordered.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_string(k, out);
                out.push_str(": ");
                write_inline(v, sort_keys, out);
            }
            out.push('}');
        }
        scalar => write_json(scalar, 0, 0, out),
    }
}

fn newline(indent: usize, level: usize, out: &mut String) {
    out.push('\n');
    out.push_str(&" ".repeat(indent * level));
}

/// A JSON string with `ensure_ascii=True`: non-ASCII as `\uXXXX` (surrogate pairs above the BMP).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::json::parse_str;

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are what CPython 3.11 prints for repr(x).
        let cases: &[(f64, &str)] = &[
            (6.183199584486321e-05, "6.183199584486321e-05"),
            (0.0012296229600906594, "0.0012296229600906594"),
            (-40.467037470119465, "-40.467037470119465"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e22, "1e+22"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (100.0, "100.0"),
            (0.3, "0.3"),
            (-1e9, "-1000000000.0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(*x), *want, "{x:e}");
        }
    }

    #[test]
    fn py_str_of_scalars_and_containers() {
        let v = parse_str(r#"[true, false, null, 3, 3.0, "it's", {"a": [1e-7]}]"#).unwrap();
        assert_eq!(
            py_repr(&v),
            r#"[True, False, None, 3, 3.0, "it's", {'a': [1e-07]}]"#
        );
        assert_eq!(py_str(&LegacyValue::String("joint".into())), "joint");
    }

    #[test]
    fn json_dumps_inline_sorts_keys_like_python() {
        let v = parse_str(r#"{"p_value": 0.00016, "delta": 0.002886, "ok": true, "l": [1, null]}"#)
            .unwrap();
        assert_eq!(
            json_dumps_inline(&v, true),
            r#"{"delta": 0.002886, "l": [1, null], "ok": true, "p_value": 0.00016}"#
        );
    }

    #[test]
    fn json_dumps_matches_python_indent_2() {
        let v =
            parse_str(r#"{"a": {"b": [1, 2.5e-05, "é"], "c": {}, "d": []}, "e": NaN}"#).unwrap();
        assert_eq!(
            json_dumps(&v, 2),
            "{\n  \"a\": {\n    \"b\": [\n      1,\n      2.5e-05,\n      \"\\u00e9\"\n    ],\n    \"c\": {},\n    \"d\": []\n  },\n  \"e\": null\n}"
        );
    }
}
