//! Sizes given on the command line (`--split-layers 32M`, `--cache-max-size 20G`).

use super::build::UsageError;

/// `--split-layers SIZE`: bytes, or a number with K, M, G or T (binary units; `MiB`, `MB`
/// and `m` mean the same), at least 1 MiB.
pub fn split_size(v: &str) -> Result<u64, UsageError> {
    let bytes = size(v).ok_or_else(|| {
        UsageError(format!(
            "--split-layers {v:?}: expected a size such as 32M, 64MiB or 1G (at least 1M)"
        ))
    })?;
    if bytes < ocibuild::layer::split::MIN_PART {
        return Err(UsageError(format!(
            "--split-layers {v:?}: parts must be at least 1M"
        )));
    }
    Ok(bytes)
}

/// `--cache-max-size SIZE` (or `OCIBUILD_CACHE_MAX_SIZE`): any size; 0 keeps only what
/// the build used. Empty is the default (an exported but empty variable is unset).
pub fn cache_size(v: &str) -> Result<u64, UsageError> {
    if v.trim().is_empty() {
        return Ok(ocibuild::layer::cache_prune::DEFAULT_MAX_BYTES);
    }
    size(v).ok_or_else(|| {
        UsageError(format!(
            "--cache-max-size {v:?} (or OCIBUILD_CACHE_MAX_SIZE): expected a size such as 500M, 20G or 1T"
        ))
    })
}

fn size(v: &str) -> Option<u64> {
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::{cache_size, split_size};

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

    #[test]
    fn cache_sizes() {
        assert_eq!(cache_size("10G").unwrap(), 10 << 30);
        assert_eq!(cache_size("2T").unwrap(), 2 << 40);
        assert_eq!(cache_size("0").unwrap(), 0);
        assert_eq!(cache_size(" ").unwrap(), 10 << 30);
        for bad in ["lots", "-1G", "1.5G", "99999999999T"] {
            let e = cache_size(bad).unwrap_err().to_string();
            assert!(e.contains("--cache-max-size"), "{bad}: {e}");
        }
    }
}
