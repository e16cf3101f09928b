//! Saved configurations: a product's configuration kept under an id and a
//! short id, so order documents and shared links can name an image
//! without carrying JSON (`configurationId=` on the fast compositor).

use super::assets::AssetRegistry;
use crate::error::Error;
use crate::keys::Configuration;
use crate::meta::{ConfigurationRow, Meta, MetaError, Window};
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

pub struct SavedConfigurations {
    meta: Arc<Meta>,
    assets: Arc<AssetRegistry>,
    /// Saved configurations never change: kept by (org, id or short id),
    /// weighed in bytes (`cache.configuration_bytes`).
    cache: moka::future::Cache<(Uuid, String), Arc<ConfigurationRow>>,
}

/// About what a cached configuration costs in memory.
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
                .weigher(|_, c: &Arc<ConfigurationRow>| weight(c))
                .build(),
        }
    }

    /// Checks and stores a configuration.
    ///
    /// # Errors
    /// 422 when `productId` or `variant` is missing or invalid for the
    /// product (an asset), 404 when the product is unknown.
    pub async fn save(&self, org: Uuid, n: NewConfiguration) -> Result<ConfigurationRow, Error> {
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
                other => return other.map(|()| row).map_err(Error::from),
            }
        }
        Err(Error::Conflict("could not allocate a short id".into()))
    }

    /// By id or short id.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `org` has no such configuration.
    pub async fn get(&self, org: Uuid, key: &str) -> Result<ConfigurationRow, Error> {
        let cache_key = (org, key.to_string());
        if let Some(c) = self.cache.get(&cache_key).await {
            return Ok((*c).clone());
        }
        let row = self.meta.configuration(org, key).await.map_err(|e| {
            if e.is_not_found() {
                Error::NotFound(format!("configuration {key} not found"))
            } else {
                e.into()
            }
        })?;
        self.cache.insert(cache_key, Arc::new(row.clone())).await;
        Ok(row)
    }

    /// # Errors
    /// Metadata failures.
    pub async fn list(
        &self,
        org: Uuid,
        w: Window,
    ) -> Result<(usize, Vec<ConfigurationRow>), Error> {
        Ok(self.meta.configurations(org, w).await?)
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
}
