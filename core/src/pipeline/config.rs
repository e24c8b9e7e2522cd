//! The effective config of a plugin run, built from the plugin's own JSON Schema (docs/trainer-contract.md §1).
//!
//! Nothing here knows any plugin's keys. The host starts from an empty object and overlays, in order, a config file
//! (`.toml` or `.json`), each `--set KEY=VALUE` (dotted keys reach into nested objects; the value is JSON when it
//! parses as JSON, else a string) and the dedicated flags (`--seed`). A value given replaces what was at its key.
//! Then every key the user did not give gets the schema's `default` (recursively, inside objects whose schema lists
//! `properties`), and the result is validated against the schema. A violation names the key as a JSON pointer, the
//! value given and what the schema allows, so the user can fix it without reading the schema.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Where the user's config values come from, in overlay order (file, then `--set`s in order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSources {
    /// A `.toml` or `.json` file holding one object.
    pub file: Option<PathBuf>,
    /// `KEY=VALUE` strings, applied in order.
    pub sets: Vec<String>,
}

/// One way the config breaks the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// JSON pointer of the key, e.g. `/lr` or `/eval/fraction`.
    pub pointer: String,
    /// The value given; `None` when the key is missing.
    pub given: Option<Value>,
    /// What the schema allows at that key, in words.
    pub allowed: String,
    /// The validator's own message.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.given {
            Some(v) => write!(
                f,
                "config key {} = {v}: {}; allowed: {}",
                self.pointer, self.detail, self.allowed
            ),
            None => write!(
                f,
                "config key {} is required but was not given; allowed: {}",
                self.pointer, self.allowed
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid {format}: {detail}", path.display())]
    Parse {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },
    #[error("config file {} must end in .toml or .json", path.display())]
    Extension { path: PathBuf },
    #[error("config file {} must hold one object (a table of keys), not {what}", path.display())]
    NotAnObject { path: PathBuf, what: &'static str },
    #[error("--set {arg:?}: {reason}")]
    BadSet { arg: String, reason: String },
    #[error(
        "the config for plugin {plugin} breaks its schema (see `husai-audit plugins show {plugin}`):\n  {}",
        violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Invalid {
        plugin: String,
        violations: Vec<Violation>,
    },
    #[error("plugin {plugin} publishes a config schema that does not compile: {detail}")]
    BadSchema { plugin: String, detail: String },
}

/// Reads a config file into an object: `.toml` or `.json` by extension.
pub fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let value: Value = match ext.as_deref() {
        Some("toml") => toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            format: "TOML",
            detail: e.to_string().trim_end().to_owned(),
        })?,
        Some("json") => serde_json::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            format: "JSON",
            detail: e.to_string(),
        })?,
        _ => {
            return Err(ConfigError::Extension {
                path: path.to_path_buf(),
            });
        }
    };
    match value {
        Value::Object(m) => Ok(m),
        other => Err(ConfigError::NotAnObject {
            path: path.to_path_buf(),
            what: kind_name(&other),
        }),
    }
}

