//! One long-lived Blender process driven by the backend's script: started
//! in its own process group (killed with it), one request per line on its
//! stdin, one answer line back; Blender's own lines are kept (the last
//! few) for error messages.

use super::BlenderSettings;
use crate::render::RenderError;
use crate::render::command::KillGroup;
use serde_json::Value as J;
use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The prefix of the script's answer lines.
const MARK: &str = "@@layercake ";
/// Lines of Blender's own output kept for an error message, and the
/// bytes kept of each.
const TAIL_LINES: usize = 12;
const TAIL_LINE_BYTES: usize = 300;

/// What Blender said lately, for error messages.
pub(super) type Tail = Arc<Mutex<VecDeque<String>>>;

fn remember(tail: &Tail, mut line: String) {
    if line.len() > TAIL_LINE_BYTES {
        let mut end = TAIL_LINE_BYTES;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() == TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line);
}

pub(super) fn recent(tail: &Tail) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    t.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// One Blender process, ready for a request.
pub(super) struct Process {
    pub(super) child: Child,
    _group: Option<KillGroup>,
    pub(super) stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pub(super) tail: Tail,
    pub(super) renders: u32,
}

impl Process {
    /// Starts Blender on the script in `dir` and waits for its hello.
    pub(super) async fn start(
        s: &BlenderSettings,
        env: &[(String, String)],
        dir: &Path,
    ) -> Result<Process, RenderError> {
        let mut command = Command::new(&s.command[0]);
        crate::render::command::die_with_parent(&mut command);
        let mut child = command
            .args(&s.command[1..])
            .args(["-b", "--factory-startup", "-noaudio", "--python"])
            .arg(dir.join("layercake.py"))
            .args(["--", "--serve"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RenderError::Failed(format!("cannot start {}: {e}", s.command[0])))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(KillGroup);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RenderError::Failed("blender's pipes are missing".into()));
        };
        let tail: Tail = Arc::default();
        let errors = Arc::clone(&tail);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "layercake::render::blender", "{line}");
                remember(&errors, line);
            }
        });
        let mut p = Process {
            child,
            _group: group,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            tail,
            renders: 0,
        };
        let hello = p.answer().await?;
        if hello["ready"] != true {
            return Err(RenderError::Failed(format!(
                "blender did not start the script: {hello}"
            )));
        }
        tracing::info!(blender = %hello["blender"], "blender render process started");
        Ok(p)
    }

    /// The next answer line, Blender's own lines remembered on the way.
    pub(super) async fn answer(&mut self) -> Result<J, RenderError> {
        loop {
            match self.stdout.next_line().await {
                Ok(Some(line)) => match line.find(MARK).map(|at| &line[at + MARK.len()..]) {
                    Some(json) => {
                        return serde_json::from_str(json).map_err(|e| {
                            RenderError::Failed(format!("blender answered nonsense ({e}): {json}"))
                        });
                    }
                    None => remember(&self.tail, line),
                },
                Ok(None) => {
                    return Err(RenderError::Failed(format!(
                        "blender exited: {}",
                        recent(&self.tail)
                    )));
                }
                Err(e) => {
                    return Err(RenderError::Failed(format!(
                        "reading blender's output: {e}"
                    )));
                }
            }
        }
    }
}
