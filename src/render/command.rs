//! The `command` backend: one process per render.
//!
//! The program gets the request (see `external`) as JSON on stdin and
//! writes the PNG to stdout. A non-zero exit, a timeout or unusable output
//! fails the render; the tail of stderr goes into the error, and so into
//! the run's record. The program runs in a process group of its own, killed
//! as a whole when the render ends or times out, so a script's children do
//! not outlive it; its environment is a short allow-list (`pass_env` adds
//! to it), never the server's credentials.

use super::external::{decode_output, request_json};
use super::{RenderError, RenderRequest, Renderer};
use crate::compose::LayerImage;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Bytes of stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Variables a render program always gets (when the server has them).
const BASE_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"];

#[derive(Debug, Clone)]
pub struct CommandRenderer {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
    max_pixels: u64,
    max_output_bytes: usize,
}

impl CommandRenderer {
    /// `command` is the program and its arguments.
    ///
    /// # Errors
    /// A message when `command` is empty.
    pub fn new(
        command: Vec<String>,
        pass_env: &[String],
        timeout: Duration,
        max_pixels: u64,
        max_output_bytes: usize,
    ) -> Result<CommandRenderer, String> {
        let mut it = command.into_iter();
        let program = it
            .next()
            .filter(|p| !p.is_empty())
            .ok_or("a command backend needs `command = [\"program\", \"args\"...]`")?;
        Ok(CommandRenderer {
            program,
            args: it.collect(),
            env: environment(pass_env),
            timeout,
            max_pixels,
            max_output_bytes,
        })
    }

    async fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RenderError> {
        let mut command = Command::new(&self.program);
        die_with_parent(&mut command);
        let mut child = command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RenderError::Failed(format!("cannot start {}: {e}", self.program)))?;
        // Kills the whole group on every way out: done, failed, timed out, dropped.
        let _group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(KillGroup);
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RenderError::Failed("the child's pipes are missing".into()));
        };
        let limit = self.max_output_bytes;
        let write = async move {
            // A program that does not read its input is its own business.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let work = async {
            let ((), out, err) =
                tokio::join!(write, read_limited(stdout, limit), read_tail(stderr));
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RenderError::Timeout(self.timeout))?;
        let status = status
            .map_err(|e| RenderError::Failed(format!("waiting for {}: {e}", self.program)))?;
        let stderr = String::from_utf8_lossy(&err).trim().to_string();
        // Too much output kills the program with SIGPIPE: report the cause.
        if let Err(e) = &out {
            return Err(RenderError::Rejected(format!("{}: {e}", self.program)));
        }
        if !status.success() {
            return Err(RenderError::Failed(format!(
                "{} exited with {status}{}{stderr}",
                self.program,
                if stderr.is_empty() { "" } else { ": " }
            )));
        }
        out.map_err(|e| RenderError::Failed(format!("{}: {e}", self.program)))
    }
}

/// A render program's environment: [`BASE_ENV`] and `pass_env`, from the
/// server's own where set.
pub(super) fn environment(pass_env: &[String]) -> Vec<(String, String)> {
    BASE_ENV
        .iter()
        .map(|s| (*s).to_string())
        .chain(pass_env.iter().cloned())
        .filter_map(|k| std::env::var(&k).ok().map(|v| (k, v)))
        .collect()
}

/// Kills a process group when dropped.
pub(super) struct KillGroup(pub(super) i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        // SAFETY: killpg has no memory effects; a group that is gone is ESRCH.
        unsafe {
            libc::killpg(self.0, libc::SIGKILL);
        }
    }
}

async fn read_limited(mut r: impl AsyncRead + Unpin, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(format!("output is over the limit of {limit} bytes"));
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Reads everything, keeping the last `STDERR_TAIL` bytes.
async fn read_tail(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    tail
}

#[async_trait::async_trait]
impl Renderer for CommandRenderer {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let input = serde_json::to_vec(&request_json(req))
            .map_err(|e| RenderError::Failed(format!("request encoding: {e}")))?;
        let png = self.run(input).await?;
        let max = self.max_pixels;
        let name = self.program.clone();
        tokio::task::spawn_blocking(move || decode_output(&name, &png, max))
            .await
            .map_err(|e| RenderError::Failed(format!("decode task: {e}")))?
    }
}

/// A render program dies with the process that started it, even when that
/// process is killed with SIGKILL (nothing of ours runs then): otherwise it
/// would go on rendering after another worker took its task over. Only the
/// program itself gets the signal: helpers it forks are its business (it
/// can `exec` the real renderer). Linux sends it when the *thread* that
/// forked exits, so renders are spawned from runtime worker threads, which
/// live as long as the process, never from a blocking-pool thread.
pub(super) fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made (prctl, getppid, _exit), and nothing is allocated.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl took effect.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
