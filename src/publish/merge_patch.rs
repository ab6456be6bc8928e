//! JSON Merge Patch (RFC 7396): the `/ws` protocol version 2 sends each
//! changed queue and agent as the patch from what the client holds to what
//! the server holds, so a delta carries only the fields that changed.
//!
//! Why Merge Patch and not JSON Patch (RFC 6902): a merge patch has the shape
//! of the document it changes, so a wall applies it with ten lines of
//! JavaScript and a person reads it in a browser's network tab. Its one
//! limit, that `null` cannot be a value (it means "remove"), is met by
//! keeping documents free of nulls: [`strip_nulls`] removes them, and a
//! reader treats a missing member as `null`. Arrays are replaced whole
//! (agent lists, queue lists are short).

use serde_json::{Map, Value};

/// The patch that turns `old` into `new`, or `None` when they are equal.
/// Both must be free of nulls ([`strip_nulls`]); then
/// `apply(old, diff(old, new)) == new`.
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut p = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = diff(ov, nv) {
                            p.insert(k.clone(), d);
                        }
                    }
                    None => {
                        p.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    p.insert(k.clone(), Value::Null);
                }
            }
            (!p.is_empty()).then_some(Value::Object(p))
        }
        // A non-object where an object was (or the reverse) cannot be merged
        // into: a patch that is not an object replaces the target. An object
        // replacing a non-object is sent whole.
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// Applies `patch` to `target` as RFC 7396 section 2 says.
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                apply(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Removes every `null` member of every object (array elements are kept:
/// a merge patch replaces arrays whole).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                strip_nulls(x);
            }
        }
        Value::Array(a) => {
            for x in a {
                strip_nulls(x);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The example of RFC 7396 section 3.
    #[test]
    fn rfc_example() {
        let mut target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        apply(&mut target, &patch);
        assert_eq!(
            target,
            json!({
                "title": "Hello!",
                "author": {"givenName": "John"},
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890"
            })
        );
    }

    #[test]
    fn a_queue_whose_caller_was_answered_sends_two_figures() {
        let old = json!({"queue": "hotline", "waiting": 1, "oldest_since": "2026-12-06T08:00:00Z",
            "agents": {"available": 1, "on_call": 0}, "sl_target": 0.8});
        let new = json!({"queue": "hotline", "waiting": 0,
            "agents": {"available": 0, "on_call": 1}, "sl_target": 0.8});
        let p = diff(&old, &new).unwrap();
        assert_eq!(
            p,
            json!({"waiting": 0, "oldest_since": null, "agents": {"available": 0, "on_call": 1}})
        );
        assert_eq!(diff(&new, &new), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever two documents: applying the diff of old to new gives new.
        #[test]
        fn applying_the_diff_gives_the_new_document(old in json_value(), new in json_value()) {
            let mut t = old.clone();
            match diff(&old, &new) {
                Some(p) => apply(&mut t, &p),
                None => prop_assert_eq!(&old, &new),
            }
            prop_assert_eq!(t, new);
        }
    }
}
