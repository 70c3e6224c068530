//! Error pages visitors see. Each names who is to blame and carries a stable error code, so a
//! visitor (or a support ticket) can tell "no such endpoint" from "the agent is gone".

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};

/// The body type of every response the public HTTP ingress sends.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// No endpoint is bound for the requested host.
pub const ENDPOINT_OFFLINE: &str = "ERR_NGROK_3200";
/// The agent session ended or could not take the connection.
pub const AGENT_UNAVAILABLE: &str = "ERR_NGROK_3004";
/// The agent did not answer in time.
pub const AGENT_TIMEOUT: &str = "ERR_NGROK_3005";
/// The request had no usable Host.
pub const BAD_HOST: &str = "ERR_NGROK_3206";

/// A small HTML error page.
pub fn error_page(status: StatusCode, code: &str, title: &str, detail: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{detail}</p><p><code>{code}</code></p></body></html>\n",
        title = escape(title),
        detail = escape(detail),
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header("warren-error-code", code)
        .header(header::CACHE_CONTROL, "no-store")
        .body(full(html))
        .expect("static response parts are valid")
}

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_visitor_input() {
        let page = error_page(
            StatusCode::NOT_FOUND,
            ENDPOINT_OFFLINE,
            "Not found",
            "<script>",
        );
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert_eq!(page.headers()["warren-error-code"], ENDPOINT_OFFLINE);
    }
}
