//! Saved configurations: a product's configuration kept under an id and a
//! short id, so order documents and shared links can name an image
//! without carrying JSON (`configurationId=` on the fast compositor).
//!
//! [`SavedConfiguration`] is the record callers get: the product's id and
//! the JSON parts read once here (the stored row keeps them as text); a
//! stored row that does not read is a server fault, never a guess.

use super::assets::AssetRegistry;
use crate::error::Error;
use crate::keys::Configuration;
use crate::meta::{ConfigurationRow, Meta, MetaError, Window};
use crate::wire::{ConfigurationJson, rfc3339};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Short ids: 10 characters of this alphabet (60 random bits).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const SHORT_ID_LEN: usize = 10;

/// What `POST /api/configurations` carries.
#[derive(Debug, Clone, Default)]
pub struct NewConfiguration {
    pub product_id: Option<String>,
    pub product_version: Option<String>,
    pub variant: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    /// Attachment name → uploaded file id.
    pub attachments: BTreeMap<String, Uuid>,
    pub customer_id: Option<String>,
    pub identifier: Option<String>,
    pub scope: Option<String>,
    pub thumbnail: Option<String>,
    pub session_id: Option<String>,
}

/// A saved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedConfiguration {
    pub id: Uuid,
    /// 10 characters of `[A-Za-z0-9_-]`, for short links.
    pub short_id: String,
    pub org_id: Uuid,
    /// The asset it configures.
    pub product_id: Uuid,
    pub product_version: Option<String>,
    /// The configuration.
    pub variant: Value,
    /// A JSON object.
    pub metadata: Value,
    /// A JSON object of name → file id.
    pub attachments: Value,
    pub customer_id: Option<String>,
    pub identifier: Option<String>,
    pub scope: Option<String>,
    pub thumbnail: Option<String>,
    pub session_id: Option<String>,
    pub creator: Option<String>,
    pub created_at: i64,
}

