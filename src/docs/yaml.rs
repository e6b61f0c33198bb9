//! [`to_yaml`]: a JSON value as block-style YAML, for `asyncapi.yml`.
//!
//! Strings are written as JSON strings, which are valid YAML double-quoted scalars, so no
//! value can be misread (`yes`, `1.0`, `null` stay strings) and nothing needs a YAML library.

use std::fmt::Write as _;

use serde_json::Value;

/// `value` as YAML (block mappings and sequences; empty ones and scalars inline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(object) if !object.is_empty() => write_mapping(&mut out, object, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn inline(value: &Value) -> String {
    match value {
        Value::Object(object) if object.is_empty() => "{}".to_owned(),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        // JSON's own rendering: quoted strings, plain numbers, true/false/null.
        other => other.to_string(),
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(object) => !object.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn key(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$' | '/'))
        && !name.starts_with(['-', '.', '/'])
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && name.parse::<f64>().is_err();
    if plain {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

fn write_mapping(out: &mut String, object: &serde_json::Map<String, Value>, indent: usize) {
    for (name, value) in object {
        let _ = write!(out, "{:indent$}{}:", "", key(name));
        if is_block(value) {
            out.push('\n');
            write_block(out, value, indent + 2);
        } else {
            let _ = writeln!(out, " {}", inline(value));
        }
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        let _ = write!(out, "{:indent$}-", "");
        if is_block(item) {
            out.push('\n');
            write_block(out, item, indent + 2);
        } else {
            let _ = writeln!(out, " {}", inline(item));
        }
    }
}

fn write_block(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(object) => write_mapping(out, object, indent),
        Value::Array(items) => write_sequence(out, items, indent),
        scalar => {
            let _ = writeln!(out, "{:indent$}{}", "", inline(scalar));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_become_block_yaml_with_quoted_strings() {
        let yaml = to_yaml(&json!({
            "asyncapi": "2.6.0",
            "servers": {"dev": {"url": "k:9092", "tags": ["a", 1, true]}},
            "$ref": "#/x",
            "yes": "no",
            "empty": {},
            "list": [{"a": null}, []],
        }));
        assert_eq!(
            yaml,
            "$ref: \"#/x\"\nasyncapi: \"2.6.0\"\nempty: {}\nlist:\n  -\n    a: null\n  - []\n\
             servers:\n  dev:\n    tags:\n      - \"a\"\n      - 1\n      - true\n    url: \
             \"k:9092\"\n\"yes\": \"no\"\n"
        );
    }
}
