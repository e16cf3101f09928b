//! Batch planning: which layers a set of configurations and views needs.
//!
//! Many configurations share layers (a sofa's legs do not depend on its
//! fabric), so a batch is planned as the set of *distinct* layer keys, and
//! only the missing ones become tasks: 360 demo configurations on one view
//! need 25 layers, not 3600.

use super::LayerJob;
use crate::catalog::{Asset, AttrKind};
use crate::error::Error;
use crate::keys::{self, Configuration};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::ToSchema;

/// The body of `POST /api/jobs`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    #[schema(format = Uuid)]
    pub asset_id: String,
    /// Configurations to render (missing attributes take their defaults).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub configurations: Option<Vec<serde_json::Value>>,
    /// Every combination of the asset's enumerable attributes (string
    /// options and booleans; numbers and colours stay at their defaults
    /// unless `where` lists values).
    #[serde(default)]
    pub all: bool,
    /// With `all`: the values to use for some attributes, e.g.
    /// `{"Body": ["Red", "Blue"]}`.
    #[serde(default, rename = "where")]
    #[schema(value_type = Option<Object>)]
    pub where_: Option<serde_json::Map<String, serde_json::Value>>,
    /// Views to render, as stage configurations; default: every view.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub stage_configurations: Option<Vec<serde_json::Value>>,
    /// Only plan: answer the counts (200), queue nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a batch needs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub configurations: usize,
    pub views: Vec<usize>,
    /// Distinct layers, in first-seen order.
    pub layers: Vec<LayerJob>,
}

impl BatchRequest {
    /// The configurations and views this request names.
    ///
    /// # Errors
    /// 422 naming the field: neither or both of `configurations` and
    /// `all`, an invalid configuration, an unknown view, more
    /// configurations than `max`, or more layer keys to plan than `max_keys`.
    /// Repeated configurations and views are planned once.
    pub fn expand(
        &self,
        asset: &Asset,
        max: usize,
        max_keys: u64,
    ) -> Result<(Vec<Configuration>, Vec<usize>), Error> {
        let configs = match (&self.configurations, self.all) {
            (Some(_), true) | (None, false) => {
                return Err(Error::invalid(
                    "body",
                    "give either \"configurations\" or \"all\": true",
                ));
            }
            (Some(list), false) => {
                if list.len() > max {
                    return Err(Error::invalid(
                        "configurations",
                        format!("{} configurations; at most {max} per job", list.len()),
                    ));
                }
                // The same configuration twice plans nothing more: dropped.
                let mut seen = HashSet::new();
                let mut configs = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    let c = Configuration::parse(asset, c).map_err(|e| {
                        Error::invalid(format!("configurations[{i}]"), e.to_string())
                    })?;
                    if seen.insert(c.canonical(asset)) {
                        configs.push(c);
                    }
                }
                configs
            }
            (None, true) => combinations(asset, self.where_.as_ref(), max)?,
        };
        if self.where_.is_some() && !self.all {
            return Err(Error::invalid("where", "only applies with \"all\": true"));
        }
        let views = match &self.stage_configurations {
            None => (0..asset.views.len()).collect(),
            Some(list) if list.is_empty() => {
                return Err(Error::invalid("stageConfigurations", "is empty"));
            }
            Some(list) => {
                // Each view once, in first-named order (80,000 copies of one
                // view are one view).
                let mut views = Vec::new();
                for (i, s) in list.iter().enumerate() {
                    let v = keys::select_view(asset, s).map_err(|e| {
                        Error::invalid(format!("stageConfigurations[{i}]"), e.to_string())
                    })?;
                    if !views.contains(&v) {
                        views.push(v);
                    }
                }
                views
            }
        };
        check_size(asset, configs.len(), views.len(), max_keys)?;
        Ok((configs, views))
    }
}

/// The planner hashes one key per configuration × view × layer: at most
/// `max_keys` (`jobs.max_plan_keys`) per request.
///
/// # Errors
/// 422 naming the figure and the cap.
pub fn check_size(asset: &Asset, configs: usize, views: usize, max_keys: u64) -> Result<(), Error> {
    let keys = (configs as u64)
        .saturating_mul(views as u64)
        .saturating_mul(asset.layers.len() as u64);
    if keys > max_keys {
        return Err(Error::invalid(
            "configurations",
            format!(
                "{configs} configurations x {views} views x {} layers = {keys} layer keys to plan, over jobs.max_plan_keys ({max_keys}); split the job or narrow it",
                asset.layers.len()
            ),
        ));
    }
    Ok(())
}

