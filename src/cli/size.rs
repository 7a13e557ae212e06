//! Sizes given on the command line (`--split-layers 32M`).

/// `--split-layers SIZE`: bytes, or a number with K, M or G (binary units; `MiB`, `MB`
/// and `m` mean the same), at least 1 MiB.
pub fn split_size(v: &str) -> Result<u64, super::build::UsageError> {
    let bad = || {
        super::build::UsageError(format!(
            "--split-layers {v:?}: expected a size such as 32M, 64MiB or 1G (at least 1M)"
        ))
    };
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if bytes < ocibuild::layer::split::MIN_PART {
        return Err(bad());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::split_size;

    #[test]
    fn split_sizes() {
        assert_eq!(split_size("32M").unwrap(), 32 << 20);
        assert_eq!(split_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(split_size("1g").unwrap(), 1 << 30);
        assert_eq!(split_size("2048 KB").unwrap(), 2 << 20);
        assert_eq!(split_size("1048576").unwrap(), 1 << 20);
        for bad in ["", "M", "32X", "-1M", "512K", "99999999999G", "1.5M"] {
            let e = split_size(bad).unwrap_err().to_string();
            assert!(e.contains("--split-layers"), "{bad}: {e}");
        }
    }
}
