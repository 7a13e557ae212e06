//! The compression floor for bench/run.sh: every file of a context read into memory, cut
//! into 4 MiB members, compressed on N threads with each candidate codec; prints one line
//! per codec (`name seconds MB/s ratio`) and last `floor <seconds>`, the fastest deflate.
//!
//! Usage: `ocibuild-bench-floor <DIR> [THREADS]` (default: all cores).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const MEMBER: usize = 4 << 20;

fn collect(dir: &Path, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let t = e.file_type()?;
        if t.is_dir() {
            collect(&e.path(), out)?;
        } else if t.is_file() {
            // A 512-byte header stand-in so the stream looks like a tar.
            out.extend_from_slice(&[0u8; 512]);
            out.extend_from_slice(&std::fs::read(e.path())?);
        }
    }
    Ok(())
}

type Codec = fn(&[u8]) -> usize;

fn zlib_rs(level: u32) -> impl Fn(&[u8]) -> usize {
    move |data| {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::new(level),
        );
        let _ = enc.write_all(data);
        enc.finish().map(|v| v.len()).unwrap_or(0)
    }
}

fn libdeflate(level: i32) -> impl Fn(&[u8]) -> usize {
    move |data| {
        let Ok(lvl) = libdeflater::CompressionLvl::new(level) else {
            return 0;
        };
        let mut c = libdeflater::Compressor::new(lvl);
        let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
        c.gzip_compress(data, &mut out).unwrap_or(0)
    }
}

fn zstd_level(level: i32) -> impl Fn(&[u8]) -> usize {
    move |data| {
        zstd::bulk::compress(data, level)
            .map(|v| v.len())
            .unwrap_or(0)
    }
}

fn run(data: &[u8], threads: usize, f: &(dyn Fn(&[u8]) -> usize + Sync)) -> (f64, usize) {
    let chunks: Vec<&[u8]> = data.chunks(MEMBER).collect();
    let next = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = chunks.get(i) else { break };
                    total.fetch_add(f(c), Ordering::Relaxed);
                }
            });
        }
    });
    (start.elapsed().as_secs_f64(), total.into_inner())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: ocibuild-bench-floor <DIR> [THREADS]");
        std::process::exit(2);
    };
    let threads = args
        .get(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let mut data = Vec::new();
    if let Err(e) = collect(Path::new(dir), &mut data) {
        eprintln!("cannot read {dir}: {e}");
        std::process::exit(1);
    }
    let _: Option<Codec> = None;
    let candidates: Vec<(&str, bool, Box<dyn Fn(&[u8]) -> usize + Sync>)> = vec![
        ("gzip-zlib-rs-1", true, Box::new(zlib_rs(1))),
        ("gzip-zlib-rs-6", false, Box::new(zlib_rs(6))),
        ("gzip-libdeflate-1", true, Box::new(libdeflate(1))),
        ("gzip-libdeflate-2", false, Box::new(libdeflate(2))),
        ("gzip-libdeflate-6", false, Box::new(libdeflate(6))),
        ("zstd-1", false, Box::new(zstd_level(1))),
        ("zstd-3", false, Box::new(zstd_level(3))),
    ];
    let mb = data.len() as f64 / 1e6;
    println!(
        "input {mb:.1} MB, {threads} threads, members of {} MiB",
        MEMBER >> 20
    );
    let mut floor = f64::MAX;
    for (name, deflate_floor, f) in &candidates {
        let (secs, out) = run(&data, threads, f.as_ref());
        println!(
            "{name:<20} {secs:>7.3} s {:>8.1} MB/s  ratio {:.3}",
            mb / secs,
            out as f64 / data.len() as f64
        );
        if *deflate_floor {
            floor = floor.min(secs);
        }
    }
    println!("floor {floor:.3}");
}
