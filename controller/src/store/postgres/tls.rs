//! TLS to PostgreSQL with rustls (ring, the process's one provider), in libpq's terms, so a
//! store URL means here what it means to psql:
//!
//! - `sslmode=disable`: never TLS.
//! - `sslmode=prefer` (the default): TLS if the server offers it.
//! - `sslmode=require`: TLS or no connection.
//! - `sslmode=verify-ca`: TLS, and the server's certificate must chain to `sslrootcert`.
//! - `sslmode=verify-full`: as verify-ca, and the certificate must name the host connected to.
//!
//! As with libpq, `prefer` and `require` check the chain when `sslrootcert` is given and do
//! not otherwise (the connection is then encrypted but the server unproven, which the
//! controller says at start). `sslrootcert=system` is the system's roots. `sslcert` and
//! `sslkey` give a client certificate (for `cert` authentication in `pg_hba.conf`).
//!
//! tokio-postgres knows `sslmode` only up to `require` and no file options, so `split` takes
//! these out of the URL and gives tokio-postgres the rest.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the URL asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// tokio-postgres's word for it: it knows whether to ask for TLS, not how to check it.
    fn for_tokio_postgres(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        }
    }
}

/// Where the roots that prove the server come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    File(PathBuf),
    System,
}

/// The TLS half of a store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Settings {
    pub mode: Mode,
    pub roots: Option<Roots>,
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Settings {
    /// How the server is proven, or why it is not: said once when the store opens.
    pub(super) fn unproven(&self) -> Option<String> {
        match (self.mode, &self.roots) {
            (Mode::Disable, _) => {
                Some("sslmode=disable: the connection to the store is not encrypted".into())
            }
            (Mode::Prefer | Mode::Require, None) => Some(format!(
                "sslmode={}: the store's certificate is not checked (no sslrootcert); use sslmode=verify-full&sslrootcert=FILE to prove the server",
                if self.mode == Mode::Prefer {
                    "prefer"
                } else {
                    "require"
                }
            )),
            _ => None,
        }
    }
}

/// Takes the TLS options out of `url`: the URL for tokio-postgres, and the settings.
pub(super) fn split(url: &str) -> Result<(String, Settings), String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut mode = Mode::Prefer;
    let mut roots = None;
    let mut cert = None;
    let mut key = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_decode(value);
        match name {
            "sslmode" => mode = Mode::parse(&decoded)?,
            "sslrootcert" if decoded == "system" => roots = Some(Roots::System),
            "sslrootcert" => roots = Some(Roots::File(decoded.into())),
            "sslcert" => cert = Some(PathBuf::from(decoded)),
            "sslkey" => key = Some(PathBuf::from(decoded)),
            _ => kept.push(pair),
        }
    }
    if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) && roots.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert=FILE (the CA that signed the server's certificate) or sslrootcert=system",
            if mode == Mode::VerifyCa {
                "verify-ca"
            } else {
                "verify-full"
            }
        ));
    }
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("give both sslcert= and sslkey=, or neither".into()),
    };
    kept.push(match mode.for_tokio_postgres() {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((
        format!("{base}?{}", kept.join("&")),
        Settings {
            mode,
            roots,
            identity,
        },
    ))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds the rustls configuration; a file that cannot be read or holds no certificate is
/// named.
pub(super) fn connector(settings: &Settings) -> Result<Connector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &settings.roots {
        None => None,
        Some(Roots::File(path)) => {
            let mut store = rustls::RootCertStore::empty();
            for cert in read_certs(path)? {
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            Some(store)
        }
        Some(Roots::System) => {
            let found = rustls_native_certs::load_native_certs();
            let mut store = rustls::RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("sslrootcert=system: this system has no root certificates".into());
            }
            Some(store)
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        None => Arc::new(Unchecked(provider.clone())),
        Some(store) => {
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert: {e}"))?;
            if settings.mode == Mode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(read_certs(cert)?, key)
                .map_err(|e| format!("sslcert {}: {e}", cert.display()))?
        }
    };
    Ok(Connector(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Accepts any certificate but still checks the handshake's signatures: `prefer` and
/// `require` without roots, as libpq does.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain checked, the name not: `verify-ca` (and `prefer`/`require` with roots).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, once the chain holds.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Makes a TLS session for each connection tokio-postgres opens.
#[derive(Clone)]
pub(super) struct Connector(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = std::convert::Infallible;

    /// `domain` is a unix socket's directory for a socket host, where no TLS is spoken: a
    /// name that is not a host name fails only if a handshake is tried with it.
    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
        Ok(Connect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_owned()).map_err(|_| domain.to_owned()),
        })
    }
}

pub(super) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: Result<ServerName<'static>, String>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            let name = self.name.map_err(|host| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{host:?} is not a host name a certificate can be checked against"),
                )
            })?;
            let tls = connector.connect(name, stream).await?;
            Ok(Stream(tls))
        })
    }
}

