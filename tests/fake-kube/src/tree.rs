//! JSON tree helpers for server-side apply: leaf paths, removal, deep merge.
//!
//! A "leaf" is any value that is not a non-empty JSON object: scalars,
//! `null`, empty objects and whole lists (lists are atomic here).

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A path of object keys from the root.
pub type FieldPath = Vec<String>;

/// The leaf paths of `v`.
pub fn leaf_paths(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    prefix.push(k.clone());
                    walk(c, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// One path is a prefix of the other (they name overlapping fields).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// The value at `path`, if present.
pub fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// Removes the field at `path` (no-op when absent), and every parent
/// object the removal left empty: what a real apply does when a manager
/// stops applying a field of an object only it set (`pendingSync:
/// {commandId}` goes entirely, not to `pendingSync: {}`).
pub fn remove_path(v: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Value::Object(m) = v else {
        return;
    };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove_path(child, rest);
        if child.as_object().is_some_and(|c| c.is_empty()) {
            m.remove(first);
        }
    }
}

/// Merges `src` into `target`: objects recursively, everything else
/// (lists included) replaced; `null` in `src` removes the field.
pub fn deep_merge(target: &mut Value, src: &Value) {
    match (target, src) {
        (Value::Object(t), Value::Object(s)) => {
            for (k, v) in s {
                if v.is_null() {
                    t.remove(k);
                } else if let (Some(tv @ Value::Object(_)), Value::Object(_)) = (t.get_mut(k), v) {
                    deep_merge(tv, v);
                } else {
                    t.insert(k.clone(), strip_nulls(v));
                }
            }
        }
        (t, s) => *t = strip_nulls(s),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// The leaf paths whose value differs between `old` and `new` (added,
/// removed or changed).
pub fn changed_leaves(old: &Value, new: &Value) -> BTreeSet<FieldPath> {
    fn walk(
        old: Option<&Value>,
        new: Option<&Value>,
        prefix: &mut FieldPath,
        out: &mut BTreeSet<FieldPath>,
    ) {
        match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) if !a.is_empty() && !b.is_empty() => {
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in keys {
                    prefix.push(k.clone());
                    walk(a.get(k), b.get(k), prefix, out);
                    prefix.pop();
                }
            }
            (a, b) if a == b => {}
            (a, b) => {
                for side in [a, b].into_iter().flatten() {
                    let leaves = leaf_paths(side);
                    if leaves.is_empty() && !prefix.is_empty() {
                        out.insert(prefix.clone());
                    }
                    for l in leaves {
                        let mut p = prefix.clone();
                        p.extend(l);
                        out.insert(p);
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Some(old), Some(new), &mut Vec::new(), &mut out);
    out
}
