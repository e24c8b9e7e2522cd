//! Claim tags in Markdown, so quoted numbers cannot drift from the evidence.
//!
//! Syntax: wrap the quoted figures in an HTML comment pair (invisible when rendered):
//!
//! ```markdown
//! The best conservative delta LCB was <!-- claim:assignment-v2-internal-lcb -->0.0544<!-- /claim --> ...
//! Release gate: mode <!-- claim:cycle4-gate -->`joint`, pass_all `False`<!-- /claim -->.
//! ```
//!
//! Inside a span every number and every backticked word is a quoted value. A number matches an evidence value when
//! it equals that value rounded to the digits shown (`0.0544` matches 0.05441876…, `6.18e-05` matches
//! 6.183199584486321e-05), or lies within the evidence's tolerance. A backticked word matches a string value exactly,
//! `True`/`true` and `False`/`false` match booleans, and `None`/`null` match null (so a write-up saying
//! `external_mode_used: None` while the artifact says `joint` is caught). Keep spans tight: every number inside one
//! is checked, including ones that are not meant as quotes.

/// A value quoted inside a claim span.
#[derive(Debug, Clone, PartialEq)]
pub enum Quoted {
    /// A number as written, its value, and half a unit of its last digit (its rounding resolution).
    Number {
        text: String,
        value: f64,
        half_unit: f64,
    },
    /// A backticked non-numeric word.
    Word(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuotedAt {
    pub line: usize,
    pub quoted: Quoted,
}

/// One `<!-- claim:ID -->` ... `<!-- /claim -->` span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub claim_id: String,
    /// 1-based line of the opening tag.
    pub line: usize,
    pub values: Vec<QuotedAt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub line: usize,
    pub message: String,
}

const OPEN: &str = "<!-- claim:";
const CLOSE: &str = "<!-- /claim -->";

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos].matches('\n').count() + 1
}

/// Finds every claim span in a Markdown text.
pub fn scan(text: &str) -> Result<Vec<Span>, TagError> {
    let mut spans = Vec::new();
    let mut pos = 0;
    loop {
        let next_open = text[pos..].find(OPEN).map(|i| i + pos);
        let next_close = text[pos..].find(CLOSE).map(|i| i + pos);
        let open = match (next_open, next_close) {
            (None, None) => return Ok(spans),
            (None, Some(c)) => {
                return Err(TagError {
                    line: line_of(text, c),
                    message: "`<!-- /claim -->` without an opening `<!-- claim:ID -->`".into(),
                });
            }
            (Some(o), Some(c)) if c < o => {
                return Err(TagError {
                    line: line_of(text, c),
                    message: "`<!-- /claim -->` without an opening `<!-- claim:ID -->`".into(),
                });
            }
            (Some(o), _) => o,
        };
        let id_start = open + OPEN.len();
        let Some(end_rel) = text[id_start..].find("-->") else {
            return Err(TagError {
                line: line_of(text, open),
                message: "unterminated claim tag; write `<!-- claim:ID -->`".into(),
            });
        };
        let id = text[id_start..id_start + end_rel].trim().to_string();
        let body_start = id_start + end_rel + 3;
        let Some(close_rel) = text[body_start..].find(CLOSE) else {
            return Err(TagError {
                line: line_of(text, open),
                message: format!(
                    "claim tag `{id}` is never closed; end the quoted span with `<!-- /claim -->`"
                ),
            });
        };
        let body_end = body_start + close_rel;
        if let Some(nested) = text[body_start..body_end].find(OPEN) {
            return Err(TagError {
                line: line_of(text, body_start + nested),
                message: format!(
                    "claim tag opened inside the span of `{id}`; claim spans cannot nest"
                ),
            });
        }
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(TagError {
                line: line_of(text, open),
                message: format!("`{id}` is not a claim id (letters, digits, '.', '_' or '-')"),
            });
        }
        let base_line = line_of(text, body_start);
        spans.push(Span {
            claim_id: id,
            line: line_of(text, open),
            values: quoted_values(&text[body_start..body_end], base_line),
        });
        pos = body_end + CLOSE.len();
    }
}

/// Parses a number literal as written in prose; returns its value and half a unit of its last shown digit.
pub fn parse_quoted_number(s: &str) -> Option<(f64, f64)> {
    let normalized = s.replace('\u{2212}', "-");
    let body = normalized.strip_prefix(['+', '-']).unwrap_or(&normalized);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let value: f64 = normalized.parse().ok()?;
    let decimals = frac_part.len() as i32;
    Some((value, 0.5 * 10f64.powi(exponent - decimals)))
}

