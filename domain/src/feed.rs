//! Feed files into indicator objects: the formats threat-intelligence feeds are published in
//! (csirtg CSV, URLhaus and Bambenek CSV, DShield's block list, DROP-style and one-per-line
//! lists, JSON and NDJSON), split into records that [`crate::Indicator::from_json`] validates.
//!
//! Parsing never validates indicators (that is the indicator model's job, with its own messages)
//! and never drops an item silently: comment lines (`#`, `;`, `//`) and blank lines are not items,
//! every other line becomes a record or a [`FeedError`] with its line number.
//!
//! [`FeedFormat::Auto`] looks at the text, in this order:
//! 1. `[` first: a JSON array of objects; `{` first: one JSON object, or NDJSON if the whole text
//!    is not one object;
//! 2. leading comments that name Bambenek Consulting: their headerless
//!    `indicator,description,date,url` CSV;
//! 3. the last non-empty leading comment is a CSV header with an `indicator` (or `url`) column,
//!    as csirtg.io (`# id,indicator,itype,...`) and URLhaus (`# id,dateadded,url,...`) write it;
//! 4. the first line is such a header, or DShield's tab-separated `Start End Netblock ...`;
//! 5. otherwise one indicator a line: the first token, split on whitespace, `;`, `#` or `,`
//!    (only on whitespace when it is a URL, whose query and fragment may contain the others).
//!
//! Column names map to indicator fields where the feed's meaning is clear: `url` is the
//! indicator when there is no `indicator` column, URLhaus's `dateadded`/`threat` are
//! `firsttime`/`description`, DShield's `Start`/`Netblock` make the CIDR and its
//! `Attacks`/`Name`/`Country`/`email` are `count`/`description`/`cc`/`contact`. Other columns are
//! kept under their own (lowercased) names; empty cells are left out.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// How to read a feed file (`sluice publish --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// Decide from the text (see the module documentation).
    Auto,
    /// A JSON array of objects, or one object.
    Json,
    /// One JSON object a line.
    Ndjson,
    /// CSV with a header (commented or not), or a known headerless layout; without either, the
    /// first column is the indicator.
    Csv,
    /// One indicator a line, the first token.
    Lines,
}

impl FeedFormat {
    /// Every format.
    pub const ALL: [FeedFormat; 5] = [
        FeedFormat::Auto,
        FeedFormat::Json,
        FeedFormat::Ndjson,
        FeedFormat::Csv,
        FeedFormat::Lines,
    ];

    /// The `--format` value.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Auto => "auto",
            FeedFormat::Json => "json",
            FeedFormat::Ndjson => "ndjson",
            FeedFormat::Csv => "csv",
            FeedFormat::Lines => "lines",
        }
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--format` value that names no known format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feed format `{0}`: expected auto, json, ndjson, csv or lines")]
pub struct UnknownFeedFormat(pub String);

impl FromStr for FeedFormat {
    type Err = UnknownFeedFormat;

    /// Case-insensitive: `auto`, `json`, `ndjson`, `csv`, `lines`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        FeedFormat::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownFeedFormat(text.to_owned()))
    }
}

/// One record of a feed file, not yet validated: a JSON object with at least `indicator`, plus what the format gives (csirtg CSV columns, description, tags, lasttime ...).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRecord {
    /// 1-based line of the source where the record starts.
    pub line: usize,
    /// The fields the record gives, named as the indicator model names them.
    pub object: Map<String, Value>,
}

/// A line that should have been a record but could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct FeedError {
    /// 1-based line of the source.
    pub line: usize,
    /// Why the line could not be read.
    pub reason: String,
}

impl FeedError {
    fn new(line: usize, reason: impl Into<String>) -> FeedError {
        FeedError {
            line,
            reason: reason.into(),
        }
    }
}

/// Splits a feed into records. Comments (#, ;, //) and blank lines are skipped silently (they are not items); every other line yields Ok(record) or Err(FeedError).
pub fn parse_feed(text: &str, format: FeedFormat) -> Vec<Result<FeedRecord, FeedError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        FeedFormat::Json => parse_json(text),
        FeedFormat::Ndjson => parse_ndjson(text),
        FeedFormat::Csv => parse_csv(
            text,
            detect_layout(text).unwrap_or_else(|| Layout::first_column(text)),
        ),
        FeedFormat::Lines => parse_lines(text),
        FeedFormat::Auto => {
            let start = text.trim_start();
            if start.starts_with('[') {
                parse_json(text)
            } else if start.starts_with('{') {
                match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(_)) => parse_json(text),
                    _ => parse_ndjson(text),
                }
            } else if let Some(layout) = detect_layout(text) {
                parse_csv(text, layout)
            } else {
                parse_lines(text)
            }
        }
    }
}

/// Lines that are not items: blank, or a comment in any of the styles feeds use.
fn is_comment_or_blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with("//")
}

/// The text of a comment line without its marker (`## a,b` → `a,b`).
fn comment_text(line: &str) -> &str {
    line.trim().trim_start_matches(['#', ';', '/']).trim()
}

