//! A real PostgreSQL for the tests, on 127.0.0.1 only.
//!
//! `.ci/run` starts one shared server (`scripts/postgres.sh`) and exports
//! `LC_TEST_POSTGRES_URL`; [`shared`] uses it, or starts a private one in a
//! temp dir (stopped when the guard drops). Every test then works in a
//! database of its own ([`super::scratch_postgres`]).

use std::path::Path;
use std::process::Command;

/// A private server, stopped on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh")
}

/// The shared server's URL, or a private server's and its guard.
pub fn shared() -> (String, Option<Postgres>) {
    if let Ok(url) = std::env::var("LC_TEST_POSTGRES_URL") {
        return (url, None);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("port").port()
    };
    let out = Command::new(script())
        .arg("start")
        .arg(dir.path())
        .arg(port.to_string())
        .output()
        .expect("run scripts/postgres.sh");
    assert!(
        out.status.success(),
        "scripts/postgres.sh start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("LAYERCAKE_META__URL=").map(str::to_string))
        .expect("scripts/postgres.sh prints the URL");
    (url, Some(Postgres { dir }))
}
