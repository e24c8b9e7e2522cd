//! Reading files that trust decisions rest on: bounded, regular files only, strict JSON.
//!
//! Everything husai reads to decide whether to trust something (the trust policy, envelopes and
//! the payloads they sign, `plugins.lock`, the claims registry, gate reports) goes through this
//! module, so that the same defences apply everywhere:
//!
//! * [`read_regular_file`] opens with `O_NOFOLLOW | O_NONBLOCK` (a symlink is refused, a FIFO
//!   does not block the open), checks the file type with `fstat` on the opened descriptor (a
//!   FIFO, socket or device is refused before a byte is read) and never reads more than the cap
//!   plus one byte, so `/dev/zero` or a file growing under us cannot exhaust memory.
//! * [`parse_json`] is strict JSON: a duplicate object key anywhere is an error (serde_json on
//!   its own keeps the last one, so `"revoked": {..}, "revoked": null` would read as not
//!   revoked), and serde_json's recursion limit (128) bounds nesting.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a file could not be read as a bounded regular file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("{} cannot be read: permission denied (check its mode and owner, and that every directory above it is searchable)", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("{} is a symbolic link; husai reads only regular files here and does not follow links", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is {what}, not a regular file; husai reads only regular files here", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{} is larger than the {cap}-byte limit for this kind of file ({size} bytes)", path.display())]
    TooLarge { path: PathBuf, size: u64, cap: u64 },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReadError {
    /// The file does not exist (as opposed to existing but being unreadable or refused).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }

    /// Access was denied by the operating system.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, ReadError::PermissionDenied { .. })
    }
}

/// What a file type is, in words, for messages.
pub fn describe_file_type(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_char_device() {
            return "a character device";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn open_error(path: &Path, source: std::io::Error) -> ReadError {
    let path = path.to_path_buf();
    #[cfg(unix)]
    if source.raw_os_error() == Some(libc::ELOOP) {
        return ReadError::Symlink { path };
    }
    match source.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound { path },
        std::io::ErrorKind::PermissionDenied => ReadError::PermissionDenied { path },
        _ => ReadError::Io { path, source },
    }
}

/// Open `path` for reading without following a final symlink and without blocking on a FIFO,
/// and check with `fstat` that it is a regular file.
pub fn open_regular_file(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(path).map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            what: describe_file_type(meta.file_type()),
        });
    }
    Ok((file, meta))
}

/// Read all of the regular file `path`, refusing anything above `cap` bytes (see the module
/// docs). The size is checked on the open descriptor and again while reading.
pub fn read_regular_file(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let (file, meta) = open_regular_file(path)?;
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            cap,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

/// Parse strict JSON: any duplicate object key is an error naming the key and its position.
pub fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// [`parse_json`] for text.
pub fn parse_json_str(text: &str) -> Result<Value, serde_json::Error> {
    parse_json(text.as_bytes())
}

/// Strict-parse `bytes` and decode them as `T`.
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_value(parse_json(bytes)?)
}

/// A `serde_json::Value` seed that refuses duplicate keys.
#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
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
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
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
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} (a JSON object may name each key once; the duplicate could hide the first value)"
                )));
            }
            let value = map.next_value_seed(StrictValue)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Lets `StrictValue` be used where a `Deserialize` type is needed.
#[derive(Debug)]
pub struct StrictJson(pub Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StrictValue.deserialize(d).map(StrictJson)
    }
}

/// Escape a string for a terminal: control characters (C0, DEL, C1) and the Unicode
/// bidirectional overrides become `\u{..}` escapes, so a file name cannot move the cursor, clear
/// a line or print a line of its own. Escaping twice changes nothing more.
pub fn escape_for_terminal(s: &str) -> std::borrow::Cow<'_, str> {
    let needs =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if needs(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A path for a message: UTF-8 shown as is, other bytes as `\xNN`, then escaped for a terminal.
pub fn display_path(path: &Path) -> String {
    escape_for_terminal(&path_text(path)).into_owned()
}

/// A path as text without losing information: valid UTF-8 as is, each byte of an invalid
/// sequence as `\xNN` (so two different non-UTF-8 names never print the same).
pub fn path_text(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt as _;
        let bytes = path.as_os_str().as_bytes();
        let mut out = String::with_capacity(bytes.len());
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_json(br#"{"a": 1, "b": {"c": 2}}"#).is_ok());
        let e = parse_json(br#"{"revoked": {"at": "x"}, "revoked": null}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"revoked\""), "{e}");
        let e = parse_json(br#"[{"k": [{"x": 1, "x": 1}]}]"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"x\""), "{e}");
        // The same key in sibling objects is fine.
        assert!(parse_json(br#"[{"x": 1}, {"x": 2}]"#).is_ok());
    }

    #[test]
    fn strict_parse_matches_serde_json_on_valid_input() {
        let text = br#"{"z": [1, -2, 3.5, 1e300, true, null, "s\u0000"], "a": {"n": 18446744073709551615}}"#;
        let strict = parse_json(text).unwrap();
        let plain: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(strict, plain);
        assert!(parse_json(b"{} x").is_err(), "trailing characters");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn terminal_escaping() {
        assert_eq!(escape_for_terminal("plain/name.txt"), "plain/name.txt");
        assert_eq!(
            escape_for_terminal("a\n\rok    all good\u{1b}[2K"),
            "a\\u{a}\\u{d}ok    all good\\u{1b}[2K"
        );
        let once = escape_for_terminal("a\u{1b}b").into_owned();
        assert_eq!(escape_for_terminal(&once), once);
        assert_eq!(escape_for_terminal("x\u{202e}y"), "x\\u{202e}y");
    }
}
