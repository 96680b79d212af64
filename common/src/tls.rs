//! Client-side mutual TLS, shared by the agent and the operator CLI: the CA that signed the
//! controller's certificate, and this client's own certificate and key.

use std::path::Path;

use anyhow::Context as _;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// PEM contents.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: String,
    pub identity: Option<(String, String)>,
}

impl ClientTls {
    /// Reads the files; a certificate needs its key and the other way round.
    pub fn load(ca: &Path, cert: Option<&Path>, key: Option<&Path>) -> anyhow::Result<Self> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
        };
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => anyhow::bail!("give both --cert and --key, or neither"),
        };
        Ok(Self {
            ca: read(ca)?,
            identity,
        })
    }

    pub fn apply(&self, endpoint: Endpoint) -> anyhow::Result<Endpoint> {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca));
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint
            .tls_config(config)
            .context("invalid TLS configuration")
    }
}

/// The one crypto provider of the process (ring), installed before any TLS is used: with more
/// than one in the dependency tree rustls would refuse to pick.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
