//! What the CLI prints: result lines on stdout and the `--metadata-file` JSON.

use std::io::Write;

use serde_json::json;

use ocibuild::image::canonical;
use ocibuild::pipeline::BuildOutcome;

/// One result line on stdout. A closed stdout (`| head`) is not worth a panic.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The `--metadata-file` document (schema in README.md).
pub fn metadata(outcome: &BuildOutcome) -> Vec<u8> {
    let destinations: Vec<_> = outcome
        .destinations
        .iter()
        .map(|d| {
            json!({
                "destination": d.destination.to_string(),
                "digest": d.digest.as_str(),
                "reference": format!("{}@{}", d.destination, d.digest),
                "bytesUploaded": d.delivery.bytes_uploaded,
                "blobsUploaded": d.delivery.blobs_uploaded,
                "blobsMounted": d.delivery.blobs_mounted,
                "blobsSkipped": d.delivery.blobs_skipped,
            })
        })
        .collect();
    let platforms: Vec<_> = outcome
        .images
        .iter()
        .map(|(p, d, layers)| json!({"platform": p.to_string(), "digest": d.as_str(), "layers": layers}))
        .collect();
    let mut bytes = canonical::to_vec(&json!({
        "digest": outcome.digest.as_str(),
        "mediaType": outcome.media_type,
        "destinations": destinations,
        "platforms": platforms,
    }));
    bytes.push(b'\n');
    bytes
}
