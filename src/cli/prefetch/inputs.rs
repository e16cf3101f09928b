//! What a prefetch run covers: the assets, configurations and views its
//! arguments name (`--asset ID --all [--where]`, or a product feed, and
//! `--views`), each asset's definition fetched once from the backend.

use super::backend::Backend;
use super::{PrefetchArgs, Row, Work, feed};
use crate::catalog::Asset;
use crate::jobs::plan;
use anyhow::{Context, bail};
use serde_json::{Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Configurations `--all` may expand to.
const MAX_COMBINATIONS: usize = 100_000;

/// The assets, configurations and views the arguments name.
pub(super) async fn inputs(
    backend: &dyn Backend,
    args: &PrefetchArgs,
) -> anyhow::Result<Vec<Work>> {
    let mut by_asset: Vec<(Arc<Asset>, Vec<Row>)> = Vec::new();
    if let Some(path) = &args.feed {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let name = path.display().to_string();
        let assets = FeedAssets::collect(backend, &name, &text, args.asset).await?;
        let entries = feed::parse(&path.display().to_string(), &text, args.asset, &assets)?;
        for e in entries {
            let asset = assets.get(e.asset)?;
            match by_asset.iter_mut().find(|(a, _)| a.id == e.asset) {
                Some((_, list)) => list.push((e.id, e.configuration)),
                None => by_asset.push((asset, vec![(e.id, e.configuration)])),
            }
        }
    } else if let Some(id) = args.asset {
        let asset = backend.asset(id).await?;
        let filter = where_filter(&asset, &args.where_)?;
        let configs = plan::combinations(&asset, filter.as_ref(), MAX_COMBINATIONS)?;
        let list = configs
            .iter()
            .map(|c| match serde_json::from_str(&c.canonical(&asset)) {
                Ok(Value::Object(m)) => Ok((None, m)),
                _ => bail!("configuration {} is not an object", c.canonical(&asset)),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        by_asset.push((asset, list));
    }
    by_asset
        .into_iter()
        .map(|(asset, configurations)| {
            let stages = views(&asset, &args.views)?;
            Ok(Work {
                asset,
                configurations,
                stages,
            })
        })
        .collect()
}

/// `--where Body=Navy,Rust` as the batch's `where` object.
fn where_filter(asset: &Asset, wheres: &[String]) -> anyhow::Result<Option<Map<String, Value>>> {
    if wheres.is_empty() {
        return Ok(None);
    }
    let mut out = Map::new();
    for w in wheres {
        let Some((name, values)) = w.split_once('=') else {
            bail!("--where {w}: expected ATTR=V1,V2");
        };
        let Some((_, attr)) = asset.attribute(name.trim()) else {
            bail!("--where {w}: {} has no attribute \"{name}\"", asset.name);
        };
        let values = values
            .split(',')
            .map(|v| {
                feed::cell(&attr.kind, v.trim()).map_err(|m| anyhow::anyhow!("--where {w}: {m}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.insert(name.trim().to_string(), Value::Array(values));
    }
    Ok(Some(out))
}

/// The named views (all when none), as (name, stage configuration).
fn views(asset: &Asset, names: &[String]) -> anyhow::Result<Vec<(String, Value)>> {
    let all: Vec<&str> = asset.views.iter().map(|v| v.name.as_str()).collect();
    let pick = |name: &str| {
        asset
            .views
            .iter()
            .find(|v| v.name == name)
            .map(|v| (v.name.clone(), Value::Object(v.stage.clone())))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--views: {} has no view \"{name}\" ({})",
                    asset.name,
                    all.join(", ")
                )
            })
    };
    if names.is_empty() {
        return all.iter().map(|n| pick(n)).collect();
    }
    let mut out: Vec<(String, Value)> = Vec::new();
    for name in names {
        let group = match name.as_str() {
            _ if all.contains(&name.as_str()) => None,
            "turntable" => Some(asset.turntable()),
            "stills" => Some(asset.stills()),
            _ => None,
        };
        let picked = match group {
            Some(ix) => ix
                .iter()
                .map(|&i| pick(&asset.views[i].name))
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => vec![pick(name)?],
        };
        for p in picked {
            if !out.iter().any(|(n, _)| *n == p.0) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The assets a feed names, fetched once each.
struct FeedAssets(Vec<Arc<Asset>>);

impl FeedAssets {
    /// `--asset` and the feed's `assetId` values, each fetched once. A
    /// lookup that fails is reported here; the parser then names the line.
    async fn collect(
        backend: &dyn Backend,
        file: &str,
        text: &str,
        default: Option<Uuid>,
    ) -> anyhow::Result<FeedAssets> {
        let mut ids: Vec<Uuid> = default.into_iter().collect();
        for id in feed::asset_ids(file, text) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut assets = Vec::new();
        for id in ids {
            match backend.asset(id).await {
                Ok(a) => assets.push(a),
                Err(e) => eprintln!("asset {id}: {e:#}"),
            }
        }
        Ok(FeedAssets(assets))
    }

    fn get(&self, id: Uuid) -> anyhow::Result<Arc<Asset>> {
        self.0
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown asset {id}"))
    }
}

impl feed::Assets for FeedAssets {
    fn asset(&self, id: Uuid) -> Option<Arc<Asset>> {
        self.get(id).ok()
    }
}
