//! Human formatting of inventory values for change summaries: byte sizes in binary units and
//! counts with thousands separators, as an administrator reads them in the device timeline.

/// `8589934592` → `8 GiB`, `8040000000` → `7.5 GiB`, `512` → `512 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut whole = n;
    while whole >= 1024 && unit < UNITS.len() - 1 {
        whole /= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    let scale = 1024u64.pow(unit as u32);
    if n.is_multiple_of(scale) {
        format!("{} {}", n / scale, UNITS[unit])
    } else {
        // Precision loss in the cast is irrelevant at one decimal.
        format!("{:.1} {}", n as f64 / scale as f64, UNITS[unit])
    }
}

/// `1234` → `1,234`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_shown_in_binary_units() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (8 << 30, "8 GiB"),
            (8_040_000_000, "7.5 GiB"),
            (1 << 40, "1 TiB"),
            (u64::MAX, "16384.0 PiB"),
        ] {
            assert_eq!(super::bytes(n), want, "{n}");
        }
    }

    #[test]
    fn counts_get_thousands_separators() {
        for (n, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234, "1,234"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(super::thousands(n), want, "{n}");
        }
    }
}