/// Splits `KEY=VALUE` into the key's path and the value (JSON when it parses as JSON, else the string itself).
pub fn parse_set(arg: &str) -> Result<(Vec<String>, Value), ConfigError> {
    let bad = |reason: &str| ConfigError::BadSet {
        arg: arg.to_owned(),
        reason: reason.to_owned(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, for example --set lr=0.001"))?;
    let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(bad("the key is empty or has an empty part between dots"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((path, value))
}

/// Sets `path` in `config` to `value`, creating (or replacing non-object values with) objects along the way.
pub fn set_path(config: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = config;
    for p in parents {
        let slot = at
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        at = slot.as_object_mut().expect("just made an object");
    }
    at.insert(last.clone(), value);
}

/// The user's overlay: the file's keys, then each `--set` in order.
pub fn user_values(sources: &ConfigSources) -> Result<Map<String, Value>, ConfigError> {
    let mut out = match &sources.file {
        Some(f) => read_file(f)?,
        None => Map::new(),
    };
    for s in &sources.sets {
        let (path, value) = parse_set(s)?;
        set_path(&mut out, &path, value);
    }
    Ok(out)
}

/// Adds the schema's `default` for every key of `config` that is missing, recursively inside objects whose schema
/// lists `properties`. Values already present are kept.
pub fn fill_defaults(config: &mut Map<String, Value>, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, sub) in props {
        if !config.contains_key(key) {
            let nested = sub.get("properties").is_some();
            match sub.get("default") {
                Some(d) => {
                    config.insert(key.clone(), d.clone());
                }
                None if nested => {
                    let mut m = Map::new();
                    fill_defaults(&mut m, sub);
                    if !m.is_empty() {
                        config.insert(key.clone(), Value::Object(m));
                    }
                    continue;
                }
                None => continue,
            }
        }
        if let Some(Value::Object(inner)) = config.get_mut(key) {
            fill_defaults(inner, sub);
        }
    }
}

/// The schema's defaults alone (what `plugins show` reports and a fresh run starts from).
pub fn defaults(schema: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    fill_defaults(&mut m, schema);
    m
}

/// Validates `config` against `schema`, naming every violation.
pub fn validate(plugin: &str, schema: &Value, config: &Value) -> Result<(), ConfigError> {
    let validator = jsonschema::draft202012::new(schema).map_err(|e| ConfigError::BadSchema {
        plugin: plugin.to_owned(),
        detail: e.to_string(),
    })?;
    let mut violations: Vec<Violation> = validator
        .iter_errors(config)
        .flat_map(|e| violations_of(&e, schema, config))
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    violations.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    violations.dedup_by(|a, b| a.pointer == b.pointer && a.detail == b.detail);
    Err(ConfigError::Invalid {
        plugin: plugin.to_owned(),
        violations,
    })
}

fn violations_of(
    e: &jsonschema::ValidationError<'_>,
    schema: &Value,
    config: &Value,
) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as K;
    let at = e.instance_path().to_string();
    let schema_path = pointer_parts(&e.schema_path().to_string());
    // The schema of the object or value the error is about: the keyword's parent.
    let parent = schema_at(schema, &schema_path[..schema_path.len().saturating_sub(1)]);
    match e.kind() {
        K::AdditionalProperties { unexpected } => {
            let keys: Vec<String> = parent
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|k| {
                    let pointer = format!("{at}/{}", escape(k));
                    Violation {
                        given: config.pointer(&pointer).cloned(),
                        pointer,
                        allowed: format!("only the keys {}", keys.join(", ")),
                        detail: "unknown key".to_owned(),
                    }
                })
                .collect()
        }
        K::Required { property } => {
            let key = property
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| property.to_string());
            let sub = parent
                .and_then(|s| s.get("properties"))
                .and_then(|p| p.get(&key));
            vec![Violation {
                pointer: format!("{at}/{}", escape(&key)),
                given: None,
                allowed: sub.map(describe).unwrap_or_else(|| "any value".to_owned()),
                detail: "missing".to_owned(),
            }]
        }
        _ => vec![Violation {
            pointer: if at.is_empty() { "/".to_owned() } else { at },
            given: Some(e.instance().clone().into_owned()),
            allowed: parent
                .map(describe)
                .unwrap_or_else(|| "see the schema".to_owned()),
            detail: e.to_string(),
        }],
    }
}

