//! Warren's own agent, the `warren` binary (crate `warren-cli`), as the agent of a Warren path:
//! the v3 config file that `warren start --all --config FILE` runs, and the local agent API
//! (`GET /api/endpoints`) that says when the endpoints are online and on which ports.
//!
//! This module only writes the config and reads the API; starting `warrend`, spawning the agent
//! and probing the path are [`crate::tunnels::warren_agent`]'s. Like everything in the bench it
//! speaks to the agent over its documented interfaces and links none of Warren's crates.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::procs::Proc;
use crate::tunnels::Origins;

/// The config's endpoint names, in the order [`Endpoints`] holds them.
pub const ENDPOINT_NAMES: [&str; 3] = ["stream", "http-tcp", "http"];

/// How long one local API request may take.
const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two polls of the local API.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What the agent's config file says.
pub struct AgentConfig<'a> {
    pub authtoken: &'a str,
    /// warrend's agent listener.
    pub connect_url: SocketAddr,
    /// warrend's CA (PEM file).
    pub connect_cas: &'a Path,
    /// The local agent API's address.
    pub web_addr: SocketAddr,
    /// Capture HTTP exchanges in the request inspector (ngrok's default) or not
    /// (`inspect_db_size: -1`).
    pub inspect: bool,
    pub origins: Origins,
    /// Domain of the HTTP endpoint.
    pub domain: &'a str,
}

impl AgentConfig<'_> {
    /// The config file in ngrok's v3 layout: a TCP endpoint to the stream origin, a TCP endpoint
    /// to the HTTP origin and an HTTPS endpoint on `domain` to the HTTP origin, the same three the
    /// SDK agent binds. Logs go to stderr (the bench's log file) at `warn`, as quiet as the SDK
    /// agent, which logs nothing.
    pub fn to_yaml(&self) -> String {
        // A JSON string is a valid YAML double-quoted scalar: paths and tokens need no other
        // escaping.
        let quote = |s: &str| Value::from(s).to_string();
        let inspect_db_size = if self.inspect {
            String::new()
        } else {
            "  inspect_db_size: -1\n".to_owned()
        };
        format!(
            "version: 3\n\
             agent:\n  \
               authtoken: {authtoken}\n  \
               connect_url: {connect_url}\n  \
               connect_cas: {connect_cas}\n  \
               web_addr: {web_addr}\n  \
               console_ui: false\n  \
               log: stderr\n  \
               log_level: warn\n  \
               log_format: json\n\
             {inspect_db_size}\
             endpoints:\n  \
               - name: stream\n    \
                 url: tcp://\n    \
                 upstream: {{ url: \"tcp://{stream}\" }}\n  \
               - name: http-tcp\n    \
                 url: tcp://\n    \
                 upstream: {{ url: \"tcp://{http}\" }}\n  \
               - name: http\n    \
                 url: {domain}\n    \
                 upstream: {{ url: \"http://{http}\" }}\n",
            authtoken = quote(self.authtoken),
            connect_url = self.connect_url,
            connect_cas = quote(&self.connect_cas.display().to_string()),
            web_addr = self.web_addr,
            stream = self.origins.stream,
            http = self.origins.http,
            domain = quote(&format!("https://{}", self.domain)),
        )
    }
}

/// The public URLs of the three endpoints, in [`ENDPOINT_NAMES`] order.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub urls: [String; 3],
}

/// Reads a `GET /api/endpoints` answer: `Ok(Some)` once every endpoint of [`ENDPOINT_NAMES`] has
/// a URL, `Ok(None)` while some are still starting, an error when one has failed.
pub fn endpoints_online(body: &Value) -> anyhow::Result<Option<Endpoints>> {
    let list = body
        .get("endpoints")
        .and_then(Value::as_array)
        .with_context(|| format!("no `endpoints` list in {body}"))?;
    let mut urls: [String; 3] = Default::default();
    for (name, url) in ENDPOINT_NAMES.iter().zip(&mut urls) {
        let Some(endpoint) = list
            .iter()
            .find(|e| e.get("name") == Some(&Value::from(*name)))
        else {
            return Ok(None);
        };
        if endpoint.get("state").and_then(Value::as_str) == Some("failed") {
            bail!("endpoint `{name}` failed: {}", endpoint["error"]);
        }
        match endpoint.get("url").and_then(Value::as_str) {
            Some(found) if !found.is_empty() => *url = found.to_owned(),
            _ => return Ok(None),
        }
    }
    Ok(Some(Endpoints { urls }))
}

