//! Rendering of the viewer's tables: aligned text for people, CSV for spreadsheets.

use std::io::{self, Write};

/// One cell; numbers are right-aligned in text tables.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Left-aligned text.
    Text(String),
    /// A right-aligned integer.
    Num(i64),
    /// A right-aligned cost in millionths of a dollar: `$1.23` for people, `1.234567` in CSV,
    /// empty when unknown (no row of the group has a cost; unknown is not $0).
    Usd(Option<i64>),
}

impl Cell {
    fn render(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Num(n) => n.to_string(),
            Cell::Usd(micro) => crate::prices::usd_text(*micro).unwrap_or_default(),
        }
    }

    fn render_csv(&self) -> String {
        match self {
            Cell::Usd(micro) => micro
                .map(|m| (m as f64 / 1e6).to_string())
                .unwrap_or_default(),
            other => other.render(),
        }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<Option<String>> for Cell {
    fn from(s: Option<String>) -> Self {
        Cell::Text(s.unwrap_or_default())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Num(n)
    }
}

/// A table with a header row.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    /// Columns padded to their widest cell, numbers right-aligned, a dashed rule under the header.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let rendered: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(Cell::render).collect())
            .collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &rendered {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..self.headers.len())
            .map(|i| {
                self.rows
                    .first()
                    .is_some_and(|r| matches!(r[i], Cell::Num(_) | Cell::Usd(_)))
            })
            .collect();
        let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
            let mut text = String::new();
            for (i, cell) in cells.enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if numeric[i] {
                    text.extend(std::iter::repeat_n(' ', pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(out, &mut self.headers.iter().copied())?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(out, &mut rule.iter().map(String::as_str))?;
        for row in &rendered {
            line(out, &mut row.iter().map(String::as_str))?;
        }
        Ok(())
    }

    /// RFC 4180 CSV with a header row.
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        let header: Vec<String> = self.headers.iter().map(|h| csv_field(h)).collect();
        writeln!(out, "{}", header.join(","))?;
        for row in &self.rows {
            let fields: Vec<String> = row.iter().map(|c| csv_field(&c.render_csv())).collect();
            writeln!(out, "{}", fields.join(","))?;
        }
        Ok(())
    }
}

/// Quotes a CSV field when it holds a comma, quote, line break or edge whitespace.
pub fn csv_field(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `key  value` lines, keys padded to one width: for one record shown to a person.
pub fn write_pairs(out: &mut impl Write, pairs: &[(&str, String)]) -> io::Result<()> {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (key, value) in pairs {
        writeln!(out, "{key:<width$}  {value}")?;
    }
    Ok(())
}

/// Bytes as a person reads them: 512 B, 3.4 MiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("alice"), "alice");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn text_table_right_aligns_numbers() {
        let mut t = Table::new(&["name", "tokens"]);
        t.push(vec!["bob".into(), 5.into()]);
        t.push(vec!["alexandra".into(), 12345.into()]);
        let mut out = Vec::new();
        t.write_text(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "name       tokens");
        assert_eq!(lines[2], "bob             5");
        assert_eq!(lines[3], "alexandra   12345");
    }

    #[test]
    fn costs_are_cents_for_people_and_dollars_in_csv() {
        let mut t = Table::new(&["user", "cost_usd"]);
        t.push(vec!["a".into(), Cell::Usd(Some(1_234_567))]);
        t.push(vec!["b".into(), Cell::Usd(None)]);
        let mut text = Vec::new();
        t.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().nth(2), Some("a        $1.23"));
        assert_eq!(text.lines().nth(3), Some("b"));
        let mut csv = Vec::new();
        t.write_csv(&mut csv).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "user,cost_usd\na,1.234567\nb,\n"
        );
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
    }
}