fn quoted_values(body: &str, base_line: usize) -> Vec<QuotedAt> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let mut i = 0;
    let line_at = |byte: usize| base_line + body[..byte].matches('\n').count();
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '`' {
            let close = chars[i + 1..]
                .iter()
                .position(|&(_, ch)| ch == '`')
                .map(|p| p + i + 1);
            if let Some(close) = close {
                let inner_start = chars[i + 1].0;
                let inner = body[inner_start..chars[close].0].trim();
                let quoted = match parse_quoted_number(inner) {
                    Some((value, half_unit)) => Quoted::Number {
                        text: inner.to_string(),
                        value,
                        half_unit,
                    },
                    None => Quoted::Word(inner.to_string()),
                };
                if !inner.is_empty() {
                    out.push(QuotedAt {
                        line: line_at(at),
                        quoted,
                    });
                }
                i = close + 1;
                continue;
            }
        }
        let starts_number = c.is_ascii_digit()
            || (matches!(c, '-' | '+' | '\u{2212}')
                && chars.get(i + 1).is_some_and(|&(_, d)| d.is_ascii_digit()));
        let after_word = i > 0 && {
            let prev = chars[i - 1].1;
            prev.is_alphanumeric() || prev == '_' || prev == '.'
        };
        if starts_number && !after_word {
            let mut j = i + 1;
            while j < chars.len() {
                let ch = chars[j].1;
                let prev = chars[j - 1].1;
                let ok = ch.is_ascii_digit()
                    || (ch == '.' && chars.get(j + 1).is_some_and(|&(_, d)| d.is_ascii_digit()))
                    || (matches!(ch, 'e' | 'E')
                        && chars
                            .get(j + 1)
                            .is_some_and(|&(_, d)| d.is_ascii_digit() || d == '-' || d == '+'))
                    || (matches!(ch, '-' | '+') && matches!(prev, 'e' | 'E'));
                if !ok {
                    break;
                }
                j += 1;
            }
            let end = chars.get(j).map_or(body.len(), |&(b, _)| b);
            let followed_by_word = chars
                .get(j)
                .is_some_and(|&(_, ch)| ch.is_alphabetic() || ch == '_');
            let text = &body[at..end];
            if !followed_by_word && let Some((value, half_unit)) = parse_quoted_number(text) {
                out.push(QuotedAt {
                    line: line_at(at),
                    quoted: Quoted::Number {
                        text: text.to_string(),
                        value,
                        half_unit,
                    },
                });
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_numbers_and_backticked_words() {
        let md = "intro 12 <!-- claim:a-1 -->LCB 0.0544 and `joint`,\nEV drop 8.8e-04 (v2, −0.13)<!-- /claim --> 99";
        let spans = scan(md).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].claim_id, "a-1");
        let q: Vec<&Quoted> = spans[0].values.iter().map(|v| &v.quoted).collect();
        assert_eq!(q.len(), 4, "{q:?}");
        assert!(
            matches!(q[0], Quoted::Number { value, half_unit, .. } if *value == 0.0544 && (*half_unit - 0.00005).abs() < 1e-18)
        );
        assert_eq!(q[1], &Quoted::Word("joint".into()));
        assert!(
            matches!(q[2], Quoted::Number { value, half_unit, .. } if *value == 8.8e-4 && (*half_unit - 0.5e-5).abs() < 1e-18)
        );
        assert!(matches!(q[3], Quoted::Number { value, .. } if *value == -0.13));
        assert_eq!(spans[0].values[2].line, 2);
    }

    #[test]
    fn malformed_tags_are_errors_with_lines() {
        assert!(
            scan("a\n<!-- claim:x -->1.0")
                .unwrap_err()
                .message
                .contains("never closed")
        );
        assert_eq!(scan("a\n\n<!-- /claim -->").unwrap_err().line, 3);
        assert!(
            scan("<!-- claim:x -->1<!-- claim:y -->2<!-- /claim -->")
                .unwrap_err()
                .message
                .contains("nest")
        );
        assert!(
            scan("<!-- claim:bad id -->1<!-- /claim -->")
                .unwrap_err()
                .message
                .contains("not a claim id")
        );
        assert!(scan("no tags, 1.5").unwrap().is_empty());
    }

    #[test]
    fn number_resolution() {
        assert_eq!(parse_quoted_number("12"), Some((12.0, 0.5)));
        assert_eq!(parse_quoted_number("1e-05"), Some((1e-5, 0.5e-5)));
        assert_eq!(parse_quoted_number("abc"), None);
        assert_eq!(parse_quoted_number(".5"), None);
    }
}