/// Splits a JSON pointer into its unescaped parts.
fn pointer_parts(p: &str) -> Vec<String> {
    p.split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn schema_at<'a>(schema: &'a Value, parts: &[String]) -> Option<&'a Value> {
    let mut at = schema;
    for p in parts {
        at = match at {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// A subschema in words: its type, range or choices, e.g. `number > 0`, `integer 1..=64 or null`,
/// `one of "zeros", "mean"`.
pub fn describe(schema: &Value) -> String {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
        let c: Vec<String> = choices.iter().map(Value::to_string).collect();
        return format!("one of {}", c.join(", "));
    }
    if let Some(c) = schema.get("const") {
        return format!("exactly {c}");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let a: Vec<String> = alts.iter().map(describe).collect();
            return a.join(" or ");
        }
    }
    let types: Vec<String> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let range = range_text(schema);
    let mut parts = Vec::new();
    for t in &types {
        match t.as_str() {
            "integer" | "number" if !range.is_empty() => parts.push(format!("{t} {range}")),
            "object" => {
                let keys: Vec<&str> = schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                parts.push(if keys.is_empty() {
                    "object".to_owned()
                } else {
                    format!("object with keys {}", keys.join(", "))
                });
            }
            other => parts.push(other.to_owned()),
        }
    }
    if parts.is_empty() {
        if range.is_empty() {
            "any value".to_owned()
        } else {
            format!("number {range}")
        }
    } else {
        parts.join(" or ")
    }
}

/// `>= 1`, `> 0`, `0..=1`, `> 0, <= 1`, or empty.
pub fn range_text(schema: &Value) -> String {
    let num = |k: &str| {
        schema
            .get(k)
            .filter(|v| v.is_number())
            .map(Value::to_string)
    };
    let lower = num("minimum")
        .map(|v| (">=", v))
        .or(num("exclusiveMinimum").map(|v| (">", v)));
    let upper = num("maximum")
        .map(|v| ("<=", v))
        .or(num("exclusiveMaximum").map(|v| ("<", v)));
    match (lower, upper) {
        (Some((">=", lo)), Some(("<=", hi))) => format!("{lo}..={hi}"),
        (Some((lop, lo)), Some((hop, hi))) => format!("{lop} {lo}, {hop} {hi}"),
        (Some((op, v)), None) | (None, Some((op, v))) => format!("{op} {v}"),
        (None, None) => String::new(),
    }
}

/// One option of a plugin's config, for `husai-audit plugins show`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionDoc {
    /// Dotted key, e.g. `eval.fraction`.
    pub key: String,
    /// Type in words (`integer`, `number or null`, `one of ...`).
    pub kind: String,
    pub default: Option<Value>,
    /// Range in words (`>= 1`, `0..=1`), empty when none.
    pub range: String,
    pub description: String,
    pub required: bool,
}

/// Every option the schema lists, nested objects' keys dotted after their parent.
pub fn options(schema: &Value) -> Vec<OptionDoc> {
    let mut out = Vec::new();
    collect_options(schema, "", &mut out);
    out
}

