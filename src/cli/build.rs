//! `ocibuild build` (the default command): flags → recipe + settings → pipeline → output.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use ocibuild::image::Platform;
use ocibuild::image::media::Compression;
use ocibuild::layer::{BlobCache, Codec};
use ocibuild::pipeline::{self, BuildOutcome, BuildSettings};
use ocibuild::progress::Progress;
use ocibuild::recipe::Frontend;
use ocibuild::recipe::directory::{self, DirectoryOptions};
use ocibuild::recipe::dockerfile::{self, DockerfileOptions};
use ocibuild::recipe::overrides::Overrides;
use ocibuild::registry::RegistryOptions;
use ocibuild::sink::Destination;

use super::output;

pub const EXAMPLES: &str = "\
Examples:
  # A directory on top of a base image, pushed to a local registry (plain HTTP is fine on localhost)
  ocibuild ./dist --from localhost:5000/base:1 --dest /srv/app \\
      --entrypoint '[\"/srv/app/bin/server\"]' --env MODE=prod -t localhost:5000/server:v1

  # The same image to a registry, an OCI layout and a `docker load` archive in one run
  ocibuild ./dist --from alpine:3.20 -t myregistry.com:5000/server -t oci:./out/server:v1 \\
      -t docker-archive:./server.tar:server:v1

  # A private registry with a self-signed certificate
  ocibuild . --from debian:12-slim -t myregistry.com:5000/server --ca-cert ./myregistry.crt

  # From a Makefile or CI job: only the result line, plus the digest and a JSON description
  ocibuild ./dist -q --from node:22-alpine --platform linux/amd64,linux/arm64 \\
      -t registry.example.com/app:v1 --digest-file app.digest --metadata-file app.json

Destinations (-t): host[:port]/repo[:tag], oci:<dir>[:tag], oci-archive:<file>[:tag],
docker-archive:<file>[:ref]. stdout gets one `<dest>@sha256:<hex>` line per destination.
Exit codes: 0 ok, 2 usage, 3 input (context/Dockerfile), 4 registry/network, 5 auth, 6 TLS, 1 other.
Shell completions: ocibuild completions bash|zsh|fish|powershell|elvish.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct BuildArgs {
    /// Build context: the directory whose files go into the image.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,

    /// Destination (repeatable): a registry reference host[:port]/repo[:tag], or
    /// oci:<dir>[:tag], oci-archive:<file>[:tag], docker-archive:<file>[:ref].
    #[arg(short = 't', long = "tag", value_name = "DEST", required = true)]
    pub tags: Vec<String>,

    /// Dockerfile to build (default: CONTEXT/Dockerfile or CONTEXT/Containerfile if present).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Directory mode: the base image (no Dockerfile is read). Default: scratch.
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<String>,

    /// Directory mode: where the context lands in the image.
    #[arg(long, value_name = "PATH", default_value = "/app")]
    pub dest: String,

    /// Entrypoint: a JSON array ('["/app/server","--flag"]') or a string run by /bin/sh -c.
    /// Without --cmd, it clears a CMD inherited from the base (like docker run --entrypoint).
    #[arg(long, value_name = "JSON|STRING", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,

    /// Command: a JSON array or a string run by /bin/sh -c.
    #[arg(long, value_name = "JSON|STRING", allow_hyphen_values = true)]
    pub cmd: Option<String>,

    /// Environment variable (repeatable), merged by key onto the base's.
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,

    /// Config label (repeatable).
    #[arg(long, value_name = "K=V")]
    pub label: Vec<String>,

    /// Manifest annotation (repeatable). Wins over the automatic ones
    /// (org.opencontainers.image.created, .source, .revision, .base.name, .base.digest).
    #[arg(long, value_name = "K=V")]
    pub annotation: Vec<String>,

    /// Do not add the org.opencontainers.image.source and .revision annotations taken from
    /// the git checkout that holds CONTEXT (remote `origin`, credentials removed; HEAD).
    #[arg(long = "no-provenance")]
    pub no_provenance: bool,

    /// Working directory (absolute).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// User (and group) the container runs as.
    #[arg(long, value_name = "U[:G]")]
    pub user: Option<String>,

    /// Exposed port (repeatable): 8080, 53/udp, 8000-8010/tcp.
    #[arg(long, value_name = "PORT[/PROTO]")]
    pub expose: Vec<String>,

    /// Target platforms: os/arch[/variant],… or `all` (every platform of the base).
    /// Default: the host's platform.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub platform: Vec<String>,

    /// Dockerfile build argument (repeatable); NAME alone takes the value from the
    /// environment, as docker build does.
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_arg: Vec<String>,

    /// Dockerfile stage to build.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Trust this CA certificate (PEM) for every registry (repeatable), on top of system
    /// roots and /etc/docker/certs.d/<host:port>/, /etc/containers/certs.d/<host:port>/.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,

    /// Skip TLS verification for HOST[:PORT], falling back to plain HTTP on a TLS or connect
    /// failure (repeatable). Loopback registries may use plain HTTP without this flag.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,

    /// Write the top-level digest (the index when several platforms) to FILE.
    #[arg(long = "digest-file", value_name = "FILE")]
    pub digest_file: Option<PathBuf>,

    /// Write a JSON description of the result to FILE (schema in README.md).
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// Print nothing on stderr on success; stdout keeps the `<dest>@sha256:…` lines.
    #[arg(short, long)]
    pub quiet: bool,

    /// More detail on stderr (-v steps, -vv requests; credentials are never shown).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,

    /// Compression level (gzip 1-9, default 1; zstd 1-19, default 3).
    #[arg(long = "compression-level", value_name = "N")]
    pub compression_level: Option<u32>,

    /// Do not reuse cached compressed layer members.
    #[arg(long = "no-cache")]
    pub no_cache: bool,

    /// Parallel jobs (compression threads, concurrent uploads). Default: number of cores.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,

    /// Split each layer over twice SIZE (e.g. 32M) into parts of about SIZE, cut where an
    /// edit changes one part only: a rebuild re-uploads that part, not the whole COPY.
    #[arg(long = "split-layers", value_name = "SIZE")]
    pub split_layers: Option<String>,

    /// Keep at most SIZE (e.g. 20G) of blobs in the cache: after the build, the least
    /// recently used go, never this build's, and none while another build uses the cache.
    #[arg(
        long = "cache-max-size",
        value_name = "SIZE",
        env = "OCIBUILD_CACHE_MAX_SIZE",
        default_value = "10G"
    )]
    pub cache_max_size: String,
}

