//! The meeting page's files, loaded: GC serves Convene's own web client (`web/`, built to
//! `web/dist`) at `/` (sign in, create, history) and at every `join_url` (`/m/{code}`), with
//! its scripts and styles under `/assets/` (the handlers are `routes::web`).
//!
//! The files are read once at start-up from `GC_WEB_DIR` and served from memory; without
//! `GC_WEB_DIR` these routes do not exist. Every page carries a Content-Security-Policy that
//! allows scripts and styles from this origin only (no inline script) and connections only to
//! this origin, AC (where the browser signs in) and the meeting controllers' WebSocket origins
//! (read from the registry, so a controller that registers later is allowed on the next page
//! load), plus `GC_WEB_CONNECT_SRC`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The largest file served, and the most all files may hold together: the client is a few
/// dozen KiB, so anything near these is a mistake in `GC_WEB_DIR`.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
const MAX_TOTAL_BYTES: u64 = 8 * 1024 * 1024;
/// How long the controllers' origins of the policy are reused before the registry is read again.
const ORIGINS_TTL: Duration = Duration::from_secs(5);
/// Where `index.html` expects AC's URL.
const AC_URL_PLACEHOLDER: &str = "__CONVENE_AC_URL__";

/// One file, ready to send.
struct Asset {
    content_type: &'static str,
    etag: HeaderValue,
    body: axum::body::Bytes,
}

/// The loaded client and what its policy needs.
pub struct WebClient {
    index: Asset,
    assets: HashMap<String, Asset>,
    /// `'self'`, AC's origin and the configured extras, in policy syntax.
    fixed_connect_src: String,
    origins: Mutex<Option<(Instant, String)>>,
}

impl WebClient {
    /// Reads `settings.web_dir`; `None` when it is not set. Fails with a message naming what is
    /// missing or wrong, so a bad deployment stops at start-up.
    pub fn load(
        settings: &crate::config::WebSettings,
        ac_url: &str,
    ) -> anyhow::Result<Option<Arc<WebClient>>> {
        let Some(dir) = &settings.web_dir else {
            return Ok(None);
        };
        let ac_url = settings.web_ac_url.as_deref().unwrap_or(ac_url);
        let ac_origin = origin(ac_url).with_context(|| {
            format!("GC_WEB_AC_URL (or AC_URL) {ac_url:?} is not an http(s) URL")
        })?;
        let mut fixed = vec!["'self'".to_owned(), ac_origin];
        for source in &settings.connect_src {
            anyhow::ensure!(
                is_source(source),
                "GC_WEB_CONNECT_SRC entry {source:?} is not a scheme://host[:port] source"
            );
            fixed.push(source.clone());
        }

        let mut total = 0;
        let index_path = dir.join("index.html");
        let template = read_bounded(&index_path, &mut total).with_context(|| {
            format!(
                "GC_WEB_DIR={} holds no usable index.html: build the client (`npm run build` in web/)",
                dir.display()
            )
        })?;
        let template = String::from_utf8(template).context("index.html is not UTF-8")?;
        anyhow::ensure!(
            template.contains(AC_URL_PLACEHOLDER),
            "index.html has no {AC_URL_PLACEHOLDER} placeholder"
        );
        let index = template.replace(
            AC_URL_PLACEHOLDER,
            &html_attribute(ac_url.trim_end_matches('/')),
        );

        let mut assets = HashMap::new();
        let assets_dir = dir.join("assets");
        let entries = std::fs::read_dir(&assets_dir)
            .with_context(|| format!("cannot read {}", assets_dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let Some(content_type) = asset_type(&name) else {
                continue;
            };
            let bytes = read_bounded(&path, &mut total)?;
            assets.insert(name, asset(content_type, bytes));
        }
        anyhow::ensure!(
            assets.contains_key("main.js"),
            "{} has no main.js: build the client (`npm run build` in web/)",
            assets_dir.display()
        );
        tracing::info!(dir = %dir.display(), files = assets.len(), "serving the web client");
        Ok(Some(Arc::new(WebClient {
            index: asset("text/html; charset=utf-8", index.into_bytes()),
            assets,
            fixed_connect_src: fixed.join(" "),
            origins: Mutex::new(None),
        })))
    }

    /// The policy's `connect-src`: the fixed sources and every registered controller's origin.
    async fn connect_src(&self, pool: &PgPool) -> String {
        {
            let cached = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, value)) = cached.as_ref()
                && at.elapsed() < ORIGINS_TTL
            {
                return value.clone();
            }
        }
        let mut sources = vec![self.fixed_connect_src.clone()];
        match crate::db::web::controller_websocket_urls(pool).await {
            Ok(urls) => {
                let mut origins: Vec<String> = urls.iter().filter_map(|url| origin(url)).collect();
                origins.sort();
                origins.dedup();
                sources.extend(origins);
            }
            // The page still loads; joining fails until the registry can be read again.
            Err(error) => {
                tracing::warn!(%error, "cannot read the controllers for the page's policy")
            }
        }
        let value = sources.join(" ");
        *self.origins.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), value.clone()));
        value
    }
}