/// Every combination of the enumerable attributes, restricted by `filter`.
///
/// # Errors
/// 422 for an unknown attribute or value in `filter`, or more than `max`
/// combinations.
pub fn combinations(
    asset: &Asset,
    filter: Option<&serde_json::Map<String, serde_json::Value>>,
    max: usize,
) -> Result<Vec<Configuration>, Error> {
    let mut domains: Vec<Vec<serde_json::Value>> = asset
        .attributes
        .iter()
        .map(|a| match &a.kind {
            AttrKind::String { options } => options
                .iter()
                .map(|o| serde_json::Value::String(o.value.clone()))
                .collect(),
            AttrKind::Boolean => vec![false.into(), true.into()],
            AttrKind::Number { .. } | AttrKind::Color => vec![serde_json::Value::Null],
        })
        .collect();
    if let Some(filter) = filter {
        for (name, values) in filter {
            let field = format!("where.{name}");
            let (i, attr) = asset
                .attribute(name)
                .ok_or_else(|| Error::invalid(&field, "no such attribute"))?;
            let list = match values {
                serde_json::Value::Array(v) if !v.is_empty() => v.clone(),
                serde_json::Value::Array(_) => {
                    return Err(Error::invalid(&field, "lists no values"));
                }
                one => vec![one.clone()],
            };
            for v in &list {
                attr.accept(v)
                    .map_err(|e| Error::invalid(&field, e.to_string()))?;
            }
            domains[i] = list;
        }
    }
    let total = domains
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(d.len()))
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            Error::invalid(
                "all",
                format!("more than {max} combinations; narrow them with \"where\""),
            )
        })?;
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0usize; domains.len()];
    for _ in 0..total {
        let obj: serde_json::Map<String, serde_json::Value> = asset
            .attributes
            .iter()
            .zip(&domains)
            .zip(&index)
            .map(|((a, d), &i)| (a.name.clone(), d[i].clone()))
            .collect();
        out.push(
            Configuration::parse(asset, &serde_json::Value::Object(obj))
                .map_err(|e| Error::invalid("where", e.to_string()))?,
        );
        // Odometer: the last attribute turns fastest.
        for k in (0..index.len()).rev() {
            index[k] += 1;
            if index[k] < domains[k].len() {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(out)
}

/// The distinct visible layers of `configs` on `views`.
pub fn plan(asset: &Arc<Asset>, configs: &[Configuration], views: &[usize]) -> Plan {
    let mut seen = HashSet::new();
    let mut layers = Vec::new();
    for &view in views {
        for config in configs {
            layers.extend(LayerJob::visible(asset, config, view).filter(|j| seen.insert(j.key)));
        }
    }
    Plan {
        configurations: configs.len(),
        views: views.to_vec(),
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sofa() -> Arc<Asset> {
        let cat = crate::catalog::Catalog::demo().unwrap();
        Arc::clone(cat.assets().next().unwrap())
    }

    #[test]
    fn all_demo_combinations_share_their_layers() {
        let asset = sofa();
        let configs = combinations(&asset, None, 100_000).unwrap();
        assert_eq!(configs.len(), 360);
        let p = plan(&asset, &configs, &[0]);
        assert_eq!(p.layers.len(), 25, "distinct layers of one view");
        let p4 = plan(&asset, &configs, &[0, 1, 2, 3]);
        assert_eq!(p4.layers.len(), 100);
    }

    #[test]
    fn where_restricts_and_checks_values() {
        let asset = sofa();
        let name = asset.attributes[0].name.clone();
        let first = match &asset.attributes[0].kind {
            AttrKind::String { options } => options[0].value.clone(),
            _ => panic!("the demo's first attribute is a string"),
        };
        let mut w = serde_json::Map::new();
        w.insert(name.clone(), serde_json::json!([first]));
        let configs = combinations(&asset, Some(&w), 100_000).unwrap();
        assert_eq!(configs.len(), 60);
        w.insert(name, serde_json::json!(["NoSuchOption"]));
        let e = combinations(&asset, Some(&w), 100_000).unwrap_err();
        assert!(e.to_string().contains("where."), "{e}");
        assert!(combinations(&asset, None, 10).is_err(), "over the limit");
    }
}
