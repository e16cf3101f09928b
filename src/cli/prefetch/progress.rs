//! Following the work of a prefetch run: the renders of each asset's batch
//! jobs (polled, cancelled on Ctrl-C) and the composites (made a few at a
//! time), each with a progress bar on a terminal or plain lines elsewhere.

use super::backend::{self, Backend, Counts, Made};
use super::{Image, PrefetchArgs, Totals, Work};
use crate::catalog::Asset;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A progress bar (on stderr) when stdout is a terminal; plain lines on
/// stderr, when the count moves and at most every 2 s, elsewhere (logs, CI).
struct Meter {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    started: Instant,
    last_line: Instant,
    last_done: Option<u64>,
}

impl Meter {
    fn new(what: &'static str, total: u64) -> Meter {
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:40}] {pos}/{len} {rate} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                // `27.0/s`, not indicatif's `27.0167/s`.
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1}/s", s.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            b.set_prefix(what);
            b
        });
        Meter {
            bar,
            what,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
            last_done: None,
        }
    }

    fn set(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let moved = self.last_done != Some(done);
        let first = self.last_done.is_none();
        if !(first
            || (moved
                && (done == self.total || self.last_line.elapsed() >= Duration::from_secs(2))))
        {
            return;
        }
        self.last_line = Instant::now();
        self.last_done = Some(done);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.total - done.min(self.total)) as f64 / rate
        } else {
            0.0
        };
        eprintln!(
            "{}: {done}/{} ({rate:.1}/s, ETA {eta:.0} s)",
            self.what, self.total
        );
        let _ = std::io::stderr().flush();
    }

    /// A message that does not garble the bar.
    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// Where the jobs are, summed; a failed poll is retried for a while (a
/// server restarting, a timeout) before the run gives up.
async fn poll(
    backend: &dyn Backend,
    asset: &Asset,
    jobs: &[Uuid],
) -> anyhow::Result<backend::Progress> {
    let mut sum = backend::Progress {
        stopped: true,
        ..Default::default()
    };
    for job in jobs {
        let mut tries = 0;
        let p = loop {
            match backend.progress(asset, *job).await {
                Ok(p) => break p,
                Err(e) if tries < 30 => {
                    tries += 1;
                    eprintln!("job {job}: {e:#}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        sum.total += p.total;
        sum.successes += p.successes;
        sum.failures += p.failures;
        sum.stopped &= p.stopped;
    }
    Ok(sum)
}

/// Queues and follows one asset's renders; `false` when interrupted (the
/// jobs are cancelled: what is rendered stays).
pub(super) async fn render(
    backend: &dyn Backend,
    w: &Work,
    planned: Counts,
    totals: &mut Totals,
    interrupt: &CancellationToken,
) -> anyhow::Result<bool> {
    if planned.tasks == 0 {
        // Nothing missing when planned: queue no (empty) job.
        return Ok(true);
    }
    let (counts, jobs) = w.batch(backend, false).await?;
    if jobs.is_empty() {
        return Ok(true);
    }
    let mut meter = Meter::new("renders", counts.tasks);
    loop {
        let p = poll(backend, &w.asset, &jobs).await?;
        meter.set(p.successes + p.failures);
        if p.stopped {
            meter.finish();
            totals.rendered += p.successes;
            totals.render_failures += p.failures;
            if p.failures > 0 {
                meter.println(&format!(
                    "{} of {} renders failed: see GET /api/jobs/{{id}} for {jobs:?}",
                    p.failures, p.total
                ));
            }
            return Ok(true);
        }
        tokio::select! {
            () = interrupt.cancelled() => {
                meter.finish();
                meter.println("interrupted: cancelling the queued renders; finished ones are kept");
                for job in &jobs {
                    backend.cancel(&w.asset, *job).await?;
                }
                let p = poll(backend, &w.asset, &jobs).await?;
                totals.rendered += p.successes;
                totals.render_failures += p.failures;
                return Ok(false);
            }
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Encodes one asset's composites; `false` when interrupted.
pub(super) async fn composites(
    backend: &dyn Backend,
    args: &PrefetchArgs,
    w: &Work,
    images: &[Image],
    totals: &mut Totals,
    interrupt: &CancellationToken,
) -> bool {
    let mut meter = Meter::new("composites", images.len() as u64);
    let mut stream = futures::stream::iter(
        images
            .iter()
            .map(|i| async move { (i, backend.composite(&w.asset, &i.url).await) }),
    )
    .buffer_unordered(args.concurrency.max(1));
    let mut done = 0;
    loop {
        tokio::select! {
            () = interrupt.cancelled() => {
                meter.finish();
                meter.println("interrupted: composites made so far are kept");
                return false;
            }
            next = stream.next() => match next {
                None => break,
                Some((image, result)) => {
                    done += 1;
                    totals.composites += 1;
                    match result {
                        Ok(Made::Cached) => totals.cached += 1,
                        Ok(Made::Encoded) => totals.encoded += 1,
                        Err(e) => {
                            totals.composite_failures += 1;
                            meter.println(&format!("composite {} failed: {e:#}", image.url));
                        }
                    }
                    meter.set(done);
                }
            }
        }
    }
    meter.finish();
    true
}
