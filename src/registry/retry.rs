//! Bounded retries with exponential backoff for transient registry failures (resets,
//! timeouts, 408/429/5xx). Each try redoes the whole operation from the start — a fresh
//! upload session, the blob re-read from its file (or the source registry).
//!
//! The delay is the backoff (base 1 s, `OCIBUILD_RETRY_BASE_MS`, doubled per retry,
//! capped at 8 s, jittered) or the registry's `Retry-After` when that is longer (itself
//! capped at 30 s). With the defaults an operation gives up after about 7–9 s of waiting
//! plus its own time, so a registry that stays away fails the run well within a minute.

use std::future::Future;
use std::time::Duration;

use super::RegistryError;
use crate::progress::Progress;

/// Total tries per operation, the first included.
pub const TRIES: u32 = 4;
const MAX_DELAY: Duration = Duration::from_secs(8);

/// Runs `op` until it succeeds, fails with a non-transient error, or has been tried
/// [`TRIES`] times, waiting `base`, 2×`base`, … (or `Retry-After`) in between. `what`
/// names the operation in the warning printed before each retry.
pub async fn run<T, F, Fut>(
    progress: &Progress,
    what: &str,
    base: Duration,
    mut op: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut attempt = 1;
    let mut challenged = false;
    let mut renewed = false;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            // The host is set up again with the challenge; redo at once, once.
            Err(RegistryError::Challenged { .. }) if !challenged => challenged = true,
            // The host's tokens were dropped; redo at once with a new one, once.
            Err(RegistryError::TokenRefused { .. }) if !renewed => renewed = true,
            Err(e) if e.is_transient() && attempt < TRIES => {
                let backoff = delay(base, attempt);
                let wait = e.retry_after().map_or(backoff, |r| r.max(backoff));
                progress.warn(format_args!(
                    "{what}: {}; retrying in {:.1}s ({attempt}/{})",
                    e.summary(),
                    wait.as_secs_f64(),
                    TRIES - 1
                ));
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// base, 2×base, 4×base … capped, plus up to 25% jitter so parallel uploads do not retry
/// in step.
fn delay(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1 << (attempt - 1).min(16))
        .min(MAX_DELAY);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = exp.mul_f64(f64::from(nanos % 250) / 1000.0);
    exp + jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Duration = Duration::from_millis(1);

    fn transient() -> RegistryError {
        RegistryError::Server {
            registry: "r".into(),
            status: 503,
            reason: "unavailable".into(),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r = run(&Progress::silent(), "x", FAST, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(transient())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn bounded() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = run(&Progress::silent(), "x", FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), TRIES);
    }

    #[tokio::test]
    async fn auth_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = run(&Progress::silent(), "x", FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(RegistryError::Auth {
                registry: "r".into(),
                reason: "wrong password".into(),
            })
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_token_is_renewed_at_once_and_once() {
        let refused = || RegistryError::TokenRefused {
            registry: "r".into(),
        };
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        // A long base: a renewal must not wait for it.
        let slow = Duration::from_secs(30);
        let r = run(&Progress::silent(), "x", slow, || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(refused())
            } else {
                Ok(1)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = run(&Progress::silent(), "x", slow, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(refused())
        })
        .await;
        assert!(matches!(r, Err(RegistryError::TokenRefused { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let r = run(&Progress::silent(), "x", FAST, || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(RegistryError::Server {
                    registry: "r".into(),
                    status: 503,
                    reason: "busy".into(),
                    retry_after: Some(Duration::from_millis(300)),
                })
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn delays_grow_and_cap() {
        let d = |n| delay(Duration::from_secs(1), n);
        assert!(d(1) >= Duration::from_secs(1) && d(1) < Duration::from_millis(1300));
        assert!(d(3) >= Duration::from_secs(4));
        assert!(d(10) <= MAX_DELAY.mul_f64(1.25));
    }
}
