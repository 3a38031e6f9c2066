//! A small PromQL evaluator over the simulated TiKV series: instant vector selectors with
//! `=`, `!=`, `=~`, `!~` matchers, `rate`/`irate`/`increase` over a range, and the
//! aggregations `sum`, `avg`, `min`, `max`, `count` with `by (...)` or `without (...)`. That
//! covers the queries TiDB's TiKV dashboards (and the adapter) use; anything else is a
//! `bad_data` error worded like Prometheus's.

use std::collections::BTreeMap;

use regex::Regex;

/// Labels of one series.
pub type Labels = BTreeMap<String, String>;

/// One series of the simulated TSDB: its labels, current value, and (for counters) rate.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    pub value: f64,
    /// Per-second rate, for counters.
    pub rate: Option<f64>,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Expr {
    Select(Selector),
    Range { func: String, selector: Selector },
    Aggregate { op: String, grouping: Grouping, inner: Box<Expr> },
}

#[derive(Debug, Clone)]
pub enum Grouping {
    None,
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Matcher {
    fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

impl Selector {
    fn matches(&self, s: &Series) -> bool {
        self.name.as_ref().is_none_or(|n| s.labels.get("__name__") == Some(n))
            && self.matchers.iter().all(|m| m.matches(&s.labels))
    }
}

/// Parses a query; the error reads like Prometheus's (`1:5: parse error: ...`).
pub fn parse(query: &str) -> Result<Expr, String> {
    let mut p = Parser { src: query, pos: 0 };
    p.skip_ws();
    if p.pos >= p.src.len() {
        return Err("1:1: parse error: no expression found in input".into());
    }
    let e = p.expr()?;
    p.skip_ws();
    if p.pos < p.src.len() {
        return Err(p.error("unexpected character after expression"));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

const AGGREGATIONS: &[&str] = &["sum", "avg", "min", "max", "count"];
const RANGE_FUNCS: &[&str] = &["rate", "irate", "increase"];

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("1:{}: parse error: {what}", self.pos + 1)
    }

    fn skip_ws(&mut self) {
        while self.src[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.src[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) { Ok(()) } else { Err(self.error(&format!("expected `{c}`"))) }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        if len == 0 || rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.pos += len;
        Some(rest[..len].to_string())
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if self.peek() == Some('{') {
            return Ok(Expr::Select(self.selector(None)?));
        }
        let start = self.pos;
        let name = self.ident().ok_or_else(|| self.error("unexpected character"))?;
        if AGGREGATIONS.contains(&name.as_str()) {
            let mut grouping = self.grouping()?;
            self.expect('(')?;
            let inner = self.expr()?;
            self.expect(')')?;
            if matches!(grouping, Grouping::None) {
                grouping = self.grouping()?;
            }
            return Ok(Expr::Aggregate { op: name, grouping, inner: Box::new(inner) });
        }
        if RANGE_FUNCS.contains(&name.as_str()) {
            self.expect('(')?;
            let sel_name = self.ident().ok_or_else(|| self.error("expected a metric name"))?;
            let selector = self.selector(Some(sel_name))?;
            self.expect('[')?;
            self.skip_ws();
            let rest = &self.src[self.pos..];
            let end = rest.find(']').ok_or_else(|| self.error("unclosed range"))?;
            let range = rest[..end].trim();
            if range.is_empty() || !range.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(self.error("bad duration in range"));
            }
            self.pos += end;
            self.expect(']')?;
            self.expect(')')?;
            return Ok(Expr::Range { func: name, selector });
        }
        self.skip_ws();
        if self.peek() == Some('(') {
            self.pos = start;
            return Err(self.error(&format!("unknown function with name \"{name}\"")));
        }
        Ok(Expr::Select(self.selector(Some(name))?))
    }

    fn grouping(&mut self) -> Result<Grouping, String> {
        let save = self.pos;
        match self.ident().as_deref() {
            Some(kw @ ("by" | "without")) => {
                self.expect('(')?;
                let mut labels = Vec::new();
                while !self.eat(')') {
                    labels.push(self.ident().ok_or_else(|| self.error("expected a label name"))?);
                    if !self.eat(',') {
                        self.expect(')')?;
                        break;
                    }
                }
                Ok(if kw == "by" { Grouping::By(labels) } else { Grouping::Without(labels) })
            }
            _ => {
                self.pos = save;
                Ok(Grouping::None)
            }
        }
    }

    fn selector(&mut self, name: Option<String>) -> Result<Selector, String> {
        let mut matchers = Vec::new();
        if self.eat('{') {
            while !self.eat('}') {
                let label = self.ident().ok_or_else(|| self.error("expected a label name"))?;
                self.skip_ws();
                let rest = &self.src[self.pos..];
                let (op, len) = if rest.starts_with("=~") {
                    (MatchOp::Re, 2)
                } else if rest.starts_with("!~") {
                    (MatchOp::NotRe, 2)
                } else if rest.starts_with("!=") {
                    (MatchOp::Ne, 2)
                } else if rest.starts_with('=') {
                    (MatchOp::Eq, 1)
                } else {
                    return Err(self.error("expected a label matching operator"));
                };
                self.pos += len;
                let value = self.string()?;
                let regex = match op {
                    MatchOp::Re | MatchOp::NotRe => Some(
                        Regex::new(&format!("^(?:{value})$"))
                            .map_err(|e| self.error(&format!("invalid regex: {e}")))?,
                    ),
                    _ => None,
                };
                matchers.push(Matcher { label, op, value, regex });
                if !self.eat(',') {
                    self.expect('}')?;
                    break;
                }
            }
        }
        if name.is_none() && matchers.iter().all(|m| m.op != MatchOp::Eq || m.value.is_empty()) {
            return Err(self.error("vector selector must contain at least one non-empty matcher"));
        }
        Ok(Selector { name, matchers })
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = self.peek().filter(|c| *c == '"' || *c == '\'').ok_or_else(|| self.error("expected a string"))?;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.src[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        out.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error("unterminated quoted string"))
    }
}

/// Evaluates a query into an instant vector.
pub fn eval(expr: &Expr, series: &[Series]) -> Vec<(Labels, f64)> {
    match expr {
        Expr::Select(sel) => series.iter().filter(|s| sel.matches(s)).map(|s| (s.labels.clone(), s.value)).collect(),
        Expr::Range { func, selector } => series
            .iter()
            .filter(|s| selector.matches(s))
            .filter_map(|s| {
                let rate = s.rate?;
                let mut labels = s.labels.clone();
                labels.remove("__name__");
                let value = if func == "increase" { rate * 60.0 } else { rate };
                Some((labels, value))
            })
            .collect(),
        Expr::Aggregate { op, grouping, inner } => {
            let mut groups: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
            for (labels, v) in eval(inner, series) {
                let key: Labels = match grouping {
                    Grouping::None => Labels::new(),
                    Grouping::By(keep) => labels.into_iter().filter(|(k, _)| keep.contains(k)).collect(),
                    Grouping::Without(drop) => {
                        labels.into_iter().filter(|(k, _)| k != "__name__" && !drop.contains(k)).collect()
                    }
                };
                groups.entry(key).or_default().push(v);
            }
            groups
                .into_iter()
                .map(|(k, vs)| {
                    let v = match op.as_str() {
                        "sum" => vs.iter().sum(),
                        "avg" => vs.iter().sum::<f64>() / vs.len() as f64,
                        "min" => vs.iter().copied().fold(f64::INFINITY, f64::min),
                        "max" => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        _ => vs.len() as f64,
                    };
                    (k, v)
                })
                .collect()
        }
    }
}

/// Formats a sample value as Prometheus does (Go's `strconv.FormatFloat(v, 'f', -1, 64)`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Vec<Series> {
        let mk = |name: &str, instance: &str, ty: &str, value: f64, rate: Option<f64>| Series {
            labels: [("__name__", name), ("instance", instance), ("job", "tikv"), ("type", ty)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            rate,
        };
        vec![
            mk("tikv_raftstore_region_count", "tikv1:20180", "region", 21.0, None),
            mk("tikv_raftstore_region_count", "tikv1:20180", "leader", 7.0, None),
            mk("tikv_raftstore_region_count", "tikv4:20180", "region", 20.0, None),
            mk("tikv_engine_flow_bytes", "tikv1:20180", "wal_file_bytes", 1e9, Some(2048.0)),
            mk("tikv_engine_flow_bytes", "tikv1:20180", "bytes_read", 1e9, Some(100.0)),
            mk("tikv_engine_flow_bytes", "tikv1:20180", "iter_bytes_read", 1e9, Some(50.0)),
        ]
    }

    fn run(q: &str) -> Vec<(Labels, f64)> {
        eval(&parse(q).expect("parses"), &series())
    }

    #[test]
    fn dashboard_queries_evaluate() {
        let r = run(r#"sum(tikv_raftstore_region_count{type="region"}) by (instance)"#);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].0.get("instance").map(String::as_str), Some("tikv1:20180"));
        assert!(!r[0].0.contains_key("__name__"));
        let r = run(r#"sum by (instance) (rate(tikv_engine_flow_bytes{type=~"bytes_read|iter_bytes_read"}[1m]))"#);
        assert_eq!(r[0].1, 150.0);
        let r = run(r#"sum(rate(tikv_engine_flow_bytes{type!="bytes_read", type!~"iter.*"}[5m]))"#);
        assert_eq!(r, vec![(Labels::new(), 2048.0)]);
        assert_eq!(run("tikv_raftstore_region_count").len(), 3);
        assert!(run("no_such_metric").is_empty());
    }

    #[test]
    fn malformed_queries_are_parse_errors() {
        assert_eq!(parse("").expect_err("empty"), "1:1: parse error: no expression found in input");
        assert!(parse("sum(").expect_err("unclosed").contains("parse error"));
        assert!(parse("frobnicate(x)").expect_err("unknown").contains("unknown function"));
        assert!(parse(r#"x{a=~"("}"#).expect_err("regex").contains("invalid regex"));
    }

    #[test]
    fn values_format_like_prometheus() {
        assert_eq!(format_value(21.0), "21");
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }
}
