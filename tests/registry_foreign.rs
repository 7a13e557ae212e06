//! Issue 4: a base image whose layer is foreign (Docker's
//! `rootfs.foreign.diff.tar.gzip`, only reachable through its descriptor's `urls`). The
//! registry (configured to accept such manifests) never has the blob: a registry
//! destination keeps the descriptor without pushing it, a file destination fetches it from
//! the URL — a plain web server, sent no credentials.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::custom_registry::{CustomRegistry, Extra};
use common::fixture::{file, layer_tar_gz};
use common::fs::write_app_context;
use common::{TestEnv, expect_dest_lines, sha256_digest};
use serde_json::{Value, json};

const FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Serves `body` for every GET; records each request's head.
fn web_server(body: Vec<u8>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = String::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head += &line;
            }
            log.lock().unwrap().push(head);
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = conn.write_all(&body);
        }
    });
    (port, seen)
}

/// One raw HTTP/1.1 request to the plain registry: (status, headers, body).
fn http(port: u16, method: &str, target: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let headers = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    (status, headers)
}

fn upload(port: u16, repo: &str, blob: &[u8]) -> String {
    let digest = sha256_digest(blob);
    let (status, headers) = http(port, "POST", &format!("/v2/{repo}/blobs/uploads/"), "", &[]);
    assert_eq!(status, 202, "{headers}");
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let path = location
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap_or(&location)
        .to_string();
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, headers) = http(
        port,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        "application/octet-stream",
        blob,
    );
    assert_eq!(status, 201, "{headers}");
    digest
}

#[test]
fn foreign_base_layer_is_referenced_for_a_registry_and_fetched_for_a_layout() {
    let env = TestEnv::new();
    let reg = CustomRegistry::start(&Extra {
        tls: vec![],
        auth: None,
        raw: Some(
            "validation:\n  manifests:\n    urls:\n      allow:\n        - '^http://127\\.0\\.0\\.1:'\n"
                .into(),
        ),
    });
    let port = reg.port();
    let (layer, diff_id) = layer_tar_gz(&[file("etc/foreign", "from elsewhere\n", 0o644)]);
    let (web, seen) = web_server(layer.clone());
    let layer_digest = sha256_digest(&layer);
    let url = format!("http://127.0.0.1:{web}/layers/{layer_digest}");
    let config = serde_json::to_vec(&json!({
        "architecture": common::fixture::host_arch(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap();
    let config_digest = upload(port, "base", &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": FOREIGN,
            "size": layer.len(),
            "digest": layer_digest,
            "urls": [url],
        }],
    }))
    .unwrap();
    let (status, headers) = http(
        port,
        "PUT",
        "/v2/base/manifests/1",
        "application/vnd.docker.distribution.manifest.v2+json",
        &manifest,
    );
    assert_eq!(
        status, 201,
        "the registry accepts the foreign base: {headers}"
    );

    let ctx = env.work().join("ctx");
    write_app_context(&ctx);
    let base = format!("127.0.0.1:{port}/base:1");
    let dest = format!("127.0.0.1:{port}/app:1");
    let layout = env.work().join("layout");
    let oci = format!("oci:{}:app", layout.display());
    let out = env.run(&[
        ctx.to_str().unwrap(),
        "--from",
        &base,
        "-t",
        &dest,
        "-t",
        &oci,
    ]);
    out.assert_success();
    expect_dest_lines(&out, &[&dest, &oci]);

    // The registry destination names the foreign layer, with its URL, and has no blob.
    let (status, _) = http(
        port,
        "HEAD",
        &format!("/v2/app/blobs/{layer_digest}"),
        "",
        &[],
    );
    assert_eq!(status, 404, "a foreign layer is not pushed");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"GET /v2/app/manifests/1 HTTP/1.0\r\n\
          Accept: application/vnd.docker.distribution.manifest.v2+json\r\n\r\n",
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let pushed: Value = serde_json::from_str(buf.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(pushed["layers"][0]["digest"], layer_digest.as_str());
    assert_eq!(pushed["layers"][0]["urls"][0], url.as_str());

    // The layout holds the layer, fetched from the web server without credentials.
    let blob = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(layer_digest.trim_start_matches("sha256:")),
    )
    .expect("the foreign layer is in the layout");
    assert_eq!(sha256_digest(&blob), layer_digest);
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty(), "fetched from its URL");
    assert!(
        requests
            .iter()
            .all(|r| !r.to_ascii_lowercase().contains("authorization")),
        "{requests:?}"
    );
}
