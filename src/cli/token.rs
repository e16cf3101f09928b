//! `layercake token create|list|revoke`: API tokens, in the metadata store
//! the servers share. The token is printed once, at creation; the store
//! keeps only its hash.

use crate::app::open_stores;
use crate::config::Settings;
use crate::service::TokenService;
use anyhow::bail;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once).
    Create {
        /// A name to recognise it by in `token list`.
        #[arg(long, default_value = "")]
        name: String,
        /// A public token: GET only, from the --origin(s) only (for storefront pages).
        #[arg(long)]
        public: bool,
        /// An origin a public token may be used from, e.g. https://shop.example.com (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// The org the token acts for (default: the default org).
        #[arg(long)]
        org: Option<Uuid>,
        /// A render node's token: only the worker protocol, for
        /// `layercake worker --server URL --token T` (renders every org's tasks).
        #[arg(long, conflicts_with_all = ["public", "org", "origins"])]
        worker: bool,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id (effective on every server within 10 s).
    Revoke { id: Uuid },
}

pub fn run(settings: Settings, command: TokenCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (meta, _) = open_stores(&settings, false).await?;
        let tokens = TokenService::new(Arc::clone(&meta));
        match command {
            TokenCommand::Create {
                name,
                public,
                origins,
                org,
                worker,
            } => {
                if !public && !origins.is_empty() {
                    bail!("--origin applies to public tokens (add --public)");
                }
                let (token, row) = if worker {
                    tokens.create_worker(&name).await?
                } else {
                    tokens.create(org, &name, public, &origins).await?
                };
                println!("{token}");
                eprintln!(
                    "created {} token {} for org {} (the line above is the token; it is not shown again)",
                    row.kind, row.id, row.org_id
                );
            }
            TokenCommand::List => {
                for t in meta.tokens().await? {
                    println!(
                        "{}  {:<7}  org {}  {}  {}{}",
                        t.id,
                        t.kind,
                        t.org_id,
                        crate::wire::rfc3339(t.created_at),
                        if t.name.is_empty() { "-" } else { &t.name },
                        match t.revoked_at {
                            Some(at) => format!("  revoked {}", crate::wire::rfc3339(at)),
                            None if t.kind == "public" => format!("  origins {}", t.origins),
                            None => String::new(),
                        }
                    );
                }
            }
            TokenCommand::Revoke { id } => {
                if !meta.revoke_token(id).await? {
                    bail!("no live token {id}");
                }
                eprintln!("revoked {id}");
            }
        }
        meta.close().await;
        Ok(())
    })
}
