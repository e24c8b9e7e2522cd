//! RFC 8785 canonical JSON: the RFC's own examples, the number table of its Appendix B, error
//! cases, and properties over random documents.

use husai_core::canonical::{
    CanonicalError, canonical_sha256_hex, format_double, to_canonical_vec,
};
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

fn canon(v: &Value) -> String {
    String::from_utf8(to_canonical_vec(v).unwrap()).unwrap()
}

fn canon_text(text: &str) -> String {
    canon(&serde_json::from_str(text).unwrap())
}

/// RFC 8785 section 3.2.2 (the "sample" input and its canonical form).
#[test]
fn rfc8785_sample() {
    let input = r#"{
        "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
        "literals": [null, true, false]
    }"#;
    let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
                    \"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
    assert_eq!(canon_text(input), expected);
}

/// RFC 8785 section 3.2.3: names sort by UTF-16 code units, so U+1F600 (a surrogate pair
/// starting 0xD83D) sorts before U+FB33, unlike in code-point or UTF-8 order.
#[test]
fn rfc8785_sorting_example() {
    let input = r#"{
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\ud83d\ude00": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let v: Value = serde_json::from_str(input).unwrap();
    let out: Value = serde_json::from_str(&canon(&v)).unwrap();
    let order: Vec<&str> = out
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh"
        ]
    );
}

/// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
#[test]
fn rfc8785_appendix_b_numbers() {
    let table: &[(u64, &str)] = &[
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    for &(bits, expected) in table {
        let x = f64::from_bits(bits);
        assert_eq!(format_double(x), expected, "bits {bits:016x}");
        // And through a JSON value, the way configs reach it.
        let v = Value::Number(Number::from_f64(x).unwrap());
        assert_eq!(canon(&v), expected, "bits {bits:016x} as a Value");
    }
}

#[test]
fn ecmascript_layout_boundaries() {
    for (x, s) in [
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (1.5e-7, "1.5e-7"),
        (123.456, "123.456"),
        (-0.5, "-0.5"),
        (4.5, "4.5"),
        (1.0, "1"),
        (-0.0, "0"),
        (2.5e25, "2.5e+25"),
    ] {
        assert_eq!(format_double(x), s, "{x:e}");
    }
    assert_eq!(canon_text("[1.0, -0.0, 0.0, 100, -7]"), "[1,0,0,100,-7]");
}

#[test]
fn strings_use_only_the_required_escapes() {
    let v = json!("\u{0}\u{1}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f} \u{7f}/\u{2028}é😀\"\\");
    assert_eq!(
        canon(&v),
        "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \u{7f}/\u{2028}é😀\\\"\\\\\""
    );
}

#[test]
fn no_whitespace_and_nested_sorting() {
    let v = json!({"b": [ {"z": 1, "a": 2}, [] , {} ], "a": {"y": null, "x": true}});
    assert_eq!(
        canon(&v),
        r#"{"a":{"x":true,"y":null},"b":[{"a":2,"z":1},[],{}]}"#
    );
    // The helper the property tests rely on does see whitespace between tokens.
    assert!(whitespace_outside_strings(r#"{"a": 1}"#));
    assert!(!whitespace_outside_strings(r#"{"a":" : \" , "}"#));
}

#[test]
fn safe_integers_are_exact_and_unsafe_ones_are_refused() {
    let max = 1u64 << 53;
    assert_eq!(canon(&json!(max)), "9007199254740992");
    assert_eq!(canon(&json!(-(max as i64))), "-9007199254740992");
    assert_eq!(canon(&json!(u64::MAX >> 12)), (u64::MAX >> 12).to_string());

    let err = to_canonical_vec(&json!({"seeds": [1, max + 1]})).unwrap_err();
    assert_eq!(
        err,
        CanonicalError::UnsafeInteger {
            pointer: "/seeds/1".into(),
            value: "9007199254740993".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "number 9007199254740993 at /seeds/1 is an integer that RFC 8785 canonical JSON cannot \
         represent exactly (numbers are IEEE-754 doubles, exact for integers within ±2^53); store it as a string"
    );
    let err = to_canonical_vec(&json!({"a/b": {"~": i64::MIN}})).unwrap_err();
    assert!(err.to_string().contains("at /a~1b/~0 "), "{err}");
    // 2^60 is a double, but ECMAScript would print it as 1152921504606847000: refused too.
    assert!(to_canonical_vec(&json!(1u64 << 60)).is_err());
    // As a float it is formatted like ECMAScript does, and that text, read back as an integer,
    // is accepted because it is already in printed form.
    assert_eq!(canon_text("1152921504606846976.0"), "1152921504606847000");
    assert_eq!(canon(&json!(1152921504606847000u64)), "1152921504606847000");
    assert_eq!(
        canon(&json!(10575728201040564000u64)),
        "10575728201040564000"
    );
    assert!(to_canonical_vec(&json!(10575728201040564001u64)).is_err());
    assert!(to_canonical_vec(&json!(u64::MAX)).is_err());
}

#[test]
fn excessive_nesting_is_an_error_not_a_crash() {
    let mut v = json!(0);
    for _ in 0..300 {
        v = Value::Array(vec![v]);
    }
    let err = to_canonical_vec(&v).unwrap_err();
    assert!(matches!(err, CanonicalError::TooDeep { .. }));
    assert!(
        err.to_string().contains("nested more than 256 levels"),
        "{err}"
    );
}

#[test]
fn config_hash_is_sha256_of_the_canonical_bytes() {
    let a = json!({"lr": 0.001, "k": 32, "arch": "topk"});
    let b: Value = serde_json::from_str(r#"{ "arch" : "topk", "k" : 32.0, "lr" : 1e-3 }"#).unwrap();
    assert_eq!(
        canonical_sha256_hex(&a).unwrap(),
        canonical_sha256_hex(&b).unwrap()
    );
    assert_eq!(
        canonical_sha256_hex(&a).unwrap(),
        husai_core::digest::sha256_hex(br#"{"arch":"topk","k":32,"lr":0.001}"#)
    );
    assert_ne!(
        canonical_sha256_hex(&a).unwrap(),
        canonical_sha256_hex(&json!({"k": 33})).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// properties

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64 / 1000.0),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let max = 1i64 << 53;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-max..=max).prop_map(|i| json!(i)),
        finite_f64().prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x20\"\\\\a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Equality as JSON values: numbers compare as doubles (canonical form turns 1.0 into 1).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| same_value(p, q)))
        }
        _ => a == b,
    }
}

fn whitespace_outside_strings(text: &str) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (false, _, '"') => in_string = true,
            (false, _, ' ' | '\t' | '\n' | '\r') => return true,
            _ => {}
        }
    }
    false
}

/// The same document with every object's members in another order.
fn permute(v: &Value, rotate: usize) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| permute(i, rotate)).collect()),
        Value::Object(map) => {
            let mut members: Vec<(String, Value)> = map
                .iter()
                .map(|(k, v)| (k.clone(), permute(v, rotate)))
                .collect();
            members.reverse();
            if !members.is_empty() {
                let n = rotate % members.len();
                members.rotate_left(n);
            }
            Value::Object(members.into_iter().collect())
        }
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn canonicalisation_is_idempotent(v in json_value()) {
        let once = to_canonical_vec(&v).unwrap();
        let reparsed: Value = serde_json::from_slice(&once).unwrap();
        prop_assert_eq!(to_canonical_vec(&reparsed).unwrap(), once);
    }

    #[test]
    fn member_order_does_not_matter(v in json_value(), rotate in 0usize..7) {
        prop_assert_eq!(to_canonical_vec(&permute(&v, rotate)).unwrap(), to_canonical_vec(&v).unwrap());
    }

    #[test]
    fn output_is_json_denoting_the_same_value(v in json_value()) {
        let bytes = to_canonical_vec(&v).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let back: Value = serde_json::from_str(text).unwrap();
        prop_assert!(same_value(&v, &back), "{} vs {}", v, back);
        // No insignificant whitespace: none outside string literals.
        prop_assert!(!whitespace_outside_strings(text), "{}", text);
    }

    #[test]
    fn doubles_round_trip_exactly(x in finite_f64()) {
        let s = format_double(x);
        let back: f64 = s.parse().unwrap();
        prop_assert!(back == x, "{} printed as {} read back as {}", x, s, back);
        // Shortest: Rust's shortest round-trip form has the same number of significant digits.
        let digits = |t: &str| {
            let mantissa = t.split(['e', 'E']).next().unwrap_or("");
            mantissa.chars().filter(char::is_ascii_digit).collect::<String>()
                .trim_start_matches('0').trim_end_matches('0').len()
        };
        prop_assert_eq!(digits(&s), digits(&format!("{:e}", x.abs())));
    }
}
