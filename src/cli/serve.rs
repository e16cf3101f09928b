//! `layercake serve`: logging, runtime, listener, signals.

use crate::app::App;
use crate::config::Settings;
use anyhow::Context;
use std::sync::Arc;

pub fn run(settings: Settings) -> anyhow::Result<()> {
    init_tracing(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listen = settings.http.listen.clone();
        let app = Arc::new(App::build(settings).await?);
        let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        if app.tokens().development_mode().await? {
            if !addr.ip().is_loopback() {
                anyhow::bail!("no API token exists, so this server is in development mode (every request acts for the default org): it listens on loopback only, not on {addr}. Create a token with `layercake token create`, or listen on 127.0.0.1.");
            }
            tracing::warn!("DEVELOPMENT MODE: no API token exists; every request acts for the default org without credentials. Create one with `layercake token create` to turn authentication on.");
        }
        for a in app.catalog().snapshot().assets() {
            tracing::info!(asset = %a.id, name = %a.name, version = a.version, layers = a.layers.len(), views = a.views.len(), "asset loaded");
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let ops = if app.settings().http.ops_listen.is_empty() {
            None
        } else {
            let at = app.settings().http.ops_listen.clone();
            let ops = tokio::net::TcpListener::bind(&at).await.with_context(|| format!("cannot listen on {at} (http.ops_listen)"))?;
            tracing::info!(addr = %ops.local_addr()?, "ops endpoints (/metrics, /healthz, /readyz) listening");
            Some(tokio::spawn(crate::http::serve_ops(ops, Arc::clone(&app), stop.clone().cancelled_owned())))
        };
        tracing::info!(%addr, store = app.store().url(), "layercake listening; open http://{addr}/");
        let on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            on_signal.cancel();
        });
        crate::http::serve(listener, app, stop.cancelled_owned()).await?;
        if let Some(ops) = ops {
            ops.await??;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

pub(super) fn init_tracing(s: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&s.log.level));
    // Colour only for a terminal: a log file or a pipe gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour);
    if s.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
