//! The manifest rules as data: models/manifest.schema.json, applied by a small interpreter.
//!
//! models/vss_models/manifest_schema.py is the same interpreter in Python. Both walk the schema
//! in the same order and word the first violation the same way; the shared cases in
//! models/tests/data/manifest_cases.json hold them to it. The keywords are a subset of JSON
//! Schema 2020-12 plus `x-vss-*` for what it cannot say (models/README.md, "The schema").

use once_cell::sync::Lazy;
use serde_json::Value;

/// models/manifest.schema.json, built in: the element needs no file beside the plugin.
pub const SCHEMA_TEXT: &str = include_str!("../../models/manifest.schema.json");

/// Values in messages are cut to this many characters.
const RENDER_LIMIT: usize = 80;

/// Keywords that only document; the interpreter skips them.
const ANNOTATIONS: [&str; 5] = ["$schema", "$id", "$comment", "title", "description"];

/// Keywords the interpreter applies. A schema using any other is refused, so that a rule
/// cannot be added that one side would silently skip.
const KEYWORDS: [&str; 19] = [
    "type",
    "const",
    "enum",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "minItems",
    "maxItems",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "allOf",
    "if",
    "then",
    "x-vss-problem",
    "x-vss-not-blank",
    "x-vss-equals-index",
    "x-vss-multiple-of",
];

/// The parsed schema, checked once.
pub static SCHEMA: Lazy<Value> = Lazy::new(|| {
    // Built in and covered by the tests: a failure here is a build of a broken tree.
    let schema: Value =
        serde_json::from_str(SCHEMA_TEXT).expect("models/manifest.schema.json is JSON");
    let problems = check_schema(&schema, "#");
    assert!(
        problems.is_empty(),
        "models/manifest.schema.json: {}",
        problems.join("; ")
    );
    schema
});

/// The first rule a manifest breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// As `classes[2].color`; empty for the whole manifest.
    pub field: String,
    /// The words after the field's name.
    pub problem: String,
    /// The schema keyword that failed (`required`, `type`, `x-vss-multiple-of`, ...).
    pub keyword: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The first rule `instance` breaks in [`SCHEMA`], or `None`.
pub fn validate(instance: &Value) -> Option<Violation> {
    validate_with(&SCHEMA, instance)
}

/// The first rule `instance` breaks in `schema` (checked with [`check_schema`]), or `None`.
pub fn validate_with(schema: &Value, instance: &Value) -> Option<Violation> {
    walk(schema, instance, &mut Vec::new(), instance, "")
}

