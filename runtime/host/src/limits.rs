//! Per-call resource limits and the human units they are written in (`64MiB`, `1.5s`).
//!
//! Limits come from three places, later ones winning: the defaults here, a subject's grant
//! manifest (`[limits]`), and CLI flags.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// Every budget a single call into a component runs under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Wall-clock time the guest may spend executing wasm (host calls excluded).
    pub deadline: Duration,
    /// Total time the guest may spend waiting inside host calls (HTTP, Docker...).
    pub host_time: Duration,
    /// Cap on all linear memories of the instance together, in bytes.
    pub memory: u64,
    /// Cap on one HTTP response body, in bytes.
    pub response_size: u64,
    /// Cap on the value a call returns, in bytes of its rendered form.
    pub output: u64,
    /// Bytes of guest stdout and of stderr kept (each); the rest is cut, not trapped.
    pub stdio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(5),
            host_time: Duration::from_secs(30),
            memory: 256 * MIB,
            response_size: 64 * MIB,
            output: 16 * MIB,
            stdio: MIB,
        }
    }
}

/// Optional overrides of [`Limits`], as a manifest or the CLI gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub deadline: Option<Duration>,
    pub host_time: Option<Duration>,
    pub memory: Option<u64>,
    pub response_size: Option<u64>,
    pub output: Option<u64>,
    pub stdio: Option<u64>,
}

impl Limits {
    /// Applies the overrides that are set.
    pub fn apply(mut self, o: &LimitOverrides) -> Limits {
        if let Some(v) = o.deadline {
            self.deadline = v;
        }
        if let Some(v) = o.host_time {
            self.host_time = v;
        }
        if let Some(v) = o.memory {
            self.memory = v;
        }
        if let Some(v) = o.response_size {
            self.response_size = v;
        }
        if let Some(v) = o.output {
            self.output = v;
        }
        if let Some(v) = o.stdio {
            self.stdio = v;
        }
        self
    }
}

/// The largest memory cap accepted: the whole 32-bit wasm address space.
pub const MAX_MEMORY: u64 = 4 * 1024 * MIB;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A byte count written with a unit: `512`, `64KiB`, `64MiB`, `1GiB`, `10MB`, `1.5GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, UnitError> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => KIB,
            "m" | "mb" => 1000 * 1000,
            "mib" => MIB,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1024 * MIB,
            _ => return Err(UnitError::size(s)),
        };
        let value: f64 = num.parse().map_err(|_| UnitError::size(s))?;
        let bytes = value * factor as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(UnitError::size(s));
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1024 * MIB && b.is_multiple_of(1024 * MIB) {
            write!(f, "{}GiB", b / (1024 * MIB))
        } else if b >= MIB && b.is_multiple_of(MIB) {
            write!(f, "{}MiB", b / MIB)
        } else if b >= MIB {
            write!(f, "{:.1}MiB", b as f64 / MIB as f64)
        } else if b >= KIB && b.is_multiple_of(KIB) {
            write!(f, "{}KiB", b / KIB)
        } else {
            write!(f, "{b}B")
        }
    }
}

/// A duration written with a unit: `250ms`, `1s`, `1.5s`, `2m`, `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, UnitError> {
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(UnitError::duration(s));
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| UnitError::duration(s))?;
            let (num, tail) = rest.split_at(split);
            let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let value: f64 = num.parse().map_err(|_| UnitError::duration(s))?;
            let seconds = match unit {
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(UnitError::duration(s)),
            };
            total += value * seconds;
            rest = tail;
        }
        if !total.is_finite() || total > 365.0 * 24.0 * 3600.0 {
            return Err(UnitError::duration(s));
        }
        Ok(HumanDuration(Duration::from_secs_f64(total)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_duration(self.0, f)
    }
}

/// Formats a duration the way limits are written (`1s`, `250ms`, `1.25s`).
pub fn format_duration(d: Duration) -> String {
    HumanDuration(d).to_string()
}

fn fmt_duration(d: Duration, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let ms = d.as_secs_f64() * 1e3;
    if d.subsec_nanos() == 0 {
        write!(f, "{}s", d.as_secs())
    } else if ms < 1.0 {
        write!(f, "{}µs", d.as_micros())
    } else if ms < 1000.0 {
        write!(f, "{}ms", ms.round())
    } else {
        write!(f, "{:.2}s", d.as_secs_f64())
    }
}

/// A value that is not a valid size or duration.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} `{value}`: {expected}")]
pub struct UnitError {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

impl UnitError {
    fn size(value: &str) -> Self {
        UnitError {
            kind: "size",
            value: value.into(),
            expected: "write a number with a unit such as 512KiB, 64MiB or 1GiB",
        }
    }
    fn duration(value: &str) -> Self {
        UnitError {
            kind: "duration",
            value: value.into(),
            expected: "write a number with a unit such as 250ms, 5s or 1m30s",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize(64 * MIB)));
        assert_eq!("1.5GiB".parse::<ByteSize>(), Ok(ByteSize(1536 * MIB)));
        assert_eq!("10MB".parse::<ByteSize>(), Ok(ByteSize(10_000_000)));
        assert_eq!("512".parse::<ByteSize>(), Ok(ByteSize(512)));
        assert_eq!("4 KiB".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("12XB".parse::<ByteSize>().is_err());
        assert!("-1MiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_display_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(64 * MIB).to_string(), "64MiB");
        assert_eq!(ByteSize(4096).to_string(), "4KiB");
        assert_eq!(ByteSize(100).to_string(), "100B");
    }

    #[test]
    fn durations_parse_compound_forms() {
        assert_eq!("250ms".parse::<HumanDuration>(), Ok(HumanDuration(Duration::from_millis(250))));
        assert_eq!("1m30s".parse::<HumanDuration>(), Ok(HumanDuration(Duration::from_secs(90))));
        assert_eq!("1.5s".parse::<HumanDuration>(), Ok(HumanDuration(Duration::from_millis(1500))));
        assert!("5".parse::<HumanDuration>().is_err());
        assert!("5 parsecs".parse::<HumanDuration>().is_err());
        assert!("".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let o = LimitOverrides { deadline: Some(Duration::from_secs(1)), ..Default::default() };
        let l = Limits::default().apply(&o);
        assert_eq!(l.deadline, Duration::from_secs(1));
        assert_eq!(l.memory, Limits::default().memory);
    }
}