/// The lines that are items, with their 1-based numbers.
fn item_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !is_comment_or_blank(line))
}

// ---------------------------------------------------------------------------------------------
// JSON and NDJSON

/// A JSON array of objects (each element read on its own, so one bad element does not lose the
/// rest) or a single object.
fn parse_json(text: &str) -> Vec<Result<FeedRecord, FeedError>> {
    let start = text.len() - text.trim_start().len();
    if !text[start..].starts_with('[') {
        let line = line_of(text, start);
        return vec![serde_json::from_str::<Value>(text)
            .map_err(|error| json_error(text, 0, &error))
            .and_then(|value| json_record(line, value))];
    }
    let (elements, unclosed) = split_array(text, start);
    let mut records: Vec<Result<FeedRecord, FeedError>> = elements
        .into_iter()
        .map(|(offset, element)| {
            let line = line_of(text, offset);
            serde_json::from_str::<Value>(element)
                .map_err(|error| json_error(text, offset, &error))
                .and_then(|value| json_record(line, value))
        })
        .collect();
    if let Some(offset) = unclosed {
        records.push(Err(FeedError::new(
            line_of(text, offset),
            "the JSON array is not closed with `]`",
        )));
    }
    records
}

/// One JSON object a line.
fn parse_ndjson(text: &str) -> Vec<Result<FeedRecord, FeedError>> {
    item_lines(text)
        .map(|(line, content)| {
            serde_json::from_str::<Value>(content)
                .map_err(|error| {
                    FeedError::new(
                        line,
                        format!("is not valid JSON: {}", without_position(&error)),
                    )
                })
                .and_then(|value| json_record(line, value))
        })
        .collect()
}

/// Finds the top-level elements of the array opening at `open` by scanning brackets and strings:
/// (byte offset, text) of each, and where the text ended if the array is not closed. Structural
/// characters are ASCII and never occur inside a UTF-8 sequence, so scanning bytes is safe.
/// Anything after the closing `]` is reported as an element, so that it is not silently ignored.
fn split_array(text: &str, open: usize) -> (Vec<(usize, &str)>, Option<usize>) {
    let bytes = text.as_bytes();
    let mut elements = Vec::new();
    let mut element_start: Option<usize> = None;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut index = open + 1;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match byte {
                b',' | b']' if depth == 0 => {
                    if let Some(start) = element_start.take() {
                        elements.push((start, &text[start..index]));
                    }
                    if byte == b']' {
                        let rest = &text[index + 1..];
                        let trailing = rest.trim_start();
                        if !trailing.is_empty() {
                            let offset = text.len() - trailing.len();
                            elements.push((offset, trailing));
                        }
                        return (elements, None);
                    }
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => {
                    element_start.get_or_insert(index);
                    match byte {
                        b'"' => in_string = true,
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
            }
        }
        index += 1;
    }
    if let Some(start) = element_start {
        elements.push((start, &text[start..]));
    }
    (elements, Some(text.len()))
}

/// A feed object as a record: phishtank-style `url` becomes the `indicator` when there is none.
fn json_record(line: usize, value: Value) -> Result<FeedRecord, FeedError> {
    let mut object = match value {
        Value::Object(object) => object,
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                _ => "an array",
            };
            return Err(FeedError::new(
                line,
                format!("expected a JSON object, found {kind}"),
            ));
        }
    };
    if !object.contains_key("indicator") {
        match object.remove("url") {
            Some(url) => {
                object.insert("indicator".into(), url);
            }
            None => {
                return Err(FeedError::new(
                    line,
                    "the object has no `indicator` (or `url`) field",
                ))
            }
        }
    }
    Ok(FeedRecord { line, object })
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// A serde_json error inside the element at `offset`, with the line counted in the whole text.
fn json_error(text: &str, offset: usize, error: &serde_json::Error) -> FeedError {
    let line = line_of(text, offset) + error.line().saturating_sub(1);
    FeedError::new(
        line,
        format!("is not valid JSON: {}", without_position(error)),
    )
}