impl SavedConfiguration {
    /// The record of a stored row.
    ///
    /// # Errors
    /// [`Error::Internal`] naming the configuration when a part does not read.
    fn of_row(c: ConfigurationRow) -> Result<SavedConfiguration, Error> {
        let bad = |e: String| Error::Internal(format!("saved configuration {}: {e}", c.id));
        let json = |part: &str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| bad(format!("{part}: {e}")))
        };
        Ok(SavedConfiguration {
            product_id: Uuid::parse_str(&c.product_id)
                .map_err(|e| bad(format!("productId: {e}")))?,
            variant: json("variant", &c.variant)?,
            metadata: json("metadata", &c.metadata)?,
            attachments: json("attachments", &c.attachments)?,
            id: c.id,
            short_id: c.short_id,
            org_id: c.org_id,
            product_version: c.product_version,
            customer_id: c.customer_id,
            identifier: c.identifier,
            scope: c.scope,
            thumbnail: c.thumbnail,
            session_id: c.session_id,
            creator: c.creator,
            created_at: c.created_at,
        })
    }

    /// As the API answers it.
    pub fn json(&self) -> ConfigurationJson {
        ConfigurationJson {
            id: self.id.to_string(),
            short_id: self.short_id.clone(),
            org_id: self.org_id.to_string(),
            product_id: self.product_id.to_string(),
            product_version: self.product_version.clone(),
            variant: self.variant.clone(),
            metadata: self.metadata.clone(),
            attachments: self.attachments.clone(),
            scene_graph_state: None,
            customer_id: self.customer_id.clone(),
            identifier: self.identifier.clone(),
            scope: self.scope.clone(),
            thumbnail: self.thumbnail.clone(),
            session_id: self.session_id.clone(),
            publish_file_id: None,
            creator: self.creator.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

pub struct SavedConfigurations {
    meta: Arc<Meta>,
    assets: Arc<AssetRegistry>,
    /// Saved configurations never change: kept by (org, id or short id),
    /// weighed in bytes (`cache.configuration_bytes`).
    cache: moka::future::Cache<(Uuid, String), Arc<Cached>>,
}

/// A cached configuration and about what it costs in memory.
struct Cached {
    config: SavedConfiguration,
    weight: u32,
}

/// About what a stored configuration costs in memory: its text and a
/// fixed overhead.
fn weight(c: &ConfigurationRow) -> u32 {
    let text = c.variant.len() + c.metadata.len() + c.attachments.len() + c.product_id.len();
    u32::try_from(text + 512).unwrap_or(u32::MAX)
}

pub fn short_id() -> String {
    let bits = Uuid::new_v4().as_u128();
    (0..SHORT_ID_LEN)
        .map(|i| ALPHABET[((bits >> (6 * i)) & 63) as usize] as char)
        .collect()
}

impl SavedConfigurations {
    pub fn new(
        meta: Arc<Meta>,
        assets: Arc<AssetRegistry>,
        cache_bytes: u64,
    ) -> SavedConfigurations {
        SavedConfigurations {
            meta,
            assets,
            cache: moka::future::Cache::builder()
                .max_capacity(cache_bytes)
                .weigher(|_, c: &Arc<Cached>| c.weight)
                .build(),
        }
    }

    /// Checks and stores a configuration.
    ///
    /// # Errors
    /// 422 when `productId` or `variant` is missing or invalid for the
    /// product (an asset), 404 when the product is unknown.
    pub async fn save(&self, org: Uuid, n: NewConfiguration) -> Result<SavedConfiguration, Error> {
        let product = n
            .product_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid("productId", "is required"))?;
        let variant = n
            .variant
            .clone()
            .filter(|v| !v.is_null())
            .ok_or_else(|| Error::invalid("variant", "is required"))?;
        let asset_id = Uuid::parse_str(product)
            .map_err(|_| Error::invalid("productId", format!("\"{product}\" is not a UUID")))?;
        let asset = self.assets.get(org, asset_id)?;
        Configuration::parse(&asset, &variant)
            .map_err(|e| Error::invalid("variant", e.to_string()))?;
        let metadata = match n.metadata.clone() {
            None | Some(serde_json::Value::Null) => serde_json::json!({}),
            Some(m @ serde_json::Value::Object(_)) => m,
            Some(_) => return Err(Error::invalid("metadata", "must be a JSON object")),
        };
        let attachments: serde_json::Map<String, serde_json::Value> = n
            .attachments
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.to_string())))
            .collect();
        let mut row = ConfigurationRow {
            id: Uuid::new_v4(),
            short_id: short_id(),
            org_id: org,
            product_id: asset_id.to_string(),
            product_version: n.product_version.clone(),
            variant: variant.to_string(),
            metadata: metadata.to_string(),
            attachments: serde_json::Value::Object(attachments).to_string(),
            customer_id: n.customer_id.clone(),
            identifier: n.identifier.clone(),
            scope: n.scope.clone(),
            thumbnail: n.thumbnail.clone(),
            session_id: n.session_id.clone(),
            creator: None,
            created_at: self.meta.now(),
        };
        // 60 random bits: a collision is a freak, but retrying costs nothing.
        for _ in 0..4 {
            match self.meta.insert_configuration(&row).await {
                Err(MetaError::Conflict(_)) => row.short_id = short_id(),
                Err(e) => return Err(e.into()),
                Ok(()) => return SavedConfiguration::of_row(row),
            }
        }
        Err(Error::Conflict("could not allocate a short id".into()))
    }

    /// By id or short id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `org` has no such configuration.
    pub async fn get(&self, org: Uuid, key: &str) -> Result<SavedConfiguration, Error> {
        let cache_key = (org, key.to_string());
        if let Some(c) = self.cache.get(&cache_key).await {
            return Ok(c.config.clone());
        }
        let row = self.meta.configuration(org, key).await.map_err(|e| {
            if e.is_not_found() {
                Error::NotFound(format!("configuration {key} not found"))
            } else {
                e.into()
            }
        })?;
        let weight = weight(&row);
        let config = SavedConfiguration::of_row(row)?;
        let cached = Cached {
            config: config.clone(),
            weight,
        };
        self.cache.insert(cache_key, Arc::new(cached)).await;
        Ok(config)
    }

    /// # Errors
    /// Metadata failures.
    pub async fn list(
        &self,
        org: Uuid,
        w: Window,
    ) -> Result<(usize, Vec<SavedConfiguration>), Error> {
        let (count, rows) = self.meta.configurations(org, w).await?;
        let records = rows
            .into_iter()
            .map(SavedConfiguration::of_row)
            .collect::<Result<_, _>>()?;
        Ok((count, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_have_the_contract_shape() {
        for _ in 0..1000 {
            let s = short_id();
            assert_eq!(s.len(), SHORT_ID_LEN);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{s}"
            );
            assert!(Uuid::parse_str(&s).is_err(), "never mistaken for a UUID");
        }
    }

    fn row(product: &str, variant: &str, metadata: &str) -> ConfigurationRow {
        ConfigurationRow {
            id: Uuid::from_u128(7),
            short_id: "abcdefghij".into(),
            org_id: Uuid::from_u128(1),
            product_id: product.into(),
            product_version: None,
            variant: variant.into(),
            metadata: metadata.into(),
            attachments: r#"{"a":"00000000-0000-0000-0000-000000000002"}"#.into(),
            customer_id: Some("c".into()),
            identifier: None,
            scope: None,
            thumbnail: None,
            session_id: None,
            creator: None,
            created_at: 0,
        }
    }

    #[test]
    fn a_stored_row_reads_into_a_typed_record_or_a_server_fault() {
        let asset = "00000000-0000-0000-0000-000000000003";
        let ok = SavedConfiguration::of_row(row(asset, r#"{"Color":"red"}"#, "{}")).unwrap();
        assert_eq!(ok.product_id, Uuid::from_u128(3));
        assert_eq!(ok.variant, serde_json::json!({"Color": "red"}));
        assert_eq!(ok.attachments["a"], "00000000-0000-0000-0000-000000000002");
        let json = serde_json::to_value(ok.json()).unwrap();
        assert_eq!(json["productId"], asset);
        assert_eq!(json["variant"], serde_json::json!({"Color": "red"}));
        assert_eq!(json["customerId"], "c");
        let id = Uuid::from_u128(7);
        let cases = [
            (row("not-a-uuid", "{}", "{}"), "productId"),
            (row(asset, "{", "{}"), "variant"),
            (row(asset, "{}", "nope"), "metadata"),
        ];
        for (r, part) in cases {
            match SavedConfiguration::of_row(r) {
                Err(Error::Internal(m)) => {
                    assert!(
                        m.starts_with(&format!("saved configuration {id}: {part}: ")),
                        "{m}"
                    );
                }
                other => panic!("{part}: {other:?}"),
            }
        }
    }
}