fn walk<'a>(
    schema: &'a Value,
    value: &'a Value,
    path: &mut Vec<Step<'a>>,
    root: &Value,
    why: &str,
) -> Option<Violation> {
    if let Some(mut own) = own(schema, value, path, root) {
        if let Some(template) = schema.get("x-vss-problem").and_then(Value::as_str) {
            own.problem = template.replace("{value}", &render(value));
        }
        return Some(own);
    }
    if let Value::Object(object) = value {
        let props = schema.get("properties").and_then(Value::as_object);
        let required = strings(schema.get("required"));
        // Required fields in the schema's order, then the optional ones and the others by name.
        for &name in &required {
            let Some(field) = object.get(name) else {
                path.push(Step::Key(name));
                let field = field_name(path);
                path.pop();
                return Some(violation(field, format!("is missing{why}"), "required"));
            };
            if let Some(sub) = props.and_then(|p| p.get(name))
                && let Some(found) = descend(sub, field, path, Step::Key(name), root, why)
            {
                return Some(found);
            }
        }
        if let Some(props) = props {
            let mut optional: Vec<&String> = props
                .keys()
                .filter(|k| !required.contains(&k.as_str()))
                .collect();
            optional.sort();
            for name in optional {
                if let Some(field) = object.get(name)
                    && let Some(found) =
                        descend(&props[name], field, path, Step::Key(name), root, why)
                {
                    return Some(found);
                }
            }
        }
        if let Some(extra) = schema.get("additionalProperties") {
            let mut others: Vec<&String> = object
                .keys()
                .filter(|k| props.is_none_or(|p| !p.contains_key(*k)))
                .collect();
            others.sort();
            for name in others {
                if let Some(found) = descend(extra, &object[name], path, Step::Key(name), root, why)
                {
                    return Some(found);
                }
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            if let Some(found) = descend(sub, item, path, Step::Index(i), root, why) {
                return Some(found);
            }
        }
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let found = match (part.get("if"), part.get("then")) {
            (Some(test), Some(then)) => {
                if walk(test, value, &mut path.clone(), root, "").is_some() {
                    continue;
                }
                let Some((name, want)) = condition(test) else {
                    continue; // check_schema refuses other forms
                };
                let shown = match want {
                    Value::String(s) => format!("'{s}'"),
                    other => render(other),
                };
                walk(
                    then,
                    value,
                    path,
                    root,
                    &format!(" (required by {name} {shown})"),
                )
            }
            _ => walk(part, value, path, root, why),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn descend<'a>(
    schema: &'a Value,
    value: &'a Value,
    path: &mut Vec<Step<'a>>,
    step: Step<'a>,
    root: &Value,
    why: &str,
) -> Option<Violation> {
    path.push(step);
    let found = walk(schema, value, path, root, why);
    path.pop();
    found
}

/// The keywords that judge `value` itself, in a fixed order.
fn own(schema: &Value, value: &Value, path: &[Step], root: &Value) -> Option<Violation> {
    let here = || field_name(path);
    let got = || render(value);
    if let Some(kind) = schema.get("type").and_then(Value::as_str)
        && !is_type(kind, value)
    {
        let article = type_article(kind).unwrap_or(kind);
        return Some(violation(
            here(),
            format!("must be {article}, got {}", got()),
            "type",
        ));
    }
    if let Some(want) = schema.get("const")
        && !json_equal(value, want)
    {
        let problem = format!("must be {}, got {}", render(want), got());
        return Some(violation(here(), problem, "const"));
    }
    if let Some(choices) = schema.get("enum") {
        let allowed = choices.as_array().map(Vec::as_slice).unwrap_or_default();
        if !allowed.iter().any(|c| json_equal(value, c)) {
            let problem = format!("must be one of {}, got {}", render(choices), got());
            return Some(violation(here(), problem, "enum"));
        }
    }
    if let Some(v) = value.as_f64().filter(|_| value.is_number()) {
        let bound = |key: &str| schema.get(key).and_then(|b| Some((b.as_f64()?, render(b))));
        if let Some((_, shown)) = bound("minimum").filter(|(m, _)| v < *m) {
            let problem = format!("must be at least {shown}, got {}", got());
            return Some(violation(here(), problem, "minimum"));
        }
        if let Some((_, shown)) = bound("exclusiveMinimum").filter(|(m, _)| v <= *m) {
            let problem = format!("must be greater than {shown}, got {}", got());
            return Some(violation(here(), problem, "exclusiveMinimum"));
        }
        if let Some((_, shown)) = bound("maximum").filter(|(m, _)| v > *m) {
            let problem = format!("must be at most {shown}, got {}", got());
            return Some(violation(here(), problem, "maximum"));
        }
    }
    if let Some(n) = integer(value) {
        if let Some(ptr) = schema.get("x-vss-multiple-of").and_then(Value::as_str) {
            // A bad multiple is its own field's error.
            let multiple = root.pointer(ptr).and_then(integer).filter(|m| *m > 0);
            if let Some(m) = multiple.filter(|m| n % m != 0) {
                let name = field_name(&ptr.split('/').skip(1).map(Step::Key).collect::<Vec<_>>());
                let problem = format!("must be a multiple of {name} ({m}), got {}", got());
                return Some(violation(here(), problem, "x-vss-multiple-of"));
            }
        }
        if schema.get("x-vss-equals-index") == Some(&Value::Bool(true)) {
            let index = path.iter().rev().find_map(|s| match s {
                Step::Index(i) => Some(*i as i128),
                Step::Key(_) => None,
            });
            if let Some(i) = index.filter(|i| *i != n) {
                let problem = format!("must be {i} (its index in the list), got {}", got());
                return Some(violation(here(), problem, "x-vss-equals-index"));
            }
        }
    }
    if let Value::Array(items) = value {
        let count = |key: &str| schema.get(key).and_then(Value::as_u64);
        let (low, high) = (count("minItems"), count("maxItems"));
        let len = items.len() as u64;
        let short = low.is_some_and(|l| len < l);
        if short || high.is_some_and(|h| len > h) {
            let (need, n) = match (low, high) {
                (Some(l), Some(h)) if l == h => (format!("exactly {l}"), l),
                (Some(l), _) if short => (format!("at least {l}"), l),
                (_, h) => {
                    let h = h.unwrap_or_default();
                    (format!("at most {h}"), h)
                }
            };
            let noun = if n == 1 { "item" } else { "items" };
            let problem = format!("must have {need} {noun}, got {}", got());
            let keyword = if short { "minItems" } else { "maxItems" };
            return Some(violation(here(), problem, keyword));
        }
    }
    if let Value::String(s) = value
        && schema.get("x-vss-not-blank") == Some(&Value::Bool(true))
        && s.trim().is_empty()
    {
        return Some(violation(
            here(),
            "must not be empty".into(),
            "x-vss-not-blank",
        ));
    }
    None
}

fn violation(field: String, problem: String, keyword: &'static str) -> Violation {
    Violation {
        field,
        problem,
        keyword,
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn type_article(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "object" => "an object",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        _ => return None,
    })
}

/// JSON types; an integer is written without a fraction (8.0 is a number only: the manifest's
/// integer fields are read as `u32`).
fn is_type(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => integer(value).is_some(),
        "number" => value.is_number(),
        _ => false,
    }
}

fn integer(value: &Value) -> Option<i128> {
    let n = value.as_number()?;
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// JSON equality: 1 == 1.0, but true != 1.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => match (integer(a), integer(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// `(field, value)` of an `if` of the one supported form
/// `{"required": [F], "properties": {F: {"const": V}}}`.
fn condition(test: &Value) -> Option<(&str, &Value)> {
    let object = test.as_object()?;
    let props = object.get("properties")?.as_object()?;
    let (name, sub) = props.iter().next().filter(|_| props.len() == 1)?;
    let sub = sub.as_object().filter(|s| s.len() == 1)?;
    let extra = object.keys().any(|k| k != "properties" && k != "required");
    let required = object.get("required").map(|r| strings(Some(r)));
    if extra || required.is_some_and(|r| r != [name.as_str()]) {
        return None;
    }
    Some((name, sub.get("const")?))
}

/// What in `schema` the interpreter cannot apply (unknown keywords, wrong shapes); `where_`
/// names the place, as a JSON pointer fragment ("#/properties/name").
pub fn check_schema(schema: &Value, where_: &str) -> Vec<String> {
    let Some(object) = schema.as_object() else {
        return vec![format!("{where_}: a schema must be an object")];
    };
    let mut problems: Vec<String> = object
        .keys()
        .filter(|k| !ANNOTATIONS.contains(&k.as_str()) && !KEYWORDS.contains(&k.as_str()))
        .map(|k| format!("{where_}: unknown keyword '{k}'"))
        .collect();
    if let Some(kind) = object.get("type")
        && kind.as_str().and_then(type_article).is_none()
    {
        problems.push(format!("{where_}: unknown type {kind}"));
    }
    if let Some(props) = object.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            problems.extend(check_schema(sub, &format!("{where_}/properties/{name}")));
        }
    }
    for key in ["additionalProperties", "items"] {
        if let Some(sub) = object.get(key) {
            problems.extend(check_schema(sub, &format!("{where_}/{key}")));
        }
    }
    let parts = object.get("allOf").and_then(Value::as_array);
    for (i, part) in parts.into_iter().flatten().enumerate() {
        problems.extend(check_schema(part, &format!("{where_}/allOf/{i}")));
    }
    match (object.get("if"), object.get("then")) {
        (Some(test), Some(then)) => {
            if condition(test).is_none() {
                problems.push(format!(
                    "{where_}/if: must be {{'required': [F], 'properties': {{F: {{'const': V}}}}}}"
                ));
            }
            problems.extend(check_schema(then, &format!("{where_}/then")));
        }
        (None, None) => {}
        _ => problems.push(format!("{where_}: 'if' and 'then' go together")),
    }
    if object.get("required").is_some_and(|r| !r.is_array()) {
        problems.push(format!("{where_}/required: must be a list"));
    }
    if let Some(ptr) = object.get("x-vss-multiple-of")
        && !ptr.as_str().is_some_and(|p| p.starts_with('/'))
    {
        problems.push(format!(
            "{where_}/x-vss-multiple-of: must be a JSON pointer"
        ));
    }
    problems
}

/// `classes[2].color` from its steps.
fn field_name(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
        }
    }
    out
}