/// serde_json's message without its " at line L column C" (relative to the element, so misleading).
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message,
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Where one CSV column goes.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Field(String),
    Ignore,
    /// DShield: the first address of the netblock.
    NetblockStart,
    /// DShield: the prefix length of the netblock.
    NetblockPrefix,
}

#[derive(Debug, Clone, PartialEq)]
struct Layout {
    delimiter: char,
    columns: Vec<Column>,
    /// The line holding the header, when it is not a comment (it is not an item).
    header_line: Option<usize>,
    /// Whether cells beyond the named columns are an error (false when the columns are a guess).
    strict_width: bool,
}

impl Layout {
    /// Headerless Bambenek Consulting C&C feeds (csirtg-smrt names the columns the same way).
    fn bambenek() -> Layout {
        let columns = ["indicator", "description", "lasttime", "altid"];
        Layout {
            delimiter: ',',
            columns: columns
                .iter()
                .map(|name| Column::Field((*name).to_owned()))
                .collect(),
            header_line: None,
            strict_width: true,
        }
    }

    /// Explicit `--format csv` with no header to go by: the first column is the indicator.
    fn first_column(text: &str) -> Layout {
        let first = item_lines(text).next().map_or("", |(_, line)| line);
        let delimiter = if first.contains('\t') && !first.contains(',') {
            '\t'
        } else {
            ','
        };
        Layout {
            delimiter,
            columns: vec![Column::Field("indicator".into())],
            header_line: None,
            strict_width: false,
        }
    }

    /// The layout `header` describes, if it names where the indicator is.
    fn from_header(header: &str, header_line: Option<usize>) -> Option<Layout> {
        let delimiter = if header.contains('\t') { '\t' } else { ',' };
        let names: Vec<String> = split_fields(header, delimiter)
            .ok()?
            .iter()
            .map(|name| name.trim().to_lowercase())
            .collect();
        let has = |wanted: &str| names.iter().any(|name| name == wanted);
        let dshield = has("start") && has("netblock");
        let url_is_indicator = !has("indicator");
        let columns: Vec<Column> = names
            .iter()
            .map(|name| match name.as_str() {
                "" => Column::Ignore,
                "url" if url_is_indicator => Column::Field("indicator".into()),
                // URLhaus
                "dateadded" => Column::Field("firsttime".into()),
                "threat" => Column::Field("description".into()),
                // DShield block list
                "start" if dshield => Column::NetblockStart,
                "netblock" if dshield => Column::NetblockPrefix,
                "end" if dshield => Column::Ignore,
                "attacks" if dshield => Column::Field("count".into()),
                "name" if dshield => Column::Field("description".into()),
                "country" if dshield => Column::Field("cc".into()),
                "email" if dshield => Column::Field("contact".into()),
                other => Column::Field(other.to_owned()),
            })
            .collect();
        let names_indicator = columns.contains(&Column::Field("indicator".into()));
        (names_indicator || dshield).then_some(Layout {
            delimiter,
            columns,
            header_line,
            strict_width: true,
        })
    }
}

/// Steps 2–4 of the module documentation: a CSV layout the text announces, if any.
fn detect_layout(text: &str) -> Option<Layout> {
    let mut leading_comments = Vec::new();
    let mut first_item = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if is_comment_or_blank(line) {
            leading_comments.push(comment_text(line));
        } else {
            first_item = Some((index + 1, line));
            break;
        }
    }
    if leading_comments
        .iter()
        .any(|comment| comment.to_ascii_lowercase().contains("bambenek"))
    {
        return Some(Layout::bambenek());
    }
    if let Some(header) = leading_comments
        .iter()
        .rev()
        .find(|comment| !comment.is_empty())
    {
        if let Some(layout) = Layout::from_header(header, None) {
            return Some(layout);
        }
    }
    let (line, header) = first_item?;
    Layout::from_header(header, Some(line))
}

fn parse_csv(text: &str, layout: Layout) -> Vec<Result<FeedRecord, FeedError>> {
    item_lines(text)
        .filter(|(line, _)| Some(*line) != layout.header_line)
        .map(|(line, content)| csv_record(line, content, &layout))
        .collect()
}