/// Polls the agent's local API at `web_addr` until every endpoint is online, for at most
/// `timeout`; fails early when the agent exits or an endpoint fails.
pub async fn wait_online(
    agent: &mut Proc,
    web_addr: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<Endpoints> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = agent.exit_status()? {
            bail!(
                "the warren agent exited ({status}) before its endpoints were online (see its log)"
            );
        }
        let last = match get_json(web_addr, "/api/endpoints").await {
            Ok(body) => match endpoints_online(&body)? {
                Some(endpoints) => return Ok(endpoints),
                None => format!("not every endpoint is online yet: {body}"),
            },
            Err(error) => format!("{error:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("the warren agent's endpoints were not online after {timeout:?}: {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `GET path` on the local agent API (with a `Host` it allows) and its JSON body.
async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let request = async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let response = sender
            .send_request(
                http::Request::get(path)
                    .header(http::header::HOST, addr.to_string())
                    .body(Empty::new())?,
            )
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(serde_json::from_slice(&body)?)
    };
    tokio::time::timeout(API_REQUEST_TIMEOUT, request)
        .await
        .with_context(|| format!("GET {path} on {addr} timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(inspect: bool) -> String {
        AgentConfig {
            authtoken: "tok123",
            connect_url: "127.0.0.1:4443".parse().unwrap(),
            connect_cas: Path::new("/tmp/a \"b\"\\ca.pem"),
            web_addr: "127.0.0.1:4040".parse().unwrap(),
            inspect,
            origins: Origins {
                http: "127.0.0.1:8080".parse().unwrap(),
                stream: "127.0.0.1:9090".parse().unwrap(),
            },
            domain: "bench.localhost",
        }
        .to_yaml()
    }

    #[test]
    fn config_has_the_three_endpoints_and_quotes_paths() {
        let yaml = config(false);
        for line in [
            "version: 3\n",
            "  authtoken: \"tok123\"\n",
            "  connect_url: 127.0.0.1:4443\n",
            "  connect_cas: \"/tmp/a \\\"b\\\"\\\\ca.pem\"\n",
            "  web_addr: 127.0.0.1:4040\n",
            "  inspect_db_size: -1\n",
            "  - name: stream\n    url: tcp://\n    upstream: { url: \"tcp://127.0.0.1:9090\" }\n",
            "  - name: http-tcp\n    url: tcp://\n    upstream: { url: \"tcp://127.0.0.1:8080\" }\n",
            "  - name: http\n    url: \"https://bench.localhost\"\n    upstream: { url: \"http://127.0.0.1:8080\" }\n",
        ] {
            assert!(yaml.contains(line), "{line:?} missing from\n{yaml}");
        }
        assert!(!config(true).contains("inspect_db_size"));
    }

    #[test]
    fn endpoints_are_online_once_all_three_have_urls() {
        let body = |http_url: &str, state: &str| {
            json!({ "uri": "/api/endpoints", "endpoints": [
                { "name": "http", "url": http_url, "state": state, "error": null },
                { "name": "stream", "url": "tcp://localhost:20001", "state": "online" },
                { "name": "http-tcp", "url": "tcp://localhost:20002", "state": "online" },
            ]})
        };
        assert_eq!(endpoints_online(&body("", "starting")).unwrap(), None);
        assert_eq!(
            endpoints_online(&body("https://bench.localhost", "online")).unwrap(),
            Some(Endpoints {
                urls: [
                    "tcp://localhost:20001".into(),
                    "tcp://localhost:20002".into(),
                    "https://bench.localhost".into(),
                ]
            })
        );
        assert_eq!(endpoints_online(&json!({ "endpoints": [] })).unwrap(), None);
        assert!(endpoints_online(&body("", "failed")).is_err());
        assert!(endpoints_online(&json!({ "tunnels": [] })).is_err());
    }
}
