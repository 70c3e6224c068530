//! Bind tokens: the opaque `Extra.Token` a BindResp carries and the agent sends back on rebind.
//!
//! A token names the URL the tunnel was given and is signed (HMAC-SHA256) over the credential,
//! tunnel id, protocol and URL with a per-deployment secret kept in `edge.key`. A reconnecting
//! agent that presents a valid token gets the same generated URL back, and may take over a route
//! that a stale session of its own still holds. No server-side state is needed, so this survives
//! edge restarts.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Longest token accepted from an agent.
pub const MAX_BIND_TOKEN_LEN: usize = 1024;

/// Issues and checks bind tokens.
pub struct BindTokens {
    key: [u8; 32],
}

impl BindTokens {
    /// Loads the secret from `dir/edge.key`, creating it on first start.
    pub fn load_or_create(dir: &Path) -> std::io::Result<BindTokens> {
        let path = dir.join("edge.key");
        if let Ok(bytes) = fs::read(&path) {
            if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(BindTokens { key });
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: expected 32 bytes", path.display()),
            ));
        }
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&path)?.write_all(&key)?;
        Ok(BindTokens { key })
    }

    /// A token for `url`, bound to the credential, tunnel id and protocol.
    pub fn issue(&self, credential_id: &str, tunnel_id: &str, proto: &str, url: &str) -> String {
        let mac = self.mac(credential_id, tunnel_id, proto, url);
        format!("{}.{}", B64.encode(url), B64.encode(mac))
    }

    /// The URL a token vouches for, if it is genuine for this credential, tunnel and protocol.
    pub fn verify(
        &self,
        token: &str,
        credential_id: &str,
        tunnel_id: &str,
        proto: &str,
    ) -> Option<String> {
        if token.len() > MAX_BIND_TOKEN_LEN {
            return None;
        }
        let (url, mac) = token.split_once('.')?;
        let url = String::from_utf8(B64.decode(url).ok()?).ok()?;
        let mac = B64.decode(mac).ok()?;
        let mut check = self.hmac();
        feed(&mut check, credential_id, tunnel_id, proto, &url);
        check.verify_slice(&mac).ok()?;
        Some(url)
    }

    fn hmac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    fn mac(&self, credential_id: &str, tunnel_id: &str, proto: &str, url: &str) -> Vec<u8> {
        let mut mac = self.hmac();
        feed(&mut mac, credential_id, tunnel_id, proto, url);
        mac.finalize().into_bytes().to_vec()
    }
}

fn feed(mac: &mut Hmac<Sha256>, credential_id: &str, tunnel_id: &str, proto: &str, url: &str) {
    for part in [credential_id, tunnel_id, proto, url] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_tunnel() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = BindTokens::load_or_create(dir.path()).unwrap();
        let t = tokens.issue("cr_1", "tn_1", "https", "https://a.localhost");
        assert_eq!(
            tokens.verify(&t, "cr_1", "tn_1", "https").as_deref(),
            Some("https://a.localhost")
        );
        assert_eq!(tokens.verify(&t, "cr_2", "tn_1", "https"), None);
        assert_eq!(tokens.verify(&t, "cr_1", "tn_2", "https"), None);
        assert_eq!(tokens.verify(&t, "cr_1", "tn_1", "http"), None);
        assert_eq!(tokens.verify("garbage", "cr_1", "tn_1", "https"), None);
        let mut forged = t.clone();
        forged.replace_range(0..1, "Z");
        assert_eq!(tokens.verify(&forged, "cr_1", "tn_1", "https"), None);
        // The same secret is loaded on the next start.
        let again = BindTokens::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&t, "cr_1", "tn_1", "https").is_some());
    }
}