fn csv_record(line: usize, content: &str, layout: &Layout) -> Result<FeedRecord, FeedError> {
    let cells =
        split_fields(content, layout.delimiter).map_err(|reason| FeedError::new(line, reason))?;
    if layout.strict_width && cells.len() > layout.columns.len() {
        let surplus = &cells[layout.columns.len()..];
        if surplus.iter().any(|cell| !cell.trim().is_empty()) {
            return Err(FeedError::new(
                line,
                format!(
                    "has {} fields but the header names {} columns",
                    cells.len(),
                    layout.columns.len()
                ),
            ));
        }
    }
    let mut object = Map::new();
    let (mut start, mut prefix) = (None, None);
    for (column, cell) in layout.columns.iter().zip(&cells) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        match column {
            Column::Field(name) => {
                object.insert(name.clone(), Value::from(cell));
            }
            Column::Ignore => {}
            Column::NetblockStart => start = Some(cell),
            Column::NetblockPrefix => prefix = Some(cell),
        }
    }
    if let (Some(start), Some(prefix)) = (start, prefix) {
        object.insert("indicator".into(), Value::from(format!("{start}/{prefix}")));
    }
    if !object.contains_key("indicator") {
        return Err(FeedError::new(
            line,
            "no indicator in this line: its indicator column is empty",
        ));
    }
    Ok(FeedRecord { line, object })
}

/// Splits one CSV line (RFC 4180 quoting: `"a, b"`, `"say ""hi"""`). Records do not span lines:
/// no feed of this kind writes line breaks inside a cell, and a stray quote must not swallow the
/// rest of the file.
fn split_fields(line: &str, delimiter: char) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == delimiter {
            fields.push(std::mem::take(&mut field));
        } else if c == '"' && field.trim().is_empty() {
            field.clear();
            in_quotes = true;
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err("a quoted field is not closed on this line".into());
    }
    fields.push(field);
    Ok(fields)
}

// ---------------------------------------------------------------------------------------------
// One indicator a line

fn parse_lines(text: &str) -> Vec<Result<FeedRecord, FeedError>> {
    item_lines(text)
        .map(|(line, content)| match first_token(content) {
            Some(token) => {
                let mut object = Map::new();
                object.insert("indicator".into(), Value::from(token));
                Ok(FeedRecord { line, object })
            }
            None => Err(FeedError::new(line, "no indicator on this line")),
        })
        .collect()
}

