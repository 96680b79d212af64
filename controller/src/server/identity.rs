//! Who is on the other end of a mutual-TLS connection, from the URI SANs of the certificate
//! `plumb certs` issued: `plumb://agent/HOST` or `plumb://operator/NAME`.

use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    Agent(String),
    Operator(String),
    /// A certificate our CA signed, but for neither role (e.g. the controller's own).
    Other,
}

/// Whether connections are mutual TLS; with plaintext (loopback, `plumb dev`) nobody is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    Plaintext,
    MutualTls,
}

impl Auth {
    /// The peer of a request under mutual TLS (`None` in plaintext mode).
    pub(crate) fn peer<T>(self, request: &Request<T>) -> Result<Option<Peer>, Status> {
        if self == Auth::Plaintext {
            return Ok(None);
        }
        let certs = request
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        Ok(Some(peer_of(leaf.as_ref())))
    }

    /// Only operators may read the fleet.
    pub(crate) fn require_operator<T>(self, request: &Request<T>) -> Result<(), Status> {
        match self.peer(request)? {
            None | Some(Peer::Operator(_)) => Ok(()),
            Some(other) => {
                tracing::warn!(peer = ?other, "refused a query from a certificate that is not an operator's");
                Err(Status::permission_denied(
                    "only operator certificates may query the fleet",
                ))
            }
        }
    }
}

pub(crate) fn peer_of(der: &[u8]) -> Peer {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Peer::Other;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Peer::Other;
    };
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(host) = uri.strip_prefix("plumb://agent/") {
                return Peer::Agent(host.to_owned());
            }
            if let Some(op) = uri.strip_prefix("plumb://operator/") {
                return Peer::Operator(op.to_owned());
            }
        }
    }
    Peer::Other
}
