//! Static assets served from the binary: the stylesheet compiled from `style/` and `public/`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const STYLE: &str = include_str!(concat!(env!("OUT_DIR"), "/style.css"));
const FAVICON: &[u8] = include_bytes!("../../../public/favicon.svg");
const ROBOTS: &str = include_str!("../../../public/robots.txt");

fn cached(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

pub async fn style() -> Response {
    cached("text/css; charset=utf-8", STYLE)
}

pub async fn favicon() -> Response {
    cached("image/svg+xml", FAVICON)
}

pub async fn robots() -> Response {
    cached("text/plain; charset=utf-8", ROBOTS)
}
