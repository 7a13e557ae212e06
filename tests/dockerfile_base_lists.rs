//! An image never depends on what the cache holds: with or without a base's file list
//! kept by an earlier build (lists are fetched only when a step needs one), the same
//! Dockerfile gives the same digest — a CI job with an empty cache and a laptop agree.

mod common;

use common::fixture::{self, host_platform};
use common::{ImageSpec, MediaTypes, Registry, TestEnv, expect_dest_lines, push_fixture};

/// Builds `dockerfile` (context: `x.txt`, `lib/y.txt`) in `env` into an OCI layout;
/// returns the image digest.
fn build(env: &TestEnv, name: &str, dockerfile: &str) -> String {
    let ctx = env.work().join(name);
    std::fs::create_dir_all(ctx.join("lib")).unwrap();
    std::fs::write(ctx.join("x.txt"), "x\n").unwrap();
    std::fs::write(ctx.join("lib/y.txt"), "y\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let dest = format!("oci:{}:t", env.work().join(format!("{name}-out")).display());
    let out = env.run(&[ctx.to_str().unwrap(), "-t", &dest]);
    expect_dest_lines(&out, &[&dest])[0].clone()
}

fn lists_kept(env: &TestEnv) -> usize {
    std::fs::read_dir(env.cache_home().join("ocibuild/lists")).map_or(0, |d| d.count())
}

#[test]
fn a_cached_base_file_list_does_not_change_the_image() {
    let reg = Registry::start();
    let setup = TestEnv::new();
    // The standard base without its ONBUILD RUN trigger.
    let mut spec = ImageSpec::base(&host_platform());
    spec.extra_config = serde_json::json!({});
    let layout = setup.work().join("base-layout");
    fixture::write_image(&layout, "base", &spec, MediaTypes::Oci);
    let base = reg.reference("base:1");
    push_fixture(&layout, "base", &base);
    // A build whose COPY puts a file where the base may have a directory: the base's
    // layers are read once and their file lists kept in this cache.
    let warm = TestEnv::new();
    build(
        &warm,
        "warmup",
        &format!("FROM {base}\nCOPY x.txt /srv/data\n"),
    );
    assert!(lists_kept(&warm) > 0, "the warm-up build kept no file list");

    for (i, steps) in [
        "WORKDIR /app\nCOPY . .\n",
        "COPY . /app/\n",
        "WORKDIR /srv/app/data\nCOPY x.txt ./\n",
        "COPY lib /opt/tool/lib\nCOPY x.txt /opt/tool/\n",
        "WORKDIR /home/app\n",
        "COPY --chown=1000:1000 x.txt /data/in/\n",
    ]
    .iter()
    .enumerate()
    {
        let dockerfile = format!("FROM {base}\n{steps}");
        let name = format!("df{i}");
        let cold = TestEnv::new();
        let without = build(&cold, &name, &dockerfile);
        let with = build(&warm, &name, &dockerfile);
        assert_eq!(with, without, "{dockerfile}");
    }
}