impl WebClient {
    /// The page (`GET /` and every `join_url`), with its policy: the controllers' origins
    /// are read from `pool`'s registry at most every [`ORIGINS_TTL`].
    pub async fn page(&self, pool: &PgPool, request: &HeaderMap) -> Response {
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src {}; media-src 'self' mediastream: blob:; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
            self.connect_src(pool).await
        );
        let mut response = send(&self.index, request, "no-cache");
        let h = response.headers_mut();
        if let Ok(policy) = HeaderValue::from_str(&policy) {
            h.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
        );
        response
    }

    /// A script or style sheet of the client by its file name; `None` for anything else.
    pub fn asset(&self, name: &str, request: &HeaderMap) -> Option<Response> {
        self.assets
            .get(name)
            .map(|asset| send(asset, request, "no-cache"))
    }
}

/// A file with its type and validator; 304 when the client holds this version already.
fn send(asset: &Asset, request: &HeaderMap, cache: &'static str) -> Response {
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == asset.etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(asset.body.clone()))
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn asset(content_type: &'static str, bytes: Vec<u8>) -> Asset {
    let digest = Sha256::digest(&bytes);
    let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Asset {
        content_type,
        etag: HeaderValue::from_str(&format!("\"{tag}\""))
            .unwrap_or(HeaderValue::from_static("\"0\"")),
        body: bytes.into(),
    }
}

/// Only plain names of the two kinds the client is made of; nothing else is ever served.
fn asset_type(name: &str) -> Option<&'static str> {
    let (stem, extension) = name.rsplit_once('.')?;
    let plain = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match (plain, extension) {
        (true, "js") => Some("text/javascript; charset=utf-8"),
        (true, "css") => Some("text/css; charset=utf-8"),
        _ => None,
    }
}

/// Reads a file of the client, at most [`MAX_FILE_BYTES`] of it (whatever its metadata says: a
/// device or a growing file is cut off, not read whole) and [`MAX_TOTAL_BYTES`] in all.
fn read_bounded(path: &Path, total: &mut u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let size = bytes.len() as u64;
    anyhow::ensure!(
        size <= MAX_FILE_BYTES,
        "{} is over the {MAX_FILE_BYTES} bytes a web file may have",
        path.display()
    );
    *total += size;
    anyhow::ensure!(
        *total <= MAX_TOTAL_BYTES,
        "the web client is over {MAX_TOTAL_BYTES} bytes"
    );
    Ok(bytes)
}

/// `scheme://host[:port]` of an http(s) or ws(s) URL, if it is one and holds nothing that could
/// break out of a policy.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https" | "ws" | "wss") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let safe = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    safe.then(|| format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

/// A configured CSP source: an origin, optionally with a leading `*.` wildcard label.
fn is_source(source: &str) -> bool {
    let unwild = source.replacen("://*.", "://", 1);
    origin(&unwild).is_some_and(|o| o == unwild.to_ascii_lowercase())
}

/// Text for an HTML attribute value in double quotes.
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_reduced_to_scheme_host_and_port_or_refused() {
        assert_eq!(
            origin("ws://127.0.0.1:8081").as_deref(),
            Some("ws://127.0.0.1:8081")
        );
        assert_eq!(
            origin("wss://MC-1.Example.com/ws/v1/meetings/x?y").as_deref(),
            Some("wss://mc-1.example.com")
        );
        assert_eq!(
            origin("http://[::1]:8082/").as_deref(),
            Some("http://[::1]:8082")
        );
        for bad in [
            "javascript:alert(1)",
            "ftp://x",
            "ws://a b",
            "ws://x;script-src *",
            "ws://user@host",
            "ws://'self'",
            "ws://",
            "ws://évil.example",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_plain_script_and_style_names_are_assets() {
        assert_eq!(
            asset_type("main.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(asset_type("app.css"), Some("text/css; charset=utf-8"));
        for bad in [
            "../main.js",
            "main.js.map",
            ".js",
            "main.html",
            "a b.js",
            "main",
        ] {
            assert_eq!(asset_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn configured_sources_allow_one_leading_wildcard() {
        assert!(is_source("wss://*.mc.example.com"));
        assert!(is_source("wss://mc.example.com:443"));
        assert!(!is_source("wss://*.*.example.com"));
        assert!(!is_source("*"));
        assert!(!is_source("wss://x.example.com/path"));
        assert!(!is_source("wss://x.example.com; script-src *"));
    }

    #[test]
    fn the_ac_url_is_escaped_into_the_page() {
        assert_eq!(
            html_attribute("https://ac.example.com/?a=\"<x>&"),
            "https://ac.example.com/?a=&quot;&lt;x&gt;&amp;"
        );
    }
}
