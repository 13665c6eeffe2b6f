//! How client commands talk to the person at the terminal: compact tables or raw JSON on
//! stdout, notes and prompts on stderr, and the one confirmation step every destructive
//! command goes through (§9).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

/// Output mode, from `--json`.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `value` as pretty JSON when `--json` was given, else runs `human`.
    pub fn show(&self, value: &Value, human: impl FnOnce()) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human();
        }
        Ok(())
    }
}

/// A borderless table with the given column headers.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic).set_header(headers.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Prints a table, or `empty` when it has no rows.
pub fn print_table(t: &Table, empty: &str) {
    if t.row_count() == 0 {
        println!("{empty}");
    } else {
        println!("{}", t.trim_fmt());
    }
}

/// A two-column "field  value" table for one object.
pub fn print_fields(rows: &[(&str, String)]) {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    for (k, v) in rows {
        t.add_row(vec![(*k).to_owned(), v.clone()]);
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    println!("{}", t.trim_fmt());
}

/// A JSON value as a table cell: strings bare, `null` as `-`, lists comma-separated.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        Value::Object(o) if o.is_empty() => "-".into(),
        Value::Object(o) => o.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// An RFC 3339 timestamp to the minute (`2026-01-02 10:11`), `-` for none.
pub fn when(v: &Value) -> String {
    match v.as_str() {
        Some(s) if s.len() >= 16 => s[..16].replace('T', " "),
        _ => cell(v),
    }
}

/// Text cut to `max` characters with an ellipsis, on one line; `-` for none.
pub fn short(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        "-".into()
    } else if one_line.chars().count() <= max {
        one_line
    } else {
        one_line.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// Asks "Proceed? [y/N]" after `preview` has been shown, unless `yes`. Refuses outright when
/// stdin is not a terminal, so a script never destroys something by accident.
pub fn confirm(action: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {action} without confirmation: stdin is not a terminal; pass --yes to confirm");
    }
    eprint!("{action}? [y/N] ");
    std::io::stderr().flush()?;
    let answer = read_line()?.unwrap_or_default();
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") { Ok(()) } else { bail!("cancelled; nothing was changed") }
}

/// Prompts on stderr (only at a terminal) and reads one line from stdin; `None` at end of input.
pub fn prompt(question: &str) -> anyhow::Result<Option<String>> {
    if std::io::stdin().is_terminal() {
        eprint!("{question}");
        std::io::stderr().flush()?;
    }
    read_line()
}

fn read_line() -> anyhow::Result<Option<String>> {
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line)?;
    Ok((n > 0).then(|| line.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_compact() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a, b");
        assert_eq!(cell(&json!({"team": "ops"})), "team=ops");
        assert_eq!(cell(&json!(0.5)), "0.5");
        assert_eq!(when(&json!("2026-01-02T10:11:12.123Z")), "2026-01-02 10:11");
        assert_eq!(short("a  long\ntext", 6), "a lon…");
    }
}
