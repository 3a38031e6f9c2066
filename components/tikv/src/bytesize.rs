//! PD's `typeutil.ByteSize`: a human string from docker/go-units `BytesSize` (`"1.636TiB"`,
//! `"79.3GiB"`, `"512MiB"`, `"0B"`: `%.4g` and a binary unit, no space). Some PD docs show
//! `"10 GiB"` with a space and decimal units appear in hand-written configs, so both are read.

/// Bytes in a ByteSize string, or `None` when it is not one.
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    // The unit is the alphabetic suffix (the number itself may contain an `e`).
    let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[number.len()..];
    let value: f64 = number.trim().parse().ok()?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024f64,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        "PiB" => 1024f64.powi(5),
        "EiB" => 1024f64.powi(6),
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        _ => return None,
    };
    let bytes = value * factor;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then(|| bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn go_units_strings_parse_to_bytes() {
        assert_eq!(parse("0B"), Some(0));
        assert_eq!(parse("512MiB"), Some(512 << 20));
        assert_eq!(parse("79.3GiB"), Some((79.3 * 1024f64.powi(3)).round() as u64));
        assert_eq!(parse("1.636TiB"), Some((1.636 * 1024f64.powi(4)).round() as u64));
        assert_eq!(parse("1.598TiB"), Some(1_757_019_581_186));
        assert_eq!(parse("10 GiB"), Some(10 << 30));
        assert_eq!(parse("1e+03KiB"), Some(1_024_000));
    }

    #[test]
    fn non_sizes_are_refused() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("lots"), None);
        assert_eq!(parse("12XiB"), None);
        assert_eq!(parse("-1GiB"), None);
    }
}
