//! `--platform`: the list parsed, checked against the platforms images are made for, and
//! deduplicated; `all`; what a single-image destination allows.

use ocibuild::image::Platform;
use ocibuild::pipeline::PlatformRequest;
use ocibuild::sink::Destination;

use super::build::UsageError;

/// The platforms `--platform` asks for (none: the host's).
pub fn request(
    list: &[String],
    destinations: &[Destination],
) -> Result<PlatformRequest, UsageError> {
    let list = match list {
        [] => return Ok(PlatformRequest::Host),
        [all] if all == "all" => return Ok(PlatformRequest::All),
        list => list,
    };
    let mut platforms: Vec<Platform> = Vec::new();
    for p in list {
        let p = Platform::parse(p)
            .and_then(|p| p.check_known().map(|()| p))
            .map_err(|e| UsageError(format!("--platform: {e}")))?;
        // `linux/arm64,linux/aarch64` is one platform.
        if !platforms.contains(&p) {
            platforms.push(p);
        }
    }
    if let (Some(archive), [_, _, ..]) = (
        destinations
            .iter()
            .find(|d| matches!(d, Destination::DockerArchive { .. })),
        platforms.as_slice(),
    ) {
        return Err(UsageError(format!(
            "{archive}: a docker-archive holds one platform and --platform asks for {}; \
             pass one platform, or write the others to oci-archive:/oci:",
            platforms.len()
        )));
    }
    Ok(PlatformRequest::List(platforms))
}
