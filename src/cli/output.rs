//! What the CLI prints and writes for other programs: result lines on stdout, the
//! `--digest-file`, the `--metadata-file` JSON (schema in README.md) and the summary line.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use ocibuild::image::canonical;
use ocibuild::pipeline::BuildOutcome;
use ocibuild::progress::{human_bytes, human_duration};
use ocibuild::sink::{Delivery, Destination};

/// Version of the `--metadata-file` document; bumped only on an incompatible change
/// (fields may be added without a bump).
pub const METADATA_VERSION: u32 = 1;

/// One result line on stdout. A closed stdout (`| head`) is not worth a panic.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes `bytes` to `path` (mode 0644) through a temp file in the same directory and a
/// rename, so a reader (a Make rule, a CI step) never sees half a file. Anything but a
/// regular file (`/dev/stdout`, a FIFO, a symlink) is written through instead.
pub fn write_file(flag: &str, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // This process's own stdout or stderr: written through its handle, after what it
    // printed. Opening `/dev/stdout` anew would truncate a file the shell redirected
    // stdout to and write over it from its start.
    match path.to_str() {
        Some("/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1") => {
            let mut out = std::io::stdout().lock();
            return out
                .write_all(bytes)
                .and_then(|()| out.flush())
                .with_context(|| format!("cannot write {flag} to stdout"));
        }
        Some("/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2") => {
            return std::io::stderr()
                .lock()
                .write_all(bytes)
                .with_context(|| format!("cannot write {flag} to stderr"));
        }
        _ => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // `/dev/stdout`, a FIFO or a symlink: write through it, never replace it.
    let special = std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file());
    let write = || -> std::io::Result<()> {
        if special {
            return std::fs::write(path, bytes);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // Temp files are 0600; a result file is for everyone, as `>` would make it.
        tmp.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        tmp.write_all(bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {flag} {}", path.display()))
}

/// The `--digest-file` content: the top-level digest (the index's when several
/// platforms), with no newline, like `docker build --iidfile`.
pub fn digest_file(outcome: &BuildOutcome) -> Vec<u8> {
    outcome.digest.as_str().as_bytes().to_vec()
}

fn kind(d: &Destination) -> &'static str {
    match d {
        Destination::Registry(_) => "registry",
        Destination::OciDir { .. } => "oci",
        Destination::OciArchive { .. } => "oci-archive",
        Destination::DockerArchive { .. } => "docker-archive",
    }
}

/// The `--metadata-file` document (schema in README.md), canonical JSON plus a newline.
pub fn metadata(outcome: &BuildOutcome) -> Vec<u8> {
    let mut bytes = canonical::to_vec(&metadata_value(outcome));
    bytes.push(b'\n');
    bytes
}

fn metadata_value(outcome: &BuildOutcome) -> Value {
    let destinations: Vec<_> = outcome
        .destinations
        .iter()
        .map(|d| {
            json!({
                "destination": d.destination.to_string(),
                "type": kind(&d.destination),
                "digest": d.digest.as_str(),
                "reference": format!("{}@{}", d.destination, d.digest),
                "bytesUploaded": d.delivery.bytes_uploaded,
                "blobsUploaded": d.delivery.blobs_uploaded,
                "blobsMounted": d.delivery.blobs_mounted,
                "bytesMounted": d.delivery.bytes_mounted,
                "blobsSkipped": d.delivery.blobs_skipped,
                "bytesSkipped": d.delivery.bytes_skipped,
            })
        })
        .collect();
    let platforms: Vec<_> = outcome
        .images
        .iter()
        .map(|(p, d, layers)| {
            json!({"platform": p.to_string(), "digest": d.as_str(), "layers": layers})
        })
        .collect();
    json!({
        "metadataVersion": METADATA_VERSION,
        "ocibuildVersion": env!("CARGO_PKG_VERSION"),
        "digest": outcome.digest.as_str(),
        "mediaType": outcome.media_type,
        "destinations": destinations,
        "platforms": platforms,
    })
}

/// The one-line summary, e.g. `pushed 3 blobs (12.3 MB), mounted 2, skipped 4 in 1.2s`.
/// Registry destinations share one push, so their counts are taken once.
pub fn summary(outcome: &BuildOutcome, elapsed: Duration) -> String {
    let mut parts = Vec::new();
    if let Some(d) = outcome
        .destinations
        .iter()
        .find(|d| matches!(d.destination, Destination::Registry(_)))
    {
        parts.push(pushed(&d.delivery));
    }
    let files: Vec<&Delivery> = outcome
        .destinations
        .iter()
        .filter(|d| !matches!(d.destination, Destination::Registry(_)))
        .map(|d| &d.delivery)
        .collect();
    if !files.is_empty() {
        let blobs: usize = files.iter().map(|d| d.blobs_uploaded).sum();
        let bytes: u64 = files.iter().map(|d| d.bytes_uploaded).sum();
        let n = files.len();
        parts.push(format!(
            "wrote {} ({}) to {n} file destination{}",
            plural(blobs, "blob"),
            human_bytes(bytes),
            if n == 1 { "" } else { "s" }
        ));
    }
    let images = outcome.images.len();
    let what = if images > 1 {
        format!("{images} platforms, ")
    } else {
        String::new()
    };
    format!("{what}{} in {}", parts.join("; "), human_duration(elapsed))
}

fn pushed(d: &Delivery) -> String {
    format!(
        "pushed {} ({}), mounted {}, skipped {}",
        plural(d.blobs_uploaded, "blob"),
        human_bytes(d.bytes_uploaded),
        d.blobs_mounted,
        d.blobs_skipped
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocibuild::image::{Digest, Platform};
    use ocibuild::pipeline::DestinationResult;

    fn outcome() -> BuildOutcome {
        let d = |s: &[u8]| Digest::of(s);
        let dest = |s: &str, delivery: Delivery| DestinationResult {
            destination: Destination::parse(s).unwrap(),
            digest: d(b"index"),
            delivery,
        };
        let pushed = Delivery {
            bytes_uploaded: 12_345_678,
            blobs_uploaded: 3,
            blobs_mounted: 2,
            bytes_mounted: 2_000,
            blobs_skipped: 4,
            bytes_skipped: 4_000,
        };
        BuildOutcome {
            digest: d(b"index"),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            images: vec![
                (Platform::parse("linux/amd64").unwrap(), d(b"a"), 3),
                (Platform::parse("linux/arm64").unwrap(), d(b"b"), 3),
            ],
            destinations: vec![
                dest("localhost:5000/app:v1", pushed.clone()),
                dest("localhost:5000/app:latest", pushed),
                dest(
                    "oci:out:v1",
                    Delivery {
                        bytes_uploaded: 1000,
                        blobs_uploaded: 5,
                        ..Delivery::default()
                    },
                ),
            ],
        }
    }

    #[test]
    fn summary_counts_the_registry_push_once() {
        assert_eq!(
            summary(&outcome(), Duration::from_millis(1234)),
            "2 platforms, pushed 3 blobs (12.3 MB), mounted 2, skipped 4; \
             wrote 5 blobs (1.0 KB) to 1 file destination in 1.2s"
        );
    }

    #[test]
    fn metadata_schema() {
        let v: Value = serde_json::from_slice(&metadata(&outcome())).unwrap();
        assert_eq!(v["metadataVersion"], 1);
        assert_eq!(v["digest"], Digest::of(b"index").as_str());
        assert_eq!(v["platforms"][1]["platform"], "linux/arm64");
        assert_eq!(v["platforms"][1]["layers"], 3);
        assert_eq!(v["destinations"][0]["type"], "registry");
        assert_eq!(v["destinations"][2]["type"], "oci");
        assert_eq!(v["destinations"][0]["blobsMounted"], 2);
        assert_eq!(v["destinations"][0]["bytesMounted"], 2_000);
        assert_eq!(v["destinations"][0]["bytesSkipped"], 4_000);
        assert_eq!(v["destinations"][0]["bytesUploaded"], 12_345_678);
        assert_eq!(
            v["destinations"][1]["reference"],
            format!("localhost:5000/app:latest@{}", Digest::of(b"index"))
        );
    }
}