/// The first token of a list line: `1.10.16.0/20 ; SBL256894` → `1.10.16.0/20`,
/// `114.143.191.19#3#2#Scanning Host` → `114.143.191.19`.
fn first_token(line: &str) -> Option<&str> {
    let first_word = line.split_whitespace().next()?;
    if first_word.contains("://") {
        return Some(first_word);
    }
    line.split(|c: char| c.is_whitespace() || matches!(c, ';' | '#' | ','))
        .find(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// A record as (line, object), or a feed error as (line, fragment of the reason).
    type Expected<'a> = Result<(usize, Value), (usize, &'a str)>;

    fn check(text: &str, format: FeedFormat, expected: &[Expected<'_>]) {
        let got = parse_feed(text, format);
        assert_eq!(got.len(), expected.len(), "{text:?} as {format}: {got:#?}");
        for (got, expected) in got.iter().zip(expected) {
            match (got, expected) {
                (Ok(record), Ok((line, object))) => {
                    assert_eq!(
                        (record.line, &Value::Object(record.object.clone())),
                        (*line, object),
                        "{text:?}"
                    );
                }
                (Err(error), Err((line, reason))) => {
                    assert_eq!(error.line, *line, "{error}");
                    assert!(
                        error.reason.contains(reason),
                        "{error} should say {reason:?}"
                    );
                }
                (got, expected) => panic!("{text:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    fn ok(line: usize, object: Value) -> Expected<'static> {
        Ok((line, object))
    }

    #[test]
    fn parses_formats_by_name() {
        for format in FeedFormat::ALL {
            assert_eq!(format.as_str().parse::<FeedFormat>(), Ok(format));
            assert_eq!(
                format.to_string().to_uppercase().parse::<FeedFormat>(),
                Ok(format)
            );
        }
        assert_eq!(
            "xml".parse::<FeedFormat>().unwrap_err().to_string(),
            "unknown feed format `xml`: expected auto, json, ndjson, csv or lines"
        );
    }

    #[test]
    fn reads_lists() {
        let text = "# comment\n; another\n// and another\n\n1.10.16.0/20 ; SBL256894\n  8.8.8.8  \n\
                    114.143.191.19#3#2#Scanning Host#IN\nexample.com,extra\nhttp://e.example/a;b,c#frag x\n,,,\n";
        for format in [FeedFormat::Auto, FeedFormat::Lines] {
            check(
                text,
                format,
                &[
                    ok(5, json!({"indicator": "1.10.16.0/20"})),
                    ok(6, json!({"indicator": "8.8.8.8"})),
                    ok(7, json!({"indicator": "114.143.191.19"})),
                    ok(8, json!({"indicator": "example.com"})),
                    ok(9, json!({"indicator": "http://e.example/a;b,c#frag"})),
                    Err((10, "no indicator on this line")),
                ],
            );
        }
        check("", FeedFormat::Auto, &[]);
        check("\n# only comments\n\n", FeedFormat::Auto, &[]);
        check(
            "a.example\r\nb.example\r\n",
            FeedFormat::Auto,
            &[
                ok(1, json!({"indicator": "a.example"})),
                ok(2, json!({"indicator": "b.example"})),
            ],
        );
    }

    #[test]
    fn reads_csv_with_a_header() {
        let text = "indicator,tags,description\n8.8.8.8,\"scanner,ssh\",\"said \"\"hi\"\"\"\n\
                    1.1.1.1,,\n,x,y\n9.9.9.9,a,b,c\n\"unclosed,a\n";
        let expected = [
            ok(
                2,
                json!({"indicator": "8.8.8.8", "tags": "scanner,ssh", "description": "said \"hi\""}),
            ),
            ok(3, json!({"indicator": "1.1.1.1"})),
            Err((4, "its indicator column is empty")),
            Err((5, "has 4 fields but the header names 3 columns")),
            Err((6, "quoted field is not closed")),
        ];
        check(text, FeedFormat::Auto, &expected);
        check(text, FeedFormat::Csv, &expected);
        check(
            "INDICATOR\n8.8.8.8\n",
            FeedFormat::Auto,
            &[ok(2, json!({"indicator": "8.8.8.8"}))],
        );
        check(
            "indicator,x\n8.8.8.8,\n",
            FeedFormat::Auto,
            &[ok(2, json!({"indicator": "8.8.8.8"}))],
        );
        check(
            "indicator,x\n8.8.8.8,1,,\n",
            FeedFormat::Auto,
            &[ok(2, json!({"indicator": "8.8.8.8", "x": "1"}))],
        );
    }

    #[test]
    fn reads_commented_headers() {
        let csirtg = "# THE LIMITS, SIGN UP\n# id,indicator,itype,lasttime\n1,80.82.78.27,ipv4,2016-03-23 20:17:26 UTC\n";
        check(
            csirtg,
            FeedFormat::Auto,
            &[ok(
                3,
                json!({"id": "1", "indicator": "80.82.78.27", "itype": "ipv4", "lasttime": "2016-03-23 20:17:26 UTC"}),
            )],
        );
        let urlhaus = "####\n# URLhaus\n#\n# id,dateadded,url,url_status,threat,tags,urlhaus_link\n\
                       \"1\",\"2018-08-20 19:10:05\",\"http://a.example/x\",\"online\",\"malware_download\",\"doc,emotet\",\"https://u/1/\"\n";
        check(
            urlhaus,
            FeedFormat::Auto,
            &[ok(
                5,
                json!({
                    "id": "1",
                    "firsttime": "2018-08-20 19:10:05",
                    "indicator": "http://a.example/x",
                    "url_status": "online",
                    "description": "malware_download",
                    "tags": "doc,emotet",
                    "urlhaus_link": "https://u/1/",
                }),
            )],
        );
    }

    #[test]
    fn reads_known_headerless_layouts() {
        let bambenek = "## Feed Provided By: John Bambenek of Bambenek Consulting\n\
                        ns1.example.com,Domain used by beebone,2016-06-05 12:10,http://osint.example/beebone.txt\n";
        check(
            bambenek,
            FeedFormat::Auto,
            &[ok(
                2,
                json!({
                    "indicator": "ns1.example.com",
                    "description": "Domain used by beebone",
                    "lasttime": "2016-06-05 12:10",
                    "altid": "http://osint.example/beebone.txt",
                }),
            )],
        );
        let dshield = "#  DShield\n#\nStart\tEnd\tNetblock\tAttacks\tName\tCountry\temail\n\
                       207.150.177.0\t207.150.177.255\t24\t13840\n\
                       141.212.122.0\t141.212.122.255\t24\t923\tUniv (NET-1)\tUS\tpaul@example.edu\n\
                       141.212.122.0\t141.212.122.255\n";
        check(
            dshield,
            FeedFormat::Auto,
            &[
                ok(
                    4,
                    json!({"indicator": "207.150.177.0/24", "count": "13840"}),
                ),
                ok(
                    5,
                    json!({
                        "indicator": "141.212.122.0/24",
                        "count": "923",
                        "description": "Univ (NET-1)",
                        "cc": "US",
                        "contact": "paul@example.edu",
                    }),
                ),
                Err((6, "its indicator column is empty")),
            ],
        );
    }

    #[test]
    fn csv_without_a_header_takes_the_first_column() {
        check(
            "8.8.8.8,scanner\n\"1.1.1.1\",x,y\n",
            FeedFormat::Csv,
            &[
                ok(1, json!({"indicator": "8.8.8.8"})),
                ok(2, json!({"indicator": "1.1.1.1"})),
            ],
        );
        check(
            "8.8.8.8\tx\n",
            FeedFormat::Csv,
            &[ok(1, json!({"indicator": "8.8.8.8"}))],
        );
    }

    #[test]
    fn reads_json() {
        let array = "[\n  {\"indicator\": \"8.8.8.8\", \"tags\": [\"a\"]},\n  {\"url\": \"http://a.example/\\\"]\"},\n  \
                     {\"indicator\": 1, \"url\": \"x\"},\n  {\"nothing\": true},\n  \"8.8.8.8\",\n  {\"broken\": },\n  {\"nested\": [[{}], \"]\"], \"indicator\": \"x\"}\n]\n";
        let expected = [
            ok(2, json!({"indicator": "8.8.8.8", "tags": ["a"]})),
            ok(3, json!({"indicator": "http://a.example/\"]"})),
            ok(4, json!({"indicator": 1, "url": "x"})),
            Err((5, "no `indicator` (or `url`) field")),
            Err((6, "expected a JSON object, found a string")),
            Err((7, "is not valid JSON: expected value")),
            ok(8, json!({"nested": [[{}], "]"], "indicator": "x"})),
        ];
        check(array, FeedFormat::Auto, &expected);
        check(array, FeedFormat::Json, &expected);
        check("[]", FeedFormat::Auto, &[]);
        check(" [ , ] ", FeedFormat::Auto, &[]);
        check(
            "[{\"indicator\":\"a.example\"}",
            FeedFormat::Json,
            &[
                ok(1, json!({"indicator": "a.example"})),
                Err((1, "not closed")),
            ],
        );
        check(
            "[{\"indicator\":\"a.example\"}] junk",
            FeedFormat::Json,
            &[
                ok(1, json!({"indicator": "a.example"})),
                Err((1, "is not valid JSON")),
            ],
        );
        check(
            "{\n \"indicator\": \"a.example\"\n}\n",
            FeedFormat::Auto,
            &[ok(1, json!({"indicator": "a.example"}))],
        );
        check(
            "\n\n{\"indicator\": \"a.example\"}",
            FeedFormat::Json,
            &[ok(3, json!({"indicator": "a.example"}))],
        );
        check(
            "{\"indicator\": ",
            FeedFormat::Json,
            &[Err((1, "is not valid JSON"))],
        );
        check("42", FeedFormat::Json, &[Err((1, "found a number"))]);
    }

    #[test]
    fn reads_ndjson() {
        let text = "{\"indicator\": \"a.example\"}\n# comment\n\n{\"url\": \"http://b.example\"}\n{oops}\n[1]\n";
        let expected = [
            ok(1, json!({"indicator": "a.example"})),
            ok(4, json!({"indicator": "http://b.example"})),
            Err((5, "is not valid JSON: key must be a string")),
            Err((6, "expected a JSON object, found an array")),
        ];
        check(text, FeedFormat::Auto, &expected);
        check(text, FeedFormat::Ndjson, &expected);
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            for format in FeedFormat::ALL {
                for record in parse_feed(&text, format).into_iter().flatten() {
                    prop_assert!(record.object.contains_key("indicator"));
                    prop_assert!(record.line >= 1);
                }
            }
        }

        #[test]
        fn never_panics_on_structured_text(
            lines in prop::collection::vec("[\\[\\]{}\",#;/\\t a-z0-9.:\\\\]{0,30}", 0..10)
        ) {
            let text = lines.join("\n");
            for format in FeedFormat::ALL {
                let records = parse_feed(&text, format);
                let items = text.lines().filter(|line| !is_comment_or_blank(line)).count();
                if matches!(format, FeedFormat::Lines | FeedFormat::Ndjson) {
                    prop_assert_eq!(records.len(), items, "one result per item line");
                }
            }
        }
    }
}
