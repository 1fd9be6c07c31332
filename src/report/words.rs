//! The words every renderer shares: sizes and counts.

/// Human-readable size: B, KiB, MiB, GiB, TiB.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `N things`, with the plural `s` only where it belongs.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else if let Some(stem) = word.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "failure"), "1 failure");
        assert_eq!(plural(0, "failure"), "0 failures");
        assert_eq!(plural(1, "path"), "1 path");
        assert_eq!(plural(3, "entry"), "3 entries");
        assert_eq!(plural(2, "library"), "2 libraries");
        assert_eq!(plural(2, "key"), "2 keys");
    }
}
