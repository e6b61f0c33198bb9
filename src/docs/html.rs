//! The documentation page: one static HTML file, no scripts, no external resources — it reads
//! the same from a file, a web server or an air-gapped machine.
//!
//! Sections: the app's info; servers grouped by cluster (one row per environment); channels,
//! each with its cluster, servers, the functions that consume or produce it, and its message
//! with a table of the payload's fields (nested models expanded once, references followed into
//! the shared schemas) and the raw schema behind a `<details>`.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Direction, Docs, MessageDoc};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;\
padding:0 1rem;color:#1d2330}h1{margin-bottom:.2rem}.version{color:#667}table{border-collapse:\
collapse;width:100%;margin:.5rem 0 1rem}th,td{border:1px solid #d5d9e0;padding:.35rem .5rem;\
text-align:left;vertical-align:top}th{background:#eef1f6}.channel{border:1px solid #c7cdd8;\
border-radius:6px;padding:.5rem 1rem;margin:1rem 0}.cluster{display:inline-block;padding:0 .4rem;\
border-radius:4px;background:#dde7ff;font-size:.85rem}.op{font-weight:600}.consumes{color:#1a7f37}\
.produces{color:#9a3412}code,pre{background:#f5f6f8;border-radius:4px}pre{padding:.5rem;\
overflow:auto}";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

pub(super) fn render(docs: &Docs) -> String {
    let mut out = String::new();
    let info = &docs.info;
    let title = if info.title.is_empty() {
        "fastkafka app"
    } else {
        &info.title
    };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body><h1 id=\"title\">{}</h1>",
        escape(title),
        escape(title)
    );
    if !info.version.is_empty() {
        let _ = write!(
            out,
            "<div class=\"version\">version {}</div>",
            escape(&info.version)
        );
    }
    if !info.description.is_empty() {
        let _ = write!(out, "<p>{}</p>", escape(&info.description));
    }
    render_servers(&mut out, docs);
    render_channels(&mut out, docs);
    out.push_str("</body></html>\n");
    out
}

fn render_servers(out: &mut String, docs: &Docs) {
    out.push_str("<h2 id=\"servers\">Servers</h2>");
    let clusters = docs.servers.iter().map(|s| s.cluster).max().unwrap_or(0);
    for cluster in 1..=clusters {
        let _ = write!(
            out,
            "<h3 class=\"cluster-heading\" data-cluster=\"{cluster}\">Cluster {cluster}</h3>\
             <table class=\"servers\"><tr><th>server</th><th>environment</th><th>brokers</th>\
             <th>protocol</th><th>description</th></tr>"
        );
        for server in docs.servers.iter().filter(|s| s.cluster == cluster) {
            let _ = write!(
                out,
                "<tr class=\"server\" data-cluster=\"{cluster}\"><td>{}</td><td>{}</td>\
                 <td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&server.name),
                escape(&server.environment),
                escape(&server.url),
                escape(&server.protocol),
                escape(&server.description),
            );
        }
        out.push_str("</table>");
    }
}

fn render_channels(out: &mut String, docs: &Docs) {
    out.push_str("<h2 id=\"channels\">Channels</h2>");
    for channel in &docs.channels {
        let _ = write!(
            out,
            "<section class=\"channel\" data-topic=\"{}\" data-cluster=\"{}\"><h3>{} \
             <span class=\"cluster\">cluster {}</span></h3><div>servers: {}</div><ul>",
            escape(&channel.topic),
            channel.cluster,
            escape(&channel.topic),
            channel.cluster,
            escape(&channel.servers.join(", "))
        );
        for op in &channel.operations {
            let (class, verb) = match op.direction {
                Direction::Consumes => ("consumes", "consumed by"),
                Direction::Produces => ("produces", "produced by"),
            };
            let _ = write!(
                out,
                "<li class=\"operation {class}\"><span class=\"op {class}\">{verb}</span> \
                 <code class=\"function\">{}</code> — message <a href=\"#message-{}\">{}</a>",
                escape(&op.function),
                escape(&op.message),
                escape(&op.message)
            );
            if let Some(description) = &op.description {
                let _ = write!(
                    out,
                    "<div class=\"description\">{}</div>",
                    escape(description)
                );
            }
            out.push_str("</li>");
        }
        out.push_str("</ul></section>");
    }
    out.push_str("<h2 id=\"messages\">Messages</h2>");
    for (key, (message, payload)) in &docs.messages {
        render_message(out, docs, key, message, payload);
    }
}

fn render_message(out: &mut String, docs: &Docs, key: &str, message: &MessageDoc, payload: &Value) {
    let _ = write!(
        out,
        "<section class=\"message\" id=\"message-{}\"><h3>{}</h3><div>content type: \
         <code>{}</code>{}{}</div>",
        escape(key),
        escape(key),
        escape(&message.content_type),
        if message.batch {
            " — a list of them per call"
        } else {
            ""
        },
        if message.keyed { " — with a key" } else { "" },
    );
    if let Some(format) = &message.schema_format {
        let _ = write!(
            out,
            "<div>schema format: <code>{}</code></div>",
            escape(format)
        );
    } else {
        let schema = docs.schemas.get(&message.name).unwrap_or(payload);
        out.push_str(
            "<table class=\"schema\"><tr><th>field</th><th>type</th><th>required</th>\
             <th>description</th></tr>",
        );
        render_fields(out, docs, schema, "", 0);
        out.push_str("</table>");
    }
    let raw = serde_json::to_string_pretty(payload).unwrap_or_default();
    let _ = write!(
        out,
        "<details><summary>schema</summary><pre>{}</pre></details></section>",
        escape(&raw)
    );
}

fn resolve<'a>(docs: &'a Docs, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        .and_then(|name| docs.schemas.get(name))
        .unwrap_or(schema)
}

fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = schema.get(combinator).and_then(Value::as_array) {
            let names: Vec<String> = options.iter().map(type_of).collect();
            return names.join(" | ");
        }
    }
    match schema.get("type") {
        Some(Value::String(kind)) if kind == "array" => {
            let item = schema.get("items").map_or("any".to_owned(), type_of);
            format!("list of {item}")
        }
        Some(Value::String(kind)) => match schema.get("format").and_then(Value::as_str) {
            Some(format) => format!("{kind} ({format})"),
            None => kind.clone(),
        },
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_owned(),
    }
}

/// One row per property of `schema`; a nested model's properties follow, indented, once.
fn render_fields(out: &mut String, docs: &Docs, schema: &Value, prefix: &str, depth: usize) {
    let schema = resolve(docs, schema);
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, property) in properties {
        let path = format!("{prefix}{name}");
        let description = property
            .get("description")
            .or_else(|| resolve(docs, property).get("description"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut notes = escape(description);
        if let Some(examples) = property.get("examples") {
            let _ = write!(
                notes,
                " <em>examples: <code>{}</code></em>",
                escape(&examples.to_string())
            );
        }
        let _ = write!(
            out,
            "<tr class=\"field\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&path),
            escape(&type_of(property)),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            notes
        );
        if depth < 3 && property.get("$ref").is_some() {
            render_fields(out, docs, property, &format!("{path}."), depth + 1);
        }
    }
}