pub(super) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    /// `tls-server-end-point` (RFC 5929): the server certificate's hash by the hash of its
    /// signature algorithm (SHA-256 for MD5 and SHA-1), so SCRAM can bind to this session.
    /// None where that hash is not defined (Ed25519), as PostgreSQL then offers no binding.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let Some(cert) = session.peer_certificates().and_then(|c| c.first()) else {
            return ChannelBinding::none();
        };
        match end_point_hash(cert) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

fn end_point_hash(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use ring::digest::{SHA256, SHA384, SHA512, digest};
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let algorithm = match parsed.signature_algorithm.algorithm.to_id_string().as_str() {
        // md5, sha1 and sha256 with RSA; sha1 and sha256 with ECDSA
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => &SHA256,
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => &SHA384,
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => &SHA512,
        _ => return None,
    };
    Some(digest(algorithm, cert).as_ref().to_vec())
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_tokio_postgres_what_it_knows_and_keeps_the_rest() {
        let (url, s) = split(
            "postgresql://plumb@db.example/plumb?application_name=plumb&sslmode=verify-full&sslrootcert=%2Fetc%2Fplumb%2Fpg-ca.pem",
        )
        .expect("accepted");
        assert_eq!(
            url,
            "postgresql://plumb@db.example/plumb?application_name=plumb&sslmode=require"
        );
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.roots, Some(Roots::File("/etc/plumb/pg-ca.pem".into())));
        assert_eq!(s.unproven(), None);

        let (url, s) = split("postgresql://plumb@db/plumb").expect("accepted");
        assert_eq!(url, "postgresql://plumb@db/plumb?sslmode=prefer");
        assert_eq!(s.mode, Mode::Prefer);
        assert!(
            s.unproven().expect("a caveat").contains("not checked"),
            "{:?}",
            s.unproven()
        );

        let (_, s) = split("postgresql://plumb@db/plumb?sslmode=verify-ca&sslrootcert=system&sslcert=c.pem&sslkey=k.pem").expect("accepted");
        assert_eq!(s.roots, Some(Roots::System));
        assert_eq!(s.identity, Some(("c.pem".into(), "k.pem".into())));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_what_would_be() {
        let why = split("postgresql://db/p?sslmode=verify-full").expect_err("refused");
        assert!(why.contains("needs sslrootcert=FILE"), "{why}");
        let why = split("postgresql://db/p?sslmode=allow").expect_err("refused");
        assert!(why.contains("not one of disable, prefer"), "{why}");
        let why = split("postgresql://db/p?sslcert=c.pem").expect_err("refused");
        assert!(why.contains("both sslcert= and sslkey="), "{why}");
        let why = connector(&Settings {
            mode: Mode::VerifyFull,
            roots: Some(Roots::File("/nonexistent/ca.pem".into())),
            identity: None,
        })
        .err()
        .expect("refused");
        assert!(why.contains("/nonexistent/ca.pem"), "{why}");
    }
}
