//! Applying one layer tar (gzip, multi-member or not, or plain) onto a directory, with
//! OCI whiteouts (image-spec `layer.md`: `.wh.<name>` deletes, `.wh..wh..opq` hides the
//! lower directory's contents). Ownership is not restored: the uses of a materialized
//! root (COPY --from, passwd lookups) need contents, modes and links only.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::RootfsError;
use super::secure_path::resolve_parent;

/// The tar stream of a layer file: gzip (one member or many), zstd, or plain.
pub fn open_layer(layer: &Path) -> Result<Box<dyn Read>, RootfsError> {
    let io = |source: std::io::Error| RootfsError::Io {
        layer: layer.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 4];
    let mut f = File::open(layer).map_err(io)?;
    let n = f.read(&mut magic).map_err(io)?;
    drop(f);
    let file = BufReader::new(File::open(layer).map_err(io)?);
    Ok(if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(io)?)
    } else {
        Box::new(file)
    })
}

/// Unpacks `layer` (a compressed or plain tar) into `root`.
pub fn apply_layer(root: &Path, layer: &Path) -> Result<(), RootfsError> {
    let io = |source: std::io::Error| RootfsError::Io {
        layer: layer.to_path_buf(),
        source,
    };
    let mut ar = tar::Archive::new(open_layer(layer)?);
    for entry in ar.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.to_string_lossy().to_string();
        let bad = |reason: &str| RootfsError::Entry {
            layer: layer.to_path_buf(),
            entry: path.clone(),
            reason: reason.to_string(),
        };
        let clean = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if clean.is_empty() || clean == "." {
            continue;
        }
        if clean.split('/').any(|c| c == "..") {
            return Err(bad("climbs out of the root with '..'"));
        }
        let name = clean.rsplit('/').next().unwrap_or(&clean).to_string();
        let Some(target) = resolve_parent(root, &clean) else {
            return Err(bad("goes through a symlink loop"));
        };
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = target.parent().unwrap_or(root);
            if hidden == ".wh..opq" {
                clear_dir(dir).map_err(io)?;
            } else {
                remove_any(&dir.join(hidden)).map_err(io)?;
            }
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let mode = entry.header().mode().map_err(io)? & 0o7777;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    remove_any(&target).map_err(io)?;
                    fs::create_dir_all(&target).map_err(io)?;
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(mode | 0o700))
                    .map_err(io)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&target).map_err(io)?;
                let mut out = File::create(&target).map_err(io)?;
                std::io::copy(&mut entry, &mut out).map_err(io)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(io)?
                    .ok_or_else(|| bad("symlink without a target"))?;
                remove_any(&target).map_err(io)?;
                std::os::unix::fs::symlink(link, &target).map_err(io)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(io)?
                    .ok_or_else(|| bad("hard link without a target"))?;
                let link = link.to_string_lossy().trim_start_matches('/').to_string();
                if link.split('/').any(|c| c == "..") {
                    return Err(bad("hard link target climbs out of the root"));
                }
                let Some(src) = resolve_parent(root, &link) else {
                    return Err(bad("hard link target goes through a symlink loop"));
                };
                remove_any(&target).map_err(io)?;
                // A copy, not a link: the materialized root is read, never run.
                fs::copy(&src, &target).map_err(io)?;
            }
            // Devices and FIFOs cannot be created without privileges and are never useful
            // as COPY sources; GNU/PAX metadata records are handled by the tar reader.
            _ => {}
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn clear_dir(dir: &Path) -> std::io::Result<()> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                remove_any(&e?.path())?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, file contents, symlink target); neither: a directory.
    type Spec<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

    fn tar_of(entries: &[Spec<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match (data, link) {
                (Some(d), _) => {
                    h.set_size(d.len() as u64);
                    h.set_entry_type(tar::EntryType::Regular);
                    b.append_data(&mut h, path, *d).unwrap();
                }
                (None, Some(l)) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, l).unwrap();
                }
                (None, None) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_stack_with_whiteouts_and_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir(&root).unwrap();
        let l1 = d.path().join("l1.tar");
        let f = |d: &'static [u8]| Some(d);
        fs::write(
            &l1,
            tar_of(&[
                ("etc/", None, None),
                ("etc/a", f(b"a"), None),
                ("etc/b", f(b"b"), None),
                ("opt/x", f(b"x"), None),
                ("escape", None, Some("/")),
            ]),
        )
        .unwrap();
        apply_layer(&root, &l1).unwrap();
        let l2 = d.path().join("l2.tar");
        fs::write(
            &l2,
            tar_of(&[
                ("etc/.wh.a", f(b""), None),
                ("opt/.wh..wh..opq", f(b""), None),
                ("escape/evil", f(b"e"), None),
            ]),
        )
        .unwrap();
        apply_layer(&root, &l2).unwrap();
        assert!(!root.join("etc/a").exists());
        assert_eq!(fs::read(root.join("etc/b")).unwrap(), b"b");
        assert!(!root.join("opt/x").exists());
        // Written through the link, but clamped into the root.
        assert_eq!(fs::read(root.join("evil")).unwrap(), b"e");
        assert!(!Path::new("/evil").exists());
    }
}
