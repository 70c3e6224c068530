//! TLS material for the edge: the development CA, the agent listener's certificate, and the
//! public HTTPS certificate resolver.
//!
//! On first start the edge creates a CA and a server certificate for the agent listener in its
//! data directory; later starts load them. Public HTTPS names get leaf certificates issued by the
//! same CA on demand (cached, bounded), unless the operator supplies a certificate and key, in which
//! case that pair serves every name. This module owns files under the data directory named
//! `ca.pem`, `ca.key`, `agent.pem`, `agent.key`; it must not know about routing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Most leaf certificates kept by the on-demand issuer; the cache is cleared when it is full.
pub const MAX_ISSUED_CERTS: usize = 10_000;

/// How long an issued leaf certificate is valid.
const LEAF_VALIDITY_DAYS: i64 = 397;

/// Errors while creating or loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The edge's certificate authority: signs the agent listener's certificate and on-demand leaves.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem: String,
    /// One key for every on-demand leaf: issuing then costs a signature, not a key generation.
    leaf_key: KeyPair,
}

impl Authority {
    /// Loads `ca.pem`/`ca.key` from `dir`, creating both on first start.
    pub fn load_or_create(dir: &Path) -> Result<Authority, TlsError> {
        let cert_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        if cert_path.exists() && key_path.exists() {
            let pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| TlsError::Invalid {
                path: key_path.clone(),
                reason: e.to_string(),
            })?;
            let params =
                CertificateParams::from_ca_cert_pem(&pem).map_err(|e| TlsError::Invalid {
                    path: cert_path.clone(),
                    reason: e.to_string(),
                })?;
            // Re-signing the parsed parameters yields an issuer with the same name and key, which
            // is all a leaf needs to chain to the certificate on disk.
            let cert = params.self_signed(&key)?;
            let leaf_key = KeyPair::generate()?;
            return Ok(Authority {
                cert,
                key,
                pem,
                leaf_key,
            });
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Warren");
        dn.push(
            DnType::CommonName,
            format!("Warren edge CA {}", hex_suffix(&key)),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        let pem = cert.pem();
        write(&cert_path, pem.as_bytes(), false)?;
        write(&key_path, key.serialize_pem().as_bytes(), true)?;
        let leaf_key = KeyPair::generate()?;
        Ok(Authority {
            cert,
            key,
            pem,
            leaf_key,
        })
    }

    /// The CA certificate in PEM form, as agents must trust it.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Issues a server certificate with a new key for `names` (DNS names or IP literals).
    pub fn issue(&self, names: &[String]) -> Result<(String, KeyPair), TlsError> {
        let key = KeyPair::generate()?;
        let pem = self.sign_leaf(names, &key)?;
        Ok((pem, key))
    }

    fn sign_leaf(&self, names: &[String], key: &KeyPair) -> Result<String, TlsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(LEAF_VALIDITY_DAYS);
        Ok(params.signed_by(key, &self.cert, &self.key)?.pem())
    }

    /// Issues a leaf for `names` (with the shared leaf key) as a ready-to-serve rustls key,
    /// chained to this CA.
    fn certified_key(&self, names: &[String]) -> Result<CertifiedKey, TlsError> {
        let key = &self.leaf_key;
        let pem = self.sign_leaf(names, key)?;
        let chain = vec![CertificateDer::from(pem_der(&pem)), self.cert.der().clone()];
        let key_der = PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| TlsError::Rustls(rustls::Error::General(format!("issued key: {e}"))))?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)?;
        Ok(CertifiedKey::new(chain, signer))
    }
}

fn hex_suffix(key: &KeyPair) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.public_key_raw());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn pem_der(pem: &str) -> Vec<u8> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    let io_err = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = secret;
    use std::io::Write;
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)
}

/// Loads a PEM certificate chain and private key supplied by the operator.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut read(cert)?.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Invalid {
            path: cert.to_owned(),
            reason: "no PEM certificate found".into(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut read(key)?.as_bytes())
        .map_err(|e| TlsError::Invalid {
            path: key.to_owned(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Invalid {
            path: key.to_owned(),
            reason: "no PEM private key found".into(),
        })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)?;
    Ok(CertifiedKey::new(chain, signer))
}

