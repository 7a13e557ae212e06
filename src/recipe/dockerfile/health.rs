//! HEALTHCHECK as Docker writes it into the config (durations in nanoseconds, zero
//! values left out, `{"Test":["NONE"]}` for `HEALTHCHECK NONE`), Go duration parsing,
//! and STOPSIGNAL validation.

use serde_json::{Map, Value, json};

use super::instructions::{Command, Health};

/// The config's `Healthcheck` object.
pub fn to_json(h: &Health) -> Result<Value, String> {
    let Some(test) = &h.test else {
        return Ok(json!({"Test": ["NONE"]}));
    };
    let mut m = Map::new();
    let test: Vec<String> = match test {
        Command::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
    };
    m.insert("Test".into(), json!(test));
    for (flag, key, value) in [
        ("interval", "Interval", &h.interval),
        ("timeout", "Timeout", &h.timeout),
        ("start-period", "StartPeriod", &h.start_period),
        ("start-interval", "StartInterval", &h.start_interval),
    ] {
        if let Some(v) = value {
            let ns = duration_ns(v).map_err(|e| format!("--{flag}={v}: {e}"))?;
            if ns != 0 && ns < 1_000_000 {
                return Err(format!("--{flag}={v}: cannot be less than 1ms"));
            }
            if ns != 0 {
                m.insert(key.into(), json!(ns));
            }
        }
    }
    if let Some(r) = &h.retries {
        let n: i64 = r
            .parse()
            .map_err(|_| format!("--retries={r}: not an integer"))?;
        if n < 0 {
            return Err("--retries cannot be negative".into());
        }
        if n != 0 {
            m.insert("Retries".into(), json!(n));
        }
    }
    Ok(Value::Object(m))
}

/// Go's `time.ParseDuration` (`1h2m3.5s`, `300ms`, `0`), in nanoseconds; negative
/// durations are refused.
pub fn duration_ns(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err("invalid duration".into());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err("invalid duration".into());
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| "invalid duration".to_string())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err("missing unit in duration".into()),
            u => return Err(format!("unknown unit {u:?} in duration")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if total > u64::MAX as f64 {
        return Err("duration out of range".into());
    }
    Ok(total.round() as u64)
}

const SIGNALS: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// A signal Docker accepts: a number, a name with or without `SIG`, or `RTMIN+n`.
pub fn check_signal(s: &str) -> Result<(), String> {
    if let Ok(n) = s.parse::<u32>() {
        return if (1..=64).contains(&n) {
            Ok(())
        } else {
            Err(format!("invalid signal: {s}"))
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let rt = ["RTMIN", "RTMAX"].iter().any(|p| {
        name.strip_prefix(p).is_some_and(|r| {
            r.is_empty()
                || r[1..].parse::<u32>().is_ok() && (r.starts_with('+') || r.starts_with('-'))
        })
    });
    if SIGNALS.contains(&name) || rt {
        Ok(())
    } else {
        Err(format!("invalid signal: {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_json() {
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(duration_ns("250ms").unwrap(), 250_000_000);
        assert_eq!(duration_ns("0").unwrap(), 0);
        for bad in ["", "10", "1x", "-1s", "s", "1..2s"] {
            assert!(duration_ns(bad).is_err(), "{bad}");
        }
        let h = Health {
            interval: Some("5s".into()),
            timeout: Some("0s".into()),
            retries: Some("3".into()),
            test: Some(Command::Shell("curl -f http://localhost/".into())),
            ..Default::default()
        };
        assert_eq!(
            to_json(&h).unwrap(),
            json!({"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 5_000_000_000u64, "Retries": 3})
        );
        let e = Health {
            test: Some(Command::Exec(vec!["/bin/check".into(), "-q".into()])),
            ..Default::default()
        };
        assert_eq!(
            to_json(&e).unwrap(),
            json!({"Test": ["CMD", "/bin/check", "-q"]})
        );
        assert_eq!(
            to_json(&Health::default()).unwrap(),
            json!({"Test": ["NONE"]})
        );
        let tiny = Health {
            interval: Some("10us".into()),
            ..e.clone()
        };
        assert!(to_json(&tiny).is_err());
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "99", "RTMIN+x"] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
