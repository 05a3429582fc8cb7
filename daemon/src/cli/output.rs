//! How the admin client prints: aligned tables for people, `--json` for
//! scripts (one JSON document per command).

use serde_json::{Map, Value};

/// One printable item: named fields in display order.
pub type Fields = Vec<(&'static str, Value)>;

#[derive(Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints one item: `key: value` lines, or a JSON object.
    pub fn item(&self, fields: Fields) {
        if self.json {
            println!("{}", Value::Object(to_map(fields)));
            return;
        }
        let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in fields {
            println!("{key:<width$}  {}", cell(&value));
        }
    }

    /// Prints a list: a table of `columns`, or a JSON array of whole items.
    pub fn list(&self, items: Vec<Fields>, columns: &[&str]) {
        if self.json {
            let array = items
                .into_iter()
                .map(|f| Value::Object(to_map(f)))
                .collect();
            println!("{}", Value::Array(array));
            return;
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|fields| {
                columns
                    .iter()
                    .map(|column| {
                        fields
                            .iter()
                            .find(|(k, _)| k == column)
                            .map(|(_, v)| cell(v))
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(columns.iter().map(|c| c.to_ascii_uppercase()).collect());
        if rows.is_empty() {
            println!("(none)");
        }
        for row in rows {
            line(row);
        }
    }
}

/// One item as a JSON object, for output that nests items.
pub fn object(fields: Fields) -> Value {
    Value::Object(to_map(fields))
}

fn to_map(fields: Fields) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
