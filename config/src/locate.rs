//! Finding keys in the text of a config file.
//!
//! This module owns the map between key paths as errors name them
//! (`services[1].selection.vnodes`, `dataplane.cores[2]`) and byte ranges of
//! the TOML text, built from `toml_edit`'s spans. It only reads the text it is
//! given; it knows nothing about the schema and never decides what is valid.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use crate::Location;

/// Every key, value and table of one document with its key path and span.
pub(crate) struct KeyIndex {
    entries: Vec<Entry>,
}

struct Entry {
    path: String,
    span: Range<usize>,
    /// The span covers the key's name rather than its value or table.
    is_key: bool,
}

impl KeyIndex {
    /// Indexes `text`; `None` when it is not valid TOML.
    pub(crate) fn new(text: &str) -> Option<KeyIndex> {
        let doc = ImDocument::parse(text).ok()?;
        let mut index = KeyIndex {
            entries: Vec::new(),
        };
        index.table(doc.as_table(), "");
        Some(index)
    }

    /// Where the value (or table) at `path` is written; the key's own name
    /// when only that is known (dotted keys).
    pub(crate) fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut matching = self.entries.iter().filter(|e| e.path == path);
        let first_key = matching.clone().find(|e| e.is_key);
        matching
            .find(|e| !e.is_key)
            .or(first_key)
            .map(|e| e.span.clone())
    }

    /// The key path of the narrowest key, value or table at `span`: one whose
    /// span is exactly `span`, else the smallest one containing its start.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        if let Some(exact) = self
            .entries
            .iter()
            .find(|e| e.span == *span && !e.path.is_empty())
        {
            return Some(&exact.path);
        }
        self.entries
            .iter()
            .filter(|e| e.span.start <= span.start && span.start < e.span.end)
            .min_by_key(|e| (e.span.len(), usize::MAX - e.path.len()))
            .map(|e| e.path.as_str())
    }

    fn push(&mut self, path: &str, span: Option<Range<usize>>, is_key: bool) {
        if let Some(span) = span {
            self.entries.push(Entry {
                path: path.to_owned(),
                span,
                is_key,
            });
        }
    }

    fn table(&mut self, table: &Table, path: &str) {
        self.push(path, table.span(), false);
        for (name, item) in table {
            let child = join(path, name);
            self.push(&child, table.key(name).and_then(toml_edit::Key::span), true);
            self.item(item, &child);
        }
    }

    fn item(&mut self, item: &Item, path: &str) {
        match item {
            Item::None => {}
            Item::Value(value) => self.value(value, path),
            Item::Table(table) => self.table(table, path),
            Item::ArrayOfTables(array) => {
                self.push(path, array.span(), false);
                for (i, table) in array.iter().enumerate() {
                    self.table(table, &format!("{path}[{i}]"));
                }
            }
        }
    }

    fn value(&mut self, value: &Value, path: &str) {
        self.push(path, value.span(), false);
        match value {
            Value::Array(array) => {
                for (i, element) in array.iter().enumerate() {
                    self.value(element, &format!("{path}[{i}]"));
                }
            }
            Value::InlineTable(table) => {
                for (name, element) in table {
                    let child = join(path, name);
                    self.push(&child, table.key(name).and_then(toml_edit::Key::span), true);
                    self.value(element, &child);
                }
            }
            _ => {}
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn location_at(text: &str, offset: usize) -> Option<Location> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[cluster]
vips = [\"198.18.0.100\", \"198.18.0.101\"]
members = [{ name = \"a\" }]

[[services]]
name = \"one\"

[[services]]
name = \"two\"
selection.vnodes = 0

[services.dispatch]
policy = \"rules\"
";

    fn text_at(path: &str) -> &'static str {
        let index = KeyIndex::new(TEXT).expect("valid TOML");
        let span = index
            .span_of(path)
            .unwrap_or_else(|| panic!("{path} not found"));
        &TEXT[span]
    }

    #[test]
    fn finds_values_tables_and_elements() {
        assert_eq!(text_at("cluster.vips[1]"), "\"198.18.0.101\"");
        assert_eq!(text_at("cluster.members[0].name"), "\"a\"");
        assert_eq!(text_at("services[1].name"), "\"two\"");
        assert_eq!(text_at("services[1].selection.vnodes"), "0");
        assert_eq!(text_at("services[1].dispatch.policy"), "\"rules\"");
        assert!(text_at("services[1].dispatch").starts_with("[services.dispatch]"));
        assert!(text_at("services[0]").starts_with("[[services]]\nname = \"one\""));
        let index = KeyIndex::new(TEXT).expect("valid TOML");
        assert_eq!(index.span_of("services[2]"), None);
        assert_eq!(index.span_of("dataplane"), None);
    }

    #[test]
    fn names_the_key_at_a_span() {
        let index = KeyIndex::new(TEXT).expect("valid TOML");
        let at = |needle: &str| {
            let start = TEXT.find(needle).expect("needle in text");
            index
                .path_at(&(start..start + needle.len()))
                .map(str::to_owned)
        };
        assert_eq!(at("\"two\"").as_deref(), Some("services[1].name"));
        assert_eq!(at("policy").as_deref(), Some("services[1].dispatch.policy"));
        assert_eq!(
            at("vnodes").as_deref(),
            Some("services[1].selection.vnodes")
        );
        assert_eq!(at("\"198.18.0.101\"").as_deref(), Some("cluster.vips[1]"));
    }

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let text = "a = 1\nb = \"é\" x";
        assert_eq!(location_at(text, 0), Some(Location { line: 1, column: 1 }));
        assert_eq!(location_at(text, 6), Some(Location { line: 2, column: 1 }));
        let x = text.find('x').expect("x in text");
        assert_eq!(location_at(text, x), Some(Location { line: 2, column: 9 }));
        assert_eq!(location_at(text, 100), None);
    }
}