/// An error in the user's flags or environment (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn run(args: &BuildArgs) -> anyhow::Result<()> {
    let progress = Progress::new(args.quiet, args.verbose);
    let destinations = args
        .tags
        .iter()
        .map(|t| Destination::parse(t).map_err(|e| UsageError(format!("-t {t}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = settings(args, destinations)?;
    let automatic = automatic_annotations(args, &settings, &progress);
    let recipe = recipe(args, automatic)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(pipeline::build(&recipe, &settings, &progress));
    // After an error, compression still running for layers nobody will push must not
    // hold the exit (dropping the runtime would wait for it).
    runtime.shutdown_background();
    report(args, &outcome?, &progress)
}

/// `created` (from SOURCE_DATE_EPOCH, like the config's) and, unless `--no-provenance`,
/// `source`/`revision` from git, as `K=V` strings to put before the user's `--annotation`s
/// (the later of two equal keys wins, so the user's do).
fn automatic_annotations(
    args: &BuildArgs,
    settings: &BuildSettings,
    progress: &Progress,
) -> Vec<String> {
    let git = if args.no_provenance {
        None
    } else {
        ocibuild::provenance::detect(&args.context)
    };
    if let Some(g) = &git {
        progress.debug(format_args!(
            "git checkout: source {}, revision {}",
            g.url.as_deref().unwrap_or("(no remote)"),
            g.revision.as_deref().unwrap_or("(no commit)")
        ));
    }
    let created = ocibuild::image::time::rfc3339(settings.source_date_epoch);
    ocibuild::provenance::annotations(&created, git.as_ref())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn recipe(args: &BuildArgs, automatic: Vec<String>) -> anyhow::Result<Frontend> {
    let overrides = Overrides {
        entrypoint: args.entrypoint.clone(),
        cmd: args.cmd.clone(),
        env: args.env.clone(),
        labels: args.label.clone(),
        annotations: automatic
            .into_iter()
            .chain(args.annotation.clone())
            .collect(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        expose: args.expose.clone(),
    };
    if let (Some(_), Some(from)) = (&args.file, &args.from) {
        return Err(UsageError(format!(
            "--from {from} is directory mode and -f is Dockerfile mode; the Dockerfile's FROM \
             names the base (use --build-arg with an ARG to make it configurable)"
        ))
        .into());
    }
    let dockerfile = args.file.clone().or_else(|| {
        if args.from.is_some() {
            return None;
        }
        ["Dockerfile", "Containerfile"]
            .iter()
            .map(|n| args.context.join(n))
            .find(|p| p.is_file())
    });
    if let Some(dockerfile) = dockerfile {
        let opts = DockerfileOptions {
            context: args.context.clone(),
            dockerfile,
            build_args: build_args(&args.build_arg)?,
            target_stage: args.target.clone(),
            overrides,
        };
        // Parse now so Dockerfile and flag mistakes are reported before any network access
        // (what depends on the base images, such as their ENV, is checked once they are
        // known).
        dockerfile::check(&opts, &Platform::host())?;
        return Ok(Frontend::Dockerfile(opts));
    }
    if !args.build_arg.is_empty() || args.target.is_some() {
        return Err(UsageError(format!(
            "--build-arg and --target only apply to a Dockerfile build, and there is no \
             Dockerfile or Containerfile in {}{}",
            args.context.display(),
            if args.from.is_some() {
                " (and --from selects directory mode)"
            } else {
                ""
            }
        ))
        .into());
    }
    let opts = DirectoryOptions {
        context: args.context.clone(),
        from: args.from.clone(),
        dest: args.dest.clone(),
        overrides,
    };
    // Validate now so flag mistakes are reported before any network access.
    directory::recipe(&opts)?;
    Ok(Frontend::Directory(opts))
}

/// `--build-arg K=V`, or `K` alone to take the value from the environment (Docker's rule;
/// an unset variable leaves the ARG's default).
fn build_args(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for a in raw {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(a) {
                Ok(v) => (a.clone(), v),
                Err(_) => continue,
            },
        };
        if k.is_empty() {
            return Err(UsageError(format!("--build-arg {a:?}: expected NAME=VALUE")).into());
        }
        out.push((k, v));
    }
    Ok(out)
}

fn settings(args: &BuildArgs, destinations: Vec<Destination>) -> anyhow::Result<BuildSettings> {
    let platforms = super::platforms::request(&args.platform, &destinations)?;
    let compression = match args.compression {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
    };
    let (name, max) = match compression {
        Compression::Gzip => ("gzip", 9),
        Compression::Zstd => ("zstd", 19),
    };
    if let Some(level) = args.compression_level.filter(|l| !(1..=max).contains(l)) {
        return Err(UsageError(format!(
            "--compression-level {level}: {name} levels are 1 to {max}"
        ))
        .into());
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = match args.jobs {
        Some(0) => return Err(UsageError("--jobs must be at least 1".into()).into()),
        Some(n) => n,
        None => cores,
    };
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u64>().map_err(|_| {
            UsageError(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
            ))
        })?,
        _ => 0,
    };
    let docker_config_dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
    Ok(BuildSettings {
        destinations,
        platforms,
        codec: Codec::new(compression, args.compression_level),
        jobs,
        no_cache: args.no_cache,
        cache_dir: BlobCache::default_root(),
        registry: RegistryOptions {
            insecure: args.insecure_registry.clone(),
            ca_certs: args.ca_cert.clone(),
            docker_config_dir,
            jobs: jobs.max(4),
        },
        source_date_epoch,
        split_layers: args
            .split_layers
            .as_deref()
            .map(super::size::split_size)
            .transpose()?,
        cache_max_size: super::size::cache_size(&args.cache_max_size)?,
    })
}

fn report(args: &BuildArgs, outcome: &BuildOutcome, progress: &Progress) -> anyhow::Result<()> {
    if let Some(path) = &args.digest_file {
        output::write_file("--digest-file", path, &output::digest_file(outcome))?;
    }
    if let Some(path) = &args.metadata_file {
        output::write_file("--metadata-file", path, &output::metadata(outcome))?;
    }
    progress.summary(output::summary(outcome, progress.elapsed()));
    for d in &outcome.destinations {
        output::print_line(&format!("{}@{}", d.destination, d.digest));
    }
    Ok(())
}
