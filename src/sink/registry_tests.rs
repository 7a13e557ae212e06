//! Tests of `registry.rs`: growing uploads commit only complete blobs; foreign layers.

use super::*;
use crate::image::Descriptor;

/// A layer uploaded while it is written: the registry gets exactly the bytes, under
/// the digest known only at the end; a build that stops half-way commits nothing, nor
/// does a blob made only of cached members (most likely pushed before), and neither
/// leaves its upload session open.
#[tokio::test(flavor = "multi_thread")]
async fn growing_upload_commits_only_complete_fresh_blobs() {
    use crate::layer::spool;
    use std::io::Write as _;
    let registry = super::super::testkit::LiveRegistry::start();
    let regs = Registries::new(Default::default(), Progress::silent()).unwrap();
    let target = Reference::parse(&format!("{}/grow:1", registry.addr)).unwrap();
    let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
    for (complete, fresh) in [(false, true), (true, false), (true, true)] {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let (tap, watch) = spool::channel();
        tap.opened(file.reopen().unwrap());
        let grow = watch.growing();
        let bytes = data.clone();
        let writer = std::thread::spawn(move || {
            let upto = if complete {
                bytes.len()
            } else {
                bytes.len() / 2
            };
            for piece in bytes[..upto].chunks(1 << 20) {
                file.write_all(piece).unwrap();
                tap.wrote(piece.len() as u64, !fresh);
            }
            if complete {
                tap.finished(&Digest::of(&bytes), bytes.len() as u64);
            }
        });
        let pushed = regs.push_blob_growing(&target, grow).await;
        writer.join().unwrap();
        let desc = Descriptor::new("x", Digest::of(&data), data.len() as u64);
        let fetched = regs.fetch_blob(&target, &desc, 1 << 30).await;
        if complete && fresh {
            assert_eq!(pushed.unwrap(), (desc.digest.clone(), desc.size));
            assert_eq!(fetched.unwrap(), data);
        } else {
            let err = pushed.unwrap_err().to_string();
            if complete {
                assert!(err.contains("only cached members"), "{err}");
            }
            assert!(fetched.is_err(), "nothing committed");
        }
        assert_eq!(registry.open_uploads("grow"), 0, "{complete} {fresh}");
    }
}

#[test]
fn foreign_layers() {
    let mut d = Descriptor::new(
        crate::image::media::DOCKER_LAYER_FOREIGN,
        Digest::of(b"x"),
        1,
    );
    let blob = |d: &Descriptor| Blob {
        descriptor: d.clone(),
        source: BlobSource::Bytes(Default::default()),
    };
    assert!(!is_foreign(&blob(&d)));
    d.urls = Some(vec!["https://example.com/layer".into()]);
    assert!(is_foreign(&blob(&d)));
    d.media_type = crate::image::media::DOCKER_LAYER_GZIP.into();
    assert!(!is_foreign(&blob(&d)));
}