fn collect_options(schema: &Value, prefix: &str, out: &mut Vec<OptionDoc>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, sub) in props {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let mut kind = describe(sub);
        let range = range_text(sub);
        // The range is its own column; keep the type short.
        if !range.is_empty() {
            kind = kind.replace(&format!(" {range}"), "");
        }
        out.push(OptionDoc {
            key: dotted.clone(),
            kind,
            default: sub.get("default").cloned(),
            range,
            description: sub
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            required: required.contains(&key.as_str()),
        });
        collect_options(sub, &dotted, out);
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["width", "seed"],
            "properties": {
                "width": {"type": "integer", "minimum": 1, "description": "w"},
                "seed": {"type": "integer", "minimum": 0},
                "rate": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
                "mode": {"enum": ["a", "b"], "default": "a"},
                "inner": {"type": "object", "properties": {"x": {"type": "integer", "default": 3}, "y": {"type": "integer"}}}
            }
        })
    }

    #[test]
    fn defaults_fill_missing_keys_only_and_recurse() {
        let mut c = Map::new();
        c.insert("rate".into(), json!(2.0));
        c.insert("inner".into(), json!({"y": 1}));
        fill_defaults(&mut c, &schema());
        assert_eq!(
            Value::Object(c),
            json!({"rate": 2.0, "inner": {"y": 1, "x": 3}, "mode": "a"})
        );
        assert_eq!(
            Value::Object(defaults(&schema())),
            json!({"rate": 0.5, "mode": "a", "inner": {"x": 3}})
        );
    }

    #[test]
    fn set_reads_json_or_a_string_and_reaches_into_objects() {
        assert_eq!(parse_set("a=1").unwrap(), (vec!["a".to_owned()], json!(1)));
        assert_eq!(
            parse_set("a.b=red").unwrap(),
            (vec!["a".to_owned(), "b".to_owned()], json!("red"))
        );
        assert_eq!(
            parse_set("e={\"data\":true}").unwrap().1,
            json!({"data": true})
        );
        assert!(
            parse_set("novalue")
                .unwrap_err()
                .to_string()
                .contains("expected KEY=VALUE")
        );
        assert!(
            parse_set("a..b=1")
                .unwrap_err()
                .to_string()
                .contains("empty part")
        );
        let mut m = Map::new();
        set_path(&mut m, &["a".into(), "b".into()], json!(1));
        set_path(&mut m, &["a".into(), "c".into()], json!(2));
        assert_eq!(Value::Object(m), json!({"a": {"b": 1, "c": 2}}));
    }

    #[test]
    fn violations_name_the_key_the_value_and_what_is_allowed() {
        let s = schema();
        let err = validate(
            "p",
            &s,
            &json!({"width": 0, "seed": 1, "rate": -1, "colour": "red", "mode": "z"}),
        )
        .unwrap_err();
        let ConfigError::Invalid { violations, .. } = &err else {
            panic!("{err}")
        };
        let by = |p: &str| {
            violations
                .iter()
                .find(|v| v.pointer == p)
                .unwrap_or_else(|| panic!("{p}: {err}"))
        };
        assert_eq!(by("/width").given, Some(json!(0)));
        assert_eq!(by("/width").allowed, "integer >= 1");
        assert_eq!(by("/rate").allowed, "number > 0");
        assert_eq!(by("/mode").allowed, "one of \"a\", \"b\"");
        assert_eq!(by("/colour").given, Some(json!("red")));
        assert!(
            by("/colour")
                .allowed
                .starts_with("only the keys width, seed"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("config key /rate = -1:"), "{msg}");
        let err = validate("p", &s, &json!({"width": 1}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config key /seed is required but was not given; allowed: integer >= 0"),
            "{err}"
        );
        let err = validate("p", &s, &json!({"width": "wide", "seed": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config key /width = \"wide\""), "{err}");
    }

    #[test]
    fn options_list_every_key_with_type_default_and_range() {
        let o = options(&schema());
        let rate = o.iter().find(|d| d.key == "rate").unwrap();
        assert_eq!(
            (
                rate.kind.as_str(),
                rate.range.as_str(),
                rate.default.clone()
            ),
            ("number", "> 0", Some(json!(0.5)))
        );
        assert!(
            o.iter()
                .any(|d| d.key == "inner.x" && d.default == Some(json!(3)))
        );
        assert!(o.iter().find(|d| d.key == "width").unwrap().required);
    }

    #[test]
    fn config_files_are_toml_or_json_objects() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("c.toml");
        std::fs::write(&t, "width = 4\n[inner]\nx = 2\n").unwrap();
        assert_eq!(
            Value::Object(read_file(&t).unwrap()),
            json!({"width": 4, "inner": {"x": 2}})
        );
        let j = dir.path().join("c.json");
        std::fs::write(&j, "[1]").unwrap();
        assert!(
            read_file(&j)
                .unwrap_err()
                .to_string()
                .contains("must hold one object")
        );
        std::fs::write(&t, "width = ").unwrap();
        assert!(
            read_file(&t)
                .unwrap_err()
                .to_string()
                .contains("is not valid TOML")
        );
        let y = dir.path().join("c.yaml");
        std::fs::write(&y, "").unwrap();
        assert!(
            read_file(&y)
                .unwrap_err()
                .to_string()
                .contains("must end in .toml or .json")
        );
    }
}
