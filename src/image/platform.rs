//! Platforms (`os/arch[/variant]`): parsing, normalization and variant-aware matching.
//!
//! Normalization follows containerd's `platforms` package, which is what Docker, buildah and
//! every registry client in the field agree on: aarch64 = arm64 = arm64/v8, armhf = arm/v7,
//! armel = arm/v6, x86_64 = amd64, i386/i686 = 386.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ImageError;

/// A platform as it appears in an index descriptor or an image config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let (architecture, variant) = normalize_arch(architecture, variant.unwrap_or(""));
        Platform {
            architecture,
            os: normalize_os(os),
            variant,
            os_version: None,
            os_features: None,
        }
    }

    /// The same platform with aliases resolved (`aarch64` → `arm64`, `arm64/v8` → `arm64`,
    /// `armhf` → `arm/v7`); values read from JSON are not normalized until this is called.
    pub fn normalized(&self) -> Platform {
        Platform {
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            ..Platform::new(&self.os, &self.architecture, self.variant.as_deref())
        }
    }

    /// Parses `os/arch[/variant]`, or a bare `arch` (os = linux), normalizing aliases.
    pub fn parse(spec: &str) -> Result<Platform, ImageError> {
        let bad = |reason: &str| ImageError::Platform {
            platform: spec.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = spec.trim().split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty component"));
        }
        if parts.iter().any(|p| {
            !p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }) {
            return Err(bad("only letters, digits, '_', '-' and '.' are allowed"));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        match lower.as_slice() {
            [arch] if is_known_os(arch) => Err(bad("missing architecture")),
            [arch] => Ok(Platform::new("linux", arch, None)),
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(bad("too many '/'")),
        }
    }

    /// The platform of the machine running this tool (images are always Linux images, as
    /// with Docker Desktop on other hosts).
    pub fn host() -> Platform {
        let arch = std::env::consts::ARCH;
        match arch {
            // Rust reports "arm" for every 32-bit ARM target; v7 is what those hosts run
            // in practice (Raspberry Pi OS armhf, Debian armhf).
            "arm" => Platform::new("linux", "arm", Some("v7")),
            other => Platform::new("linux", other, None),
        }
    }

    /// Whether an image for `candidate` can serve a request for `self`: same OS and
    /// architecture, and a variant that is the same (after normalization). A request with no
    /// variant accepts any variant.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let want = self.normalized();
        let cand = candidate.normalized();
        want.os == cand.os
            && want.architecture == cand.architecture
            && (want.variant.is_none() || want.variant == cand.variant)
    }

    /// Picks the best entry for `self` among candidate platforms: an exact match first,
    /// then (for 32-bit ARM, like containerd) an older compatible variant — arm/v7 may run a
    /// v6 image, arm/v6 never runs a v7 one.
    pub fn best_match<'a, T>(&self, candidates: &'a [(Platform, T)]) -> Option<&'a T> {
        if let Some((_, t)) = candidates.iter().find(|(p, _)| self.matches(p)) {
            return Some(t);
        }
        for fallback in self.compatible_fallbacks() {
            if let Some((_, t)) = candidates.iter().find(|(p, _)| fallback.matches(p)) {
                return Some(t);
            }
        }
        None
    }

    fn compatible_fallbacks(&self) -> Vec<Platform> {
        if self.architecture != "arm" {
            return Vec::new();
        }
        let order = ["v8", "v7", "v6", "v5"];
        let current = self.variant.as_deref().unwrap_or("v7");
        order
            .iter()
            .skip_while(|v| **v != current)
            .skip(1)
            .map(|v| Platform::new(&self.os, "arm", Some(v)))
            .collect()
    }

    /// Values for the automatic build args (TARGETOS, TARGETARCH, TARGETVARIANT).
    pub fn os_arch_variant(&self) -> (&str, &str, &str) {
        (
            &self.os,
            &self.architecture,
            self.variant.as_deref().unwrap_or(""),
        )
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn is_known_os(s: &str) -> bool {
    matches!(s, "linux" | "windows" | "darwin" | "freebsd")
}

/// Operating systems and architectures an image may be for: Go's `GOOS`/`GOARCH` values,
/// which the OCI image index spec (§ platform) refers to.
const OSES: &[&str] = &[
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "dragonfly",
    "solaris",
    "illumos",
    "aix",
    "android",
    "ios",
    "plan9",
    "js",
    "wasi",
    "wasip1",
    "zos",
];
const ARCHES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

impl Platform {
    /// Refuses a platform no image is made for (`linux/amd65`, `linux/armv7`): the build
    /// would otherwise label an image with it. Says what was probably meant.
    pub fn check_known(&self) -> Result<(), ImageError> {
        let bad = |reason: String| ImageError::Platform {
            platform: self.to_string(),
            reason,
        };
        if !OSES.contains(&self.os.as_str()) {
            return Err(bad(format!(
                "unknown operating system {:?}{}",
                self.os,
                nearest(&self.os, OSES)
            )));
        }
        let arch = self.architecture.as_str();
        if !ARCHES.contains(&arch) {
            // `armv7`, `arm64v8`: the variant belongs after a '/'.
            let split = ["arm64", "arm", "amd64"].iter().find_map(|a| {
                let v = arch.strip_prefix(a)?.trim_start_matches(['-', '_']);
                v.strip_prefix('v')
                    .is_some_and(|n| !n.is_empty())
                    .then(|| format!(" (did you mean {}/{a}/{v}?)", self.os))
            });
            let hint = split.unwrap_or_else(|| nearest(arch, ARCHES));
            return Err(bad(format!("unknown architecture {arch:?}{hint}")));
        }
        let Some(variant) = self.variant.as_deref() else {
            return Ok(());
        };
        let known = match arch {
            "arm" => ["v5", "v6", "v7", "v8"].contains(&variant),
            "arm64" => {
                let minor = |v: &str, major: &str| {
                    v.strip_prefix(major)
                        .and_then(|r| r.strip_prefix('.'))
                        .is_some_and(|m| m.len() == 1 && m.as_bytes()[0].is_ascii_digit())
                };
                variant == "v9" || minor(variant, "v8") || minor(variant, "v9")
            }
            "amd64" => ["v2", "v3", "v4"].contains(&variant),
            "riscv64" => ["rva20u64", "rva22u64", "rva23u64"].contains(&variant),
            _ => false,
        };
        if known {
            Ok(())
        } else {
            Err(bad(format!("unknown variant {variant:?} of {arch}")))
        }
    }
}

/// ` (did you mean X?)` for the known value closest to `s`, if one is a likely typo.
fn nearest(s: &str, known: &[&str]) -> String {
    crate::suggest::closest(s, known.iter().copied())
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

fn normalize_os(os: &str) -> String {
    os.to_ascii_lowercase()
}

/// Returns the canonical architecture and variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let v = |s: &str| {
        if s.is_empty() {
            None
        } else {
            Some(s.to_string())
        }
    };
    match arch.as_str() {
        "i386" | "i486" | "i586" | "i686" | "x86" | "386" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => {
            // amd64 micro-architecture levels (v2, v3) are real variants; v1 is the default.
            let variant = if variant == "v1" { "" } else { &variant };
            ("amd64".into(), v(variant))
        }
        "aarch64" | "arm64" => {
            // arm64/v8 is the default arm64, so it is written without a variant.
            let variant = match variant.as_str() {
                "8" | "v8" => "",
                other => other,
            };
            ("arm64".into(), v(variant))
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" | "v7" => "v7",
                "5" | "v5" => "v5",
                "6" | "v6" => "v6",
                "8" | "v8" => "v8",
                other => other,
            };
            ("arm".into(), v(variant))
        }
        _ => (arch.clone(), v(&variant)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn unknown_platforms_are_refused_with_what_was_meant() {
        for ok in [
            "linux/amd64",
            "linux/arm64/v9",
            "linux/arm64/v8.2",
            "linux/arm/v6",
            "linux/amd64/v3",
            "linux/riscv64",
            "linux/s390x",
            "windows/amd64",
            "wasi/wasm",
            "aarch64",
        ] {
            assert!(p(ok).check_known().is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("linux/amd65", "did you mean amd64?"),
            ("linux/armv7", "did you mean linux/arm/v7?"),
            ("linux/arm64v8", "did you mean linux/arm64/v8?"),
            ("foo/bar", "unknown operating system"),
            ("linus/amd64", "did you mean linux?"),
            ("linux/arm/v9", "unknown variant \"v9\" of arm"),
            ("linux/s390x/v2", "unknown variant"),
            ("linux/quantum", "unknown architecture \"quantum\""),
        ] {
            let e = p(bad).check_known().expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn normalizes_aliases() {
        assert_eq!(p("linux/aarch64"), p("linux/arm64"));
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/armhf"), p("linux/arm/v7"));
        assert_eq!(p("linux/arm"), p("linux/arm/v7"));
        assert_eq!(p("linux/armel"), p("linux/arm/v6"));
        assert_eq!(p("linux/x86_64"), p("linux/amd64"));
        assert_eq!(p("linux/i386"), p("linux/386"));
        assert_eq!(p("arm64").to_string(), "linux/arm64");
        assert_eq!(p("LINUX/ARM/V7").to_string(), "linux/arm/v7");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux",
            "lin ux/amd64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn variant_aware_matching() {
        let cands = vec![
            (p("linux/amd64"), "amd64"),
            (p("linux/arm/v6"), "v6"),
            (p("linux/arm/v7"), "v7"),
            (Platform::new("linux", "arm64", Some("v8")), "arm64"),
        ];
        assert_eq!(p("linux/arm/v7").best_match(&cands), Some(&"v7"));
        assert_eq!(p("linux/arm/v6").best_match(&cands), Some(&"v6"));
        assert_eq!(p("linux/arm64").best_match(&cands), Some(&"arm64"));
        assert_eq!(p("linux/aarch64").best_match(&cands), Some(&"arm64"));
        let only_v7 = vec![(p("linux/arm/v7"), "v7")];
        assert_eq!(p("linux/arm/v6").best_match(&only_v7), None);
        let only_v6 = vec![(p("linux/arm/v6"), "v6")];
        assert_eq!(p("linux/arm/v7").best_match(&only_v6), Some(&"v6"));
        assert_eq!(p("linux/s390x").best_match(&cands), None);
        // Raw values from an index (not normalized) match too.
        let raw = Platform {
            variant: Some("v8".into()),
            ..Platform::new("linux", "arm64", None)
        };
        assert!(raw.matches(&p("linux/arm64")));
    }
}
