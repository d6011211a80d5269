//! CSV files with typed columns (RFC 4180 quoting); bad rows are errors naming file, line
//! and column.

use super::files::text_lines;
use crate::dataset::Dataset;
use crate::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// A column type of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColType {
    /// 64-bit integer.
    Int,
    /// 32-bit float.
    Float,
    /// Text.
    Str,
}

/// A parsed CSV value.
#[derive(Debug, Clone, PartialEq)]
pub enum CsvValue {
    /// Integer column.
    Int(i64),
    /// Float column.
    Float(f32),
    /// Text column.
    Str(String),
}

/// One CSV row with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    /// Line number in the file.
    pub line: usize,
    /// Values, one per column.
    pub values: Vec<CsvValue>,
}

impl crate::element::DataElement for CsvRow {}

/// Splits one CSV line (RFC 4180 quoting, `""` for a quote inside a quoted field).
pub fn split_csv_line(line: &str, delim: char) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(ch) = chars.next() {
        if quoted {
            if ch == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(ch);
            }
        } else if ch == '"' && cur.is_empty() && !was_quoted {
            quoted = true;
            was_quoted = true;
        } else if ch == delim {
            out.push(std::mem::take(&mut cur));
            was_quoted = false;
        } else if was_quoted {
            return Err(format!(
                "text after closing quote in field {}",
                out.len() + 1
            ));
        } else {
            cur.push(ch);
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// A CSV file with typed columns (`header`: skip the first line). Rows with a wrong field count
/// or an unparsable value are errors naming the file, line and column.
pub fn csv(
    path: impl AsRef<Path>,
    columns: Vec<ColType>,
    header: bool,
    delim: char,
) -> Dataset<CsvRow> {
    let path = path.as_ref().to_path_buf();
    let lines = text_lines(vec![path.clone()]);
    let columns = Arc::new(columns);
    let skip = if header { 1 } else { 0 };
    lines
        .enumerate()
        .skip(skip)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(move |(i, l)| -> Result<CsvRow> {
            let line = i as usize + 1;
            let fields =
                split_csv_line(&l, delim).map_err(|m| Error::parse(&path, Some(line), m))?;
            if fields.len() != columns.len() {
                return Err(Error::parse(
                    &path,
                    Some(line),
                    format!("expected {} fields, found {}", columns.len(), fields.len()),
                ));
            }
            let mut values = Vec::with_capacity(fields.len());
            for (k, (f, t)) in fields.iter().zip(columns.iter()).enumerate() {
                let s = f.trim();
                values.push(match t {
                    ColType::Int => CsvValue::Int(s.parse().map_err(|_| {
                        Error::parse(
                            &path,
                            Some(line),
                            format!("column {}: '{s}' is not an integer", k + 1),
                        )
                    })?),
                    ColType::Float => CsvValue::Float(s.parse().map_err(|_| {
                        Error::parse(
                            &path,
                            Some(line),
                            format!("column {}: '{s}' is not a number", k + 1),
                        )
                    })?),
                    ColType::Str => CsvValue::Str(f.clone()),
                });
            }
            Ok(CsvRow { line, values })
        })
}