/// The agent listener's certificate: operator-supplied, or issued by the CA for `names` and kept in
/// `agent.pem`/`agent.key` (reissued when the configured names change).
pub fn agent_certified_key(
    dir: &Path,
    ca: &Authority,
    names: &[String],
) -> Result<CertifiedKey, TlsError> {
    let cert_path = dir.join("agent.pem");
    let key_path = dir.join("agent.key");
    let names_path = dir.join("agent.names");
    let wanted = names.join("\n");
    let current = fs::read_to_string(&names_path).unwrap_or_default();
    if !(cert_path.exists() && key_path.exists() && current == wanted) {
        let (pem, key) = ca.issue(names)?;
        let chain = format!("{pem}{}", ca.pem());
        write(&cert_path, chain.as_bytes(), false)?;
        write(&key_path, key.serialize_pem().as_bytes(), true)?;
        write(&names_path, wanted.as_bytes(), false)?;
    }
    load_certified_key(&cert_path, &key_path)
}

/// A rustls server configuration serving one fixed key (the agent listener: no ALPN).
pub fn server_config_for(key: Arc<CertifiedKey>) -> Result<rustls::ServerConfig, TlsError> {
    let resolver = Arc::new(Fixed(key));
    Ok(server_builder()?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

/// A rustls server configuration for public HTTPS with `resolver` choosing the certificate by SNI,
/// offering HTTP/2 and HTTP/1.1.
pub fn public_server_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = server_builder()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn server_builder()
-> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::WantsVerifier>, TlsError> {
    Ok(rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?)
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Chooses the public HTTPS certificate by SNI.
///
/// With an operator certificate every name gets it. Otherwise every name gets a leaf issued by the
/// CA (one signature; all leaves share one key), so a visitor who trusts the CA always reaches an
/// answer — a clear 404 page for names nobody serves. Leaves for names that `is_served` accepts are
/// cached; others are not, so unknown names cannot fill memory. Clients that send no SNI get the
/// fallback certificate for the base domain.
pub struct PublicCerts {
    operator: Option<Arc<CertifiedKey>>,
    ca: Arc<Authority>,
    fallback: Arc<CertifiedKey>,
    issued: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    is_served: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for PublicCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicCerts")
            .field("operator", &self.operator.is_some())
            .finish_non_exhaustive()
    }
}

impl PublicCerts {
    /// Builds the resolver; `base_names` are the names the fallback certificate covers.
    pub fn new(
        ca: Arc<Authority>,
        operator: Option<Arc<CertifiedKey>>,
        base_names: &[String],
        is_served: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Result<PublicCerts, TlsError> {
        let fallback = Arc::new(ca.certified_key(base_names)?);
        Ok(PublicCerts {
            operator,
            ca,
            fallback,
            issued: Mutex::new(HashMap::new()),
            is_served: Box::new(is_served),
        })
    }
}

impl ResolvesServerCert for PublicCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(key) = &self.operator {
            return Some(key.clone());
        }
        let Some(name) = hello.server_name() else {
            return Some(self.fallback.clone());
        };
        let name = name.to_ascii_lowercase();
        if !(self.is_served)(&name) {
            return match self.ca.certified_key(std::slice::from_ref(&name)) {
                Ok(key) => Some(Arc::new(key)),
                Err(_) => Some(self.fallback.clone()),
            };
        }
        if let Some(key) = self.issued.lock().expect("cert cache").get(&name) {
            return Some(key.clone());
        }
        match self.ca.certified_key(std::slice::from_ref(&name)) {
            Ok(key) => {
                let key = Arc::new(key);
                let mut issued = self.issued.lock().expect("cert cache");
                if issued.len() >= MAX_ISSUED_CERTS {
                    issued.clear();
                }
                issued.insert(name, key.clone());
                Some(key)
            }
            Err(error) => {
                tracing::warn!(%error, "issuing a certificate failed");
                Some(self.fallback.clone())
            }
        }
    }
}
