//! The published Threekit client, `@threekit/rest-api` 0.2.2 from npm,
//! unchanged, against the real binary: `tests/threekit_client/check.mjs`
//! calls every method of the services layercake implements, parses every
//! answer with the client's own zod schemas and fetches every URL the
//! client builds or an answer carries. The client speaks https only, so
//! the script puts a loopback TLS proxy in front (a throwaway certificate
//! made here with openssl) that layercake trusts for X-Forwarded-Proto and
//! -Host (`http.trusted_proxies`). `.ci/run` runs `npm ci` in
//! `tests/threekit_client`.

mod common;

use common::start_binary;
use std::path::Path;
use std::process::Command;

#[test]
fn the_published_client_works_unchanged_and_every_answer_fits_its_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script_dir = root.join("tests/threekit_client");
    assert!(
        script_dir.join("node_modules/@threekit/rest-api").is_dir(),
        "run `npm ci --prefix tests/threekit_client` first (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let config = dir.path().join("layercake.toml");
    // Webhook addresses on loopback (a closed port): no delivery can leave
    // the machine.
    std::fs::write(
        &config,
        "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n[webhooks]\nallow_private_addresses = true\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let created = Command::new(env!("CARGO_BIN_EXE_layercake"))
        .args(["token", "create", "--name", "threekit-client", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .expect("run layercake token create");
    assert!(created.status.success(), "token create failed");
    let token = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&created.stderr);
    let org = stderr
        .split(" for org ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the org in token create's message")
        .to_string();

    let (_serve, line) = start_binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &config,
        &data,
        "open http://",
    );
    let upstream = line
        .split("open http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|a| format!("http://{a}"))
        .expect("address in the log line");

    let run = Command::new("node")
        .arg(script_dir.join("check.mjs"))
        .current_dir(&script_dir)
        .env("LC_UPSTREAM", &upstream)
        .env("LC_TOKEN", &token)
        .env("LC_ORG", &org)
        .env("LC_ASSET", common::SOFA)
        .env("LC_TLS_KEY", &key)
        .env("LC_TLS_CERT", &cert)
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .output()
        .expect("run node (Node.js 20+)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(run.status.success(), "the client check failed:\n{stderr}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("threekit-client: "))
        .expect("the summary line");
    let number = |what: &str| -> u64 {
        summary
            .split(", ")
            .find_map(|part| {
                part.trim_start_matches("threekit-client: ")
                    .strip_suffix(what)
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no \"{what}\" in {summary}"))
    };
    assert_eq!(number("failures"), 0, "{summary}");
    assert!(number("calls") >= 45, "{summary}");
    assert!(number("schema checks") >= 30, "{summary}");
    assert!(number("URL fetches") >= 7, "{summary}");
}
