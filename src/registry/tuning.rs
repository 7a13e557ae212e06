//! Knobs of the registry protocol that users rarely need, read from the environment once
//! per run (there are no flags for them):
//!
//! * `OCIBUILD_CHUNK_SIZE` — upload blobs in chunks of this size (`PATCH` requests, e.g.
//!   `8M`, `512K`, bytes without a suffix) instead of one monolithic `PUT`. Without it,
//!   uploads are monolithic and switch to chunks of [`FALLBACK_CHUNK`] only when a
//!   registry refuses a monolithic upload. A registry's `OCI-Chunk-Min-Length` raises the
//!   size.
//! * `OCIBUILD_RETRY_BASE_MS` — first retry delay (default 1000; doubled per retry, capped
//!   at 8 s). Tests use a few milliseconds.
//! * `OCIBUILD_READ_TIMEOUT_SECS` — longest silence while waiting for a registry's answer
//!   (default 30).
//!
//! A value that does not parse is reported as a warning and the default is used.

use std::time::Duration;

use crate::progress::Progress;

pub const CHUNK_SIZE_ENV: &str = "OCIBUILD_CHUNK_SIZE";
pub const RETRY_BASE_ENV: &str = "OCIBUILD_RETRY_BASE_MS";
pub const READ_TIMEOUT_ENV: &str = "OCIBUILD_READ_TIMEOUT_SECS";

/// Chunk size used when a registry refuses a monolithic upload and none is configured.
pub const FALLBACK_CHUNK: u64 = 4 << 20;
/// Smallest chunk size accepted from the environment.
pub const MIN_CHUNK: u64 = 1024;
const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Tuning {
    /// `Some`: always upload in chunks of this size.
    pub chunk_size: Option<u64>,
    pub retry_base: Duration,
    pub read_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            chunk_size: None,
            retry_base: DEFAULT_RETRY_BASE,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

impl Tuning {
    /// Reads the environment; bad values are warned about on `progress`.
    pub fn from_env(progress: &Progress) -> Tuning {
        let mut t = Tuning::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var(CHUNK_SIZE_ENV) {
            match parse_size(&v) {
                Some(n) if n >= MIN_CHUNK => t.chunk_size = Some(n),
                _ => progress.warn(format_args!(
                    "{CHUNK_SIZE_ENV}={v:?} is not a size of at least {MIN_CHUNK} bytes \
                     (e.g. 8M); uploading monolithically"
                )),
            }
        }
        if let Some(v) = var(RETRY_BASE_ENV) {
            match v.trim().parse::<u64>() {
                Ok(ms) => t.retry_base = Duration::from_millis(ms),
                Err(_) => progress.warn(format_args!(
                    "{RETRY_BASE_ENV}={v:?} is not a number of milliseconds; using 1000"
                )),
            }
        }
        if let Some(v) = var(READ_TIMEOUT_ENV) {
            match v.trim().parse::<u64>() {
                Ok(s) if s > 0 => t.read_timeout = Duration::from_secs(s),
                _ => progress.warn(format_args!(
                    "{READ_TIMEOUT_ENV}={v:?} is not a positive number of seconds; using 30"
                )),
            }
        }
        t
    }
}

/// `1048576`, `512K`, `8M`, `1G` (binary multiples; a trailing `B`/`iB` is accepted).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_uppercase();
    let v = v
        .strip_suffix("IB")
        .or_else(|| v.strip_suffix('B'))
        .unwrap_or(&v);
    let (num, shift) = match v.chars().last()? {
        'K' => (&v[..v.len() - 1], 10),
        'M' => (&v[..v.len() - 1], 20),
        'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("8m"), Some(8 << 20));
        assert_eq!(parse_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("2KB"), Some(2048));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size(""), None);
    }
}
