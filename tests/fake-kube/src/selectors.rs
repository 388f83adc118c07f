//! `labelSelector` and `fieldSelector` parsing and matching.
//!
//! Labels: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`.
//! Fields: `path=v`, `path==v`, `path!=v`, where `path` is any dotted path
//! into the object (`metadata.name`, `metadata.namespace`, `regarding.name`,
//! ...) compared as a string; a missing field is "". A real API server only
//! accepts a few fields per kind; the fake accepts every path.

use super::status::ApiError;
use serde_json::Value;

#[derive(Clone, Debug)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Clone, Debug)]
struct FieldReq {
    path: Vec<String>,
    value: String,
    negate: bool,
}

/// A parsed label and field selector pair (empty matches everything).
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(s: &str) -> Result<Vec<String>, ApiError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| ApiError::bad_request(format!("unable to parse requirement: {s:?}")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_label(term: &str) -> Result<LabelReq, ApiError> {
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelReq::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, rest)) = term.split_once(" notin ") {
        return Ok(LabelReq::NotIn(k.trim().into(), set_values(rest)?));
    }
    if let Some((k, rest)) = term.split_once(" in ") {
        return Ok(LabelReq::In(k.trim().into(), set_values(rest)?));
    }
    if let Some(k) = term.strip_prefix('!') {
        return Ok(LabelReq::NotExists(k.trim().into()));
    }
    if term.contains(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        return Err(ApiError::bad_request(format!(
            "unable to parse requirement: {term:?}"
        )));
    }
    Ok(LabelReq::Exists(term.into()))
}

fn parse_field(term: &str) -> Result<FieldReq, ApiError> {
    let (k, v, negate) = if let Some((k, v)) = term.split_once("!=") {
        (k, v, true)
    } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        (k, v, false)
    } else {
        return Err(ApiError::bad_request(format!(
            "invalid selector: {term:?}; can't understand '{term}'"
        )));
    };
    Ok(FieldReq {
        path: k.trim().split('.').map(String::from).collect(),
        value: v.trim().into(),
        negate,
    })
}

impl Selectors {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = split_terms(labels.unwrap_or(""))
            .into_iter()
            .map(parse_label)
            .collect::<Result<_, _>>()?;
        let fields = split_terms(fields.unwrap_or(""))
            .into_iter()
            .map(parse_field)
            .collect::<Result<_, _>>()?;
        Ok(Self { labels, fields })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
        });
        labels_ok
            && self.fields.iter().all(|f| {
                let mut cur = Some(obj);
                for seg in &f.path {
                    cur = cur.and_then(|c| c.get(seg));
                }
                let actual = match cur {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                (actual == f.value) != f.negate
            })
    }
}
