//! The `http` backend: a render farm behind a URL.
//!
//! Each render is `POST <url>` with the request (see `external`) as JSON;
//! a 2xx answer carries the PNG. Connection errors and 5xx answers are
//! retried (`retries` times, backoff from 200 ms doubling); a 4xx is the
//! farm saying no, and fails at once with the start of its body as reason.
//! The whole exchange, retries included, is bounded by the timeout.

use super::external::{decode_output, request_json};
use super::{RenderError, RenderRequest, Renderer};
use crate::compose::LayerImage;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HttpRenderer {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    retries: u32,
    max_pixels: u64,
    max_output_bytes: usize,
}

/// How much of an error body goes into the message.
const BODY_EXCERPT: usize = 500;

impl HttpRenderer {
    /// # Errors
    /// A message when `url` is not an http(s) URL or the client cannot be built.
    pub fn new(
        url: &str,
        timeout: Duration,
        retries: u32,
        max_pixels: u64,
        max_output_bytes: usize,
    ) -> Result<HttpRenderer, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("\"{url}\" is not an http:// or https:// URL"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirected POST would turn into a GET: a farm must answer itself.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(HttpRenderer {
            client,
            url: url.to_string(),
            timeout,
            retries,
            max_pixels,
            max_output_bytes,
        })
    }

    /// One exchange: `Ok(bytes)`, or `Err((retryable, message))`; a
    /// non-retryable failure is final for the run, too.
    async fn attempt(&self, body: &[u8]) -> Result<Vec<u8>, (bool, String)> {
        let resp = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "image/png")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| (true, format!("{}: {e}", self.url)))?;
        let status = resp.status();
        if status.is_success() {
            if resp
                .content_length()
                .is_some_and(|n| n > self.max_output_bytes as u64)
            {
                return Err((
                    false,
                    format!(
                        "{} answered more than {} bytes",
                        self.url, self.max_output_bytes
                    ),
                ));
            }
            let mut resp = resp;
            let mut out = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| (true, format!("{}: reading the image: {e}", self.url)))?
            {
                if out.len() + chunk.len() > self.max_output_bytes {
                    return Err((
                        false,
                        format!(
                            "{} answered more than {} bytes",
                            self.url, self.max_output_bytes
                        ),
                    ));
                }
                out.extend_from_slice(&chunk);
            }
            return Ok(out);
        }
        let mut resp = resp;
        let mut head = Vec::new();
        while head.len() < BODY_EXCERPT * 4 {
            match resp.chunk().await {
                Ok(Some(c)) => head.extend_from_slice(&c),
                _ => break,
            }
        }
        let excerpt: String = String::from_utf8_lossy(&head)
            .chars()
            .take(BODY_EXCERPT)
            .collect();
        Err((
            status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
            format!("{} answered {status}: {}", self.url, excerpt.trim()),
        ))
    }
}

#[async_trait::async_trait]
impl Renderer for HttpRenderer {
    async fn render(&self, req: &RenderRequest) -> Result<LayerImage, RenderError> {
        let body = serde_json::to_vec(&request_json(req))
            .map_err(|e| RenderError::Failed(format!("request encoding: {e}")))?;
        let exchange = async {
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0;
            loop {
                match self.attempt(&body).await {
                    Ok(bytes) => return Ok(bytes),
                    Err((true, msg)) if attempt < self.retries => {
                        tracing::debug!(url = %self.url, attempt, error = %msg, "render farm failed; retrying");
                        attempt += 1;
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    Err((true, msg)) => return Err(RenderError::Failed(msg)),
                    Err((false, msg)) => return Err(RenderError::Rejected(msg)),
                }
            }
        };
        let png = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| RenderError::Timeout(self.timeout))??;
        let max = self.max_pixels;
        let url = self.url.clone();
        tokio::task::spawn_blocking(move || decode_output(&url, &png, max))
            .await
            .map_err(|e| RenderError::Failed(format!("decode task: {e}")))?
    }
}
