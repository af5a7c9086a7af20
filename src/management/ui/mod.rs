//! The web UI (docs/web-ui.md): a page and its scripts, compiled into the binary and served at
//! `/` by the management server. The page needs no build step and makes no request outside
//! this server; it reads and changes the broker only through `/api`, with the caller's own
//! credentials, so the API's tag rules are the UI's.
//!
//! Caching: the page itself (`/`) is revalidated on every load (`no-cache` with an `ETag`, so a
//! reload costs a 304), and it names its scripts under `/ui/{version}/`, where `version` is a
//! hash of every asset. Those URLs never change meaning within a build, so browsers keep them
//! a year without asking (`immutable`); a new build gets new URLs. Scripts are ES modules whose
//! relative imports stay under the same versioned prefix.

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use hyper::{HeaderMap, Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::management::response::{self, Response};

/// One embedded file: its name under `/ui/{version}/` and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the UI serves besides the page.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("core.js", JS),
    asset!("chart.js", JS),
    asset!("table.js", JS),
    asset!("forms.js", JS),
    asset!("overview.js", JS),
    asset!("connections.js", JS),
    asset!("amqp.js", JS),
    asset!("exchanges.js", JS),
    asset!("queues.js", JS),
    asset!("admin.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The page, with `{{version}}` where the asset prefix goes.
const INDEX: &str = include_str!("assets/index.html");

/// Browsers keep versioned assets this long (a year, the usual ceiling).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page and its version, computed once: a hash of every asset (and of the page).
struct Built {
    version: String,
    index: Bytes,
    index_etag: String,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut hash = Sha256::new();
        for asset in ASSETS {
            hash.update(asset.name.as_bytes());
            hash.update(asset.bytes);
        }
        hash.update(INDEX.as_bytes());
        let digest = hash.finalize();
        let version: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        let index = INDEX.replace("{{version}}", &version);
        Built {
            index_etag: format!("\"{version}\""),
            version,
            index: Bytes::from(index),
        }
    })
}

/// The version in asset URLs (tests and the docs name it).
pub fn version() -> &'static str {
    &built().version
}

/// Whether a path (its decoded segments) belongs to the UI rather than to `/api`.
pub fn owns(segments: &[String]) -> bool {
    matches!(
        segments.first().map(String::as_str),
        None | Some("" | "ui" | "favicon.ico")
    )
}

/// Answers a UI path: the page at `/`, an asset under `/ui/{any version}/`, else 404.
pub fn serve(method: &Method, headers: &HeaderMap, segments: &[String]) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return response::method_not_allowed("GET, HEAD");
    }
    let head = method == Method::HEAD;
    match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | [""] => {
            let built = built();
            file(
                headers,
                &built.index,
                "text/html; charset=utf-8",
                "no-cache",
                &built.index_etag,
                head,
            )
        }
        ["favicon.ico"] => serve_asset(headers, "favicon.svg", "no-cache", head),
        ["ui", version, name] => {
            // An old page may still ask for its own version after an upgrade: it gets
            // today's file, but must not keep it as that version's.
            let cache = if *version == built().version {
                IMMUTABLE
            } else {
                "no-cache"
            };
            serve_asset(headers, name, cache, head)
        }
        _ => response::not_found(),
    }
}

fn serve_asset(headers: &HeaderMap, name: &str, cache: &'static str, head: bool) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return response::not_found();
    };
    let etag = format!("\"{}-{}\"", built().version, asset.name);
    file(
        headers,
        &Bytes::from_static(asset.bytes),
        asset.content_type,
        cache,
        &etag,
        head,
    )
}

/// A file with its caching headers; 304 when the browser already has this `etag`.
fn file(
    headers: &HeaderMap,
    bytes: &Bytes,
    content_type: &'static str,
    cache: &'static str,
    etag: &str,
    head: bool,
) -> Response {
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let body = if fresh || head {
        Bytes::new()
    } else {
        bytes.clone()
    };
    let mut response = hyper::Response::new(Full::new(body));
    if fresh {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(ETAG, value);
    }
    // The page frames nothing and is framed by nobody; scripts come only from here.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &[&str], headers: &HeaderMap) -> Response {
        let segments: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        serve(&Method::GET, headers, &segments)
    }

    #[test]
    fn the_page_names_its_assets_under_the_version() {
        let response = get(&[], &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let page = String::from_utf8_lossy(&built().index).into_owned();
        assert!(page.contains(&format!("/ui/{}/app.js", version())));
        assert!(!page.contains("{{version}}"));
    }

    #[test]
    fn a_known_etag_gets_304_without_a_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&built().index_etag).expect("etag"),
        );
        let response = get(&[], &headers);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn every_asset_is_served_and_unknown_ones_are_404() {
        for asset in ASSETS {
            let response = get(&["ui", version(), asset.name], &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            assert_eq!(response.headers()[CACHE_CONTROL], IMMUTABLE);
        }
        let stale = get(&["ui", "0000", "app.js"], &HeaderMap::new());
        assert_eq!(stale.headers()[CACHE_CONTROL], "no-cache");
        assert_eq!(
            get(&["ui", version(), "nope.js"], &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }

    /// The page works offline: nothing it ships names another origin.
    #[test]
    fn no_asset_refers_to_another_origin() {
        let texts = ASSETS
            .iter()
            .map(|asset| {
                (
                    asset.name,
                    String::from_utf8_lossy(asset.bytes).into_owned(),
                )
            })
            .chain([("index.html", INDEX.to_owned())]);
        for (name, text) in texts {
            for needle in ["http://", "https://", "//cdn", "@import url("] {
                // The SVG namespace is an identifier, not a request.
                let cleaned = text.replace("http://www.w3.org/2000/svg", "");
                assert!(!cleaned.contains(needle), "{name} contains {needle}");
            }
        }
    }
}
