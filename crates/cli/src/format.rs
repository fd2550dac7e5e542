//! `--format`, as the docker CLI reads it, over a fixed set of fields.
//!
//! * `table` (the default of `ls`): aligned columns with a header row;
//! * `table TEMPLATE`: the template's fields as columns, headed by their names upper-cased;
//! * `json`: each item as one line of JSON;
//! * anything else: a template printed once per item.
//!
//! A template is text with `{{.Field}}` placeholders (a dotted path into the item, e.g.
//! `{{.TLSConfig.CAFile}}`), `{{json .Field}}` (the value as JSON) and `{{json .}}` (the whole
//! item); `\t` and `\n` in the text are a tab and a newline, as docker reads them. A list of
//! strings prints as its items joined by `, `; a missing value prints as `<no value>`, as a
//! Go template prints a missing map key. This is Go's `text/template` as far as docker's
//! formats use it, not the whole language: no pipelines, functions other than `json`,
//! conditionals or ranges.

use serde_json::Value;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field { path: Vec<String>, json: bool },
}

/// A parsed `--format` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Format {
    /// The default table.
    Table,
    /// A table of the template's fields.
    TableOf(Template),
    /// One JSON object per line.
    Json,
    /// The template, once per item.
    Lines(Template),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template(Vec<Piece>);

impl Format {
    /// Parse `--format`; the error is one line for the user.
    pub(crate) fn parse(text: &str) -> Result<Format, String> {
        let trimmed = text.trim();
        if trimmed == "table" {
            return Ok(Format::Table);
        }
        if trimmed == "json" {
            return Ok(Format::Json);
        }
        if let Some(rest) = trimmed.strip_prefix("table ") {
            return Ok(Format::TableOf(Template::parse(rest)?));
        }
        Ok(Format::Lines(Template::parse(text)?))
    }
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end =
                after.find("}}").ok_or_else(|| format!("template: unclosed action in {text:?}"))?;
            let action = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
            let (json, arg) = match action.strip_prefix("json") {
                Some(a) if a.starts_with(char::is_whitespace) => (true, a.trim()),
                _ => (false, action),
            };
            let path = match arg {
                "." => Vec::new(),
                a if a.starts_with('.') && a.len() > 1 => {
                    let path: Vec<String> = a[1..].split('.').map(str::to_owned).collect();
                    let ident = |p: &String| {
                        !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_')
                    };
                    if !path.iter().all(ident) {
                        return Err(format!("template: bad field {a:?}"));
                    }
                    path
                }
                other => {
                    return Err(format!(
                        "template: {other:?} is not supported (use {{{{.Field}}}} or {{{{json .Field}}}})"
                    ))
                }
            };
            pieces.push(Piece::Field { path, json });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    /// The first name of each field, in order (for table headers and checks).
    pub(crate) fn fields(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Piece::Field { path, .. } => Some(path.first().cloned().unwrap_or_default()),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// The template applied to `item`.
    pub(crate) fn render(&self, item: &Value) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, json } => {
                    let v = path.iter().try_fold(item, |v, k| v.get(k));
                    match (v, json) {
                        (None, _) => out.push_str("<no value>"),
                        (Some(v), true) => out.push_str(&v.to_string()),
                        (Some(v), false) => out.push_str(&plain(v)),
                    }
                }
            }
        }
        out
    }

    /// The cells of a `table TEMPLATE` row: the template split at its tabs.
    pub(crate) fn cells(&self, item: &Value) -> Vec<String> {
        self.render(item).split('\t').map(str::to_owned).collect()
    }

    /// The header row of `table TEMPLATE`: each field's name upper-cased, text kept.
    pub(crate) fn headers(&self) -> Vec<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, .. } if path.is_empty() => out.push('.'),
                Piece::Field { path, .. } => out.push_str(&path.join(".").to_uppercase()),
            }
        }
        out.split('\t').map(str::to_owned).collect()
    }
}

/// A value as text: strings bare, lists of strings joined by `, `, null empty.
pub(crate) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Rows aligned as docker's tables are (`text/tabwriter`, minimum width 10, padding 3),
/// trailing spaces trimmed.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            let w = rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max();
            (w.unwrap_or(0) + 3).max(10)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` cut to `max` characters with an ellipsis.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_fields_json_and_escapes() {
        let item = json!({"Name": "vol", "Implements": ["VolumeDriver", "x"], "TLSConfig": null,
                          "Nested": {"CAFile": "/ca"}});
        let t = Template::parse(r"{{.Name}}\t{{ .Implements }}|{{json .Implements}}").unwrap();
        assert_eq!(t.render(&item), "vol\tVolumeDriver, x|[\"VolumeDriver\",\"x\"]");
        let t = Template::parse("{{.Nested.CAFile}} {{.TLSConfig}}! {{.Missing}}").unwrap();
        assert_eq!(t.render(&item), "/ca ! <no value>");
        assert_eq!(Template::parse("{{json .}}").unwrap().render(&json!({"a":1})), r#"{"a":1}"#);
        assert_eq!(t.fields(), ["Nested", "TLSConfig", "Missing"]);
        for bad in ["{{.Name", "{{Name}}", "{{.Name | upper}}", "{{if .X}}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Format::parse("table").unwrap(), Format::Table);
        assert_eq!(Format::parse(" json ").unwrap(), Format::Json);
        let Format::TableOf(t) = Format::parse(r"table {{.Name}}\t{{.Status}}").unwrap() else {
            panic!("table template")
        };
        assert_eq!(t.headers(), ["NAME", "STATUS"]);
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let rows = vec![
            vec!["NAME".to_owned(), "STATUS".to_owned()],
            vec!["a-long-name".to_owned(), "ok".to_owned()],
        ];
        assert_eq!(table(&rows), "NAME          STATUS\na-long-name   ok\n");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
