//! Output helpers: aligned tables, JSON, and error messages with their cause chain and hints.
//!
//! Everything printed here may carry text from a component, a subject's files or a cluster,
//! so it goes through [`operator_host::text`] first: control characters are shown, not
//! obeyed.

use operator_host::limits::ByteSize;
use operator_host::sandbox::FailedCall;
use operator_host::text::{escape, escape_lines, json_safe};
use operator_host::{CallError, LoadError};
use serde::Serialize;

use super::Output;

/// Longest cell shown, in characters: a component chooses the text, and every other cell of its
/// column is padded to the widest one.
const MAX_CELL: usize = 256;

/// A plain aligned table.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row (one cell per header); control characters in cells are escaped, and a cell
    /// longer than [`MAX_CELL`] characters is cut (`--output json` has it whole).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| cut_cell(escape(&c).into_owned())).collect());
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for line in self.lines() {
            if out.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    }

    #[cfg(test)]
    fn render(&self) -> String {
        self.lines().collect()
    }

    fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = move |cells: Vec<&str>| -> String {
            let mut out: Vec<String> = Vec::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push(cell.to_string());
                } else {
                    out.push(format!("{cell:<width$}", width = widths[i]));
                }
            }
            format!("{}\n", out.join("  ").trim_end())
        };
        std::iter::once(line(self.headers.clone()))
            .chain(self.rows.iter().map(move |row| line(row.iter().map(String::as_str).collect())))
    }
}

/// `cell` cut to [`MAX_CELL`] characters, ending in `…` when cut.
fn cut_cell(cell: String) -> String {
    match cell.char_indices().nth(MAX_CELL) {
        Some((end, _)) => format!("{}…", &cell[..end]),
        None => cell,
    }
}

/// Prints a value as pretty JSON (with every control character escaped).
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", json_safe(&serde_json::to_string_pretty(value)?));
    Ok(())
}

/// Prints a value as one line of JSON.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", json_safe(&serde_json::to_string(value)?));
    Ok(())
}

/// Prints a refused request and the grant that would allow it.
pub fn denial(reason: &str, hint: &str) {
    eprintln!("denied: {}\n  hint: {}", escape(reason), escape_lines(hint).replace('\n', "\n        "));
}

/// A byte count for tables (`1.6TiB`, `79.3GiB`, `0B`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n}B") } else { format!("{v:.1}{}", UNITS[unit]) }
}

/// A number with three significant digits at most (`0.0333`, `12.5`, `1234`), no trailing zeros.
pub fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = operator_rules::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A rate for tables.
pub fn rate(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if v >= 1024.0 * 1024.0 && unit == "B/s" => format!("{:.1}MiB/s", v / (1024.0 * 1024.0)),
        Some(v) if v >= 1024.0 && unit == "B/s" => format!("{:.1}KiB/s", v / 1024.0),
        Some(v) => format!("{v:.1}{unit}"),
        None => "-".into(),
    }
}

/// Prints an error: its named kind and message, the cause chain, and a hint if there is one.
/// With `--output json` the same goes to stdout as `{"error": {...}}`.
pub fn print_error(e: &anyhow::Error, output: Output) {
    let call_error =
        e.downcast_ref::<FailedCall>().map(|f| &f.error).or_else(|| e.downcast_ref::<CallError>()).or_else(|| {
            match e.downcast_ref::<LoadError>() {
                Some(LoadError::Call(c)) => Some(c),
                _ => None,
            }
        });
    if let Some(f) = e.downcast_ref::<FailedCall>() {
        if let CallError::Trap { backtrace: Some(bt), .. } = &f.error {
            tracing::info!("wasm backtrace:\n{}", escape_lines(bt));
        }
        for d in &f.report.denials {
            denial(&d.reason, &d.hint);
        }
        if f.report.denials_dropped > 0 {
            eprintln!("denied: {} more requests (not shown)", f.report.denials_dropped);
        }
        if f.report.stdout.dropped > 0 {
            eprintln!("note: the component wrote {} to stdout before failing", ByteSize(f.report.stdout.total));
        }
    }
    let hint = call_error.and_then(CallError::hint);
    match output {
        Output::Json => {
            let kind = call_error.map(CallError::kind).unwrap_or("error");
            let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
            let v = serde_json::json!({ "error": { "kind": kind, "message": e.to_string(), "causes": causes, "hint": hint } });
            println!("{}", json_safe(&serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())));
        }
        Output::Table => {
            eprintln!("error: {}", escape_lines(&e.to_string()));
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {}", escape_lines(&cause.to_string()));
            }
            if let Some(hint) = hint {
                eprintln!("  hint: {}", escape_lines(&hint));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_689_001_999), "2026-11-26 10:30:01");
    }

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["ID", "ADDRESS"]);
        t.row(vec!["1".into(), "tikv1:20160".into()]);
        t.row(vec!["100".into(), "x".into()]);
        assert_eq!(t.render(), "ID   ADDRESS\n1    tikv1:20160\n100  x\n");
    }

    #[test]
    fn table_cells_cannot_move_the_cursor() {
        let mut t = Table::new(&["NAME"]);
        t.row(vec!["\x1b[2Kok\r".into()]);
        assert_eq!(t.render(), "NAME\n\\x1b[2Kok\\x0d\n");
    }

    #[test]
    fn a_huge_cell_is_cut_so_it_cannot_pad_every_row() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["é".repeat(100_000), "x".into()]);
        t.row(vec!["1".into(), "y".into()]);
        let lines: Vec<String> = t.lines().collect();
        assert_eq!(lines[1].chars().count(), MAX_CELL + 1 + 2 + 1 + 1, "{}", lines[1]);
        assert!(lines[1].contains("é…  x"));
        assert_eq!(lines[2].chars().count(), MAX_CELL + 1 + 2 + 1 + 1);
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(1_798_944_000_000), "1.6TiB");
    }
}
