//! `ocibuild login` and `ocibuild logout`: flags → `Registries::login`/`logout` → a line on
//! stderr. The password is only ever read from stdin, never from the command line.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use ocibuild::progress::Progress;
use ocibuild::registry::{Registries, RegistryOptions};

use super::build::UsageError;

/// `ocibuild login <REGISTRY> -u USER --password-stdin`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port] (Docker Hub: docker.io).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// User name.
    #[arg(short, long, value_name = "USER")]
    pub username: String,

    /// Read the password (or token) from stdin; required, so it never appears in the
    /// process list or shell history.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,

    /// Trust this CA certificate (PEM) for the registry (repeatable).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,

    /// Skip TLS verification for HOST[:PORT] (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,

    /// More detail on stderr (credentials are never shown).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `ocibuild logout <REGISTRY>`
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host[:port] (Docker Hub: docker.io).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
}

/// `$DOCKER_CONFIG`, else `~/.docker` (where `docker login` writes).
fn docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// Verifies the credentials against the registry, then stores them.
pub fn run_login(args: &LoginArgs) -> anyhow::Result<()> {
    if !args.password_stdin {
        return Err(UsageError(
            "give the password on stdin: `echo \"$PASSWORD\" | ocibuild login REGISTRY -u USER \
             --password-stdin`"
                .into(),
        )
        .into());
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password);
    if password.is_empty() {
        return Err(UsageError("the password on stdin is empty".into()).into());
    }
    if args.username.is_empty() {
        return Err(UsageError("the user name (-u) is empty".into()).into());
    }
    let progress = Progress::new(false, args.verbose);
    let registries = Registries::new(
        RegistryOptions {
            insecure: args.insecure_registry.clone(),
            ca_certs: args.ca_cert.clone(),
            docker_config_dir: docker_config_dir(),
            jobs: 0,
        },
        progress.clone(),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let place = runtime.block_on(registries.login(&args.registry, &args.username, password))?;
    progress.info(format_args!(
        "login succeeded: credentials for {} stored in {place}",
        args.registry
    ));
    Ok(())
}

/// Removes the stored credentials for the registry (not an error when there were none).
pub fn run_logout(args: &LogoutArgs) -> anyhow::Result<()> {
    let progress = Progress::new(false, 0);
    let registries = Registries::new(
        RegistryOptions {
            docker_config_dir: docker_config_dir(),
            ..RegistryOptions::default()
        },
        progress.clone(),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if runtime.block_on(registries.logout(&args.registry))? {
        progress.info(format_args!("removed the login for {}", args.registry));
    } else {
        progress.info(format_args!("not logged in to {}", args.registry));
    }
    Ok(())
}
