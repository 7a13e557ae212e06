//! Exit codes, stable and documented in README.md, chosen by walking the error chain.

use crate::cli::build::UsageError;
use ocibuild::context::ContextError;
use ocibuild::image::ImageError;
use ocibuild::layer::LayerError;
use ocibuild::pipeline::PipelineError;
use ocibuild::recipe::RecipeError;
use ocibuild::registry::RegistryError;
use ocibuild::registry::error::ErrorKind;
use ocibuild::sink::SinkError;

/// Process exit codes for failures (success is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Anything not classified below (including internal errors).
    Failure = 1,
    /// Bad flags or arguments (clap's own code too).
    Usage = 2,
    /// The build input is wrong: context, Dockerfile, files, base platform.
    Input = 3,
    /// A registry could not be reached or answered with an error.
    Registry = 4,
    /// The registry refused the credentials (or none were given).
    Auth = 5,
    /// TLS: untrusted or invalid certificate.
    Tls = 6,
}

/// Picks the exit code for an error: the first classifiable error in the chain decides.
pub fn classify(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return ExitCode::Usage;
        }
        if let Some(e) = cause.downcast_ref::<RegistryError>() {
            return registry_code(e);
        }
        // A bad flag value (`--env`, `--target`, …) is a usage error wherever it is found.
        if let Some(RecipeError::Flag { .. }) = cause.downcast_ref::<RecipeError>() {
            return ExitCode::Usage;
        }
        if let Some(e) = cause.downcast_ref::<PipelineError>() {
            match e {
                PipelineError::Recipe(RecipeError::Flag { .. }) => return ExitCode::Usage,
                PipelineError::Recipe(_)
                | PipelineError::Copy { .. }
                | PipelineError::Layer(_)
                | PipelineError::Rootfs(_)
                | PipelineError::Platform { .. }
                | PipelineError::AtFrom { .. } => {
                    return ExitCode::Input;
                }
                PipelineError::Image(_) => return ExitCode::Input,
                PipelineError::Registry(r) | PipelineError::Download { cause: r, .. } => {
                    return registry_code(r);
                }
                // `#[error(transparent)]` skips the wrapped error in `source()`, so the
                // nested cases are matched by structure, not found by walking the chain.
                PipelineError::Sink(SinkError::Registry(r)) => return registry_code(r),
                PipelineError::Sink(SinkError::Layer(_)) => return ExitCode::Input,
                // A destination that cannot hold what was built (several platforms in a
                // docker-archive): another destination or --platform is the fix.
                PipelineError::Sink(SinkError::Unsupported { .. }) => return ExitCode::Usage,
                PipelineError::Sink(_) | PipelineError::Internal(_) => {}
            }
        }
        if cause.downcast_ref::<RecipeError>().is_some()
            || cause.downcast_ref::<ContextError>().is_some()
            || cause.downcast_ref::<LayerError>().is_some()
        {
            return ExitCode::Input;
        }
        if cause.downcast_ref::<ImageError>().is_some() {
            return ExitCode::Usage;
        }
    }
    ExitCode::Failure
}

fn registry_code(e: &RegistryError) -> ExitCode {
    if matches!(e, RegistryError::CaCert { .. }) {
        return ExitCode::Usage;
    }
    match e.kind() {
        ErrorKind::Auth => ExitCode::Auth,
        ErrorKind::Tls => ExitCode::Tls,
        ErrorKind::Local => ExitCode::Failure,
        ErrorKind::Network | ErrorKind::NotFound | ErrorKind::Registry => ExitCode::Registry,
    }
}