/// `value` as compact JSON with sorted keys (`", "` and `": "` between items, as Python's
/// `json.dumps`), cut to [`RENDER_LIMIT`] characters.
pub fn render(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push_str(": ");
                    write(item, out);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut text = String::new();
    write(value, &mut text);
    if text.chars().count() <= RENDER_LIMIT {
        text
    } else {
        let mut cut: String = text.chars().take(RENDER_LIMIT - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// The values of the schema's `properties.scheme.enum`.
#[cfg(test)]
pub fn scheme_names() -> Vec<&'static str> {
    strings(SCHEMA.pointer("/properties/scheme/enum"))
}

/// The methods a manifest of `scheme` must name (the schema's `allOf` entry for it).
#[cfg(test)]
pub fn required_methods(scheme: &str) -> Vec<&'static str> {
    let parts = SCHEMA.get("allOf").and_then(Value::as_array);
    for part in parts.into_iter().flatten() {
        let matches = part
            .get("if")
            .and_then(condition)
            .is_some_and(|(name, want)| name == "scheme" && want.as_str() == Some(scheme));
        if matches {
            return strings(part.pointer("/then/properties/methods/required"));
        }
    }
    Vec::new()
}

/// The schema's `properties.format_version.const`.
#[cfg(test)]
pub fn format_version() -> Option<u64> {
    SCHEMA
        .pointer("/properties/format_version/const")
        .and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schema_is_one_the_interpreter_applies() {
        assert!(check_schema(&SCHEMA, "#").is_empty());
        let mut schema = SCHEMA.clone();
        schema["properties"]["name"]["pattern"] = "^[a-z]".into();
        assert_eq!(
            check_schema(&schema, "#"),
            ["#/properties/name: unknown keyword 'pattern'"]
        );
        schema["allOf"][0]["if"] = json!({"properties": {"scheme": {"enum": ["image"]}}});
        assert_eq!(check_schema(&schema, "#").len(), 2);
    }

    #[test]
    fn values_render_as_python_writes_them() {
        let v = json!({"b": [1, 2.5, -3], "a": "x\"y", "c": null, "d": true});
        assert_eq!(
            render(&v),
            r#"{"a": "x\"y", "b": [1, 2.5, -3], "c": null, "d": true}"#
        );
        assert_eq!(render(&json!(8.0)), "8.0");
        let long = render(&json!({"names": ["x".repeat(200)]}));
        assert_eq!(long, format!("{{\"names\": [\"{}...", "x".repeat(65)));
        assert_eq!(long.chars().count(), RENDER_LIMIT);
    }

    #[test]
    fn first_violation_in_schema_order() {
        let schema = json!({
            "type": "object",
            "required": ["b", "a"],
            "properties": {"a": {"type": "string"}, "b": {"type": "integer", "minimum": 1}},
            "additionalProperties": {"type": "array", "maxItems": 1}
        });
        let check = |v: Value| validate_with(&schema, &v).map(|v| (v.field, v.problem));
        let v = check(json!({"a": 1, "b": 0})).unwrap();
        assert_eq!(v, ("b".into(), "must be at least 1, got 0".into()));
        let v = check(json!({"a": 1})).unwrap();
        assert_eq!(v, ("b".into(), "is missing".into()));
        let v = check(json!({"a": "", "b": 1, "z": [1], "y": [1, 2]})).unwrap();
        assert_eq!(
            v,
            ("y".into(), "must have at most 1 item, got [1, 2]".into())
        );
        assert_eq!(check(json!({"a": "", "b": 1, "z": []})), None);
    }
}
