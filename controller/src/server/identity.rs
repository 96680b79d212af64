//! Who is on the other end of a mutual-TLS connection, from the URI SANs of the certificate
//! `plumb certs` issued: `plumb://agent/HOST`, or `plumb://operator/NAME` with the person's
//! role in `plumb://role/ROLE`.

use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::role::{Action, Person, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    Agent(String),
    Operator(Person),
    /// A certificate our CA signed, but for neither role (e.g. the controller's own), or an
    /// operator's naming a role this controller does not know.
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

    /// The person asking, if their role allows `action` (without TLS: the local admin); a
    /// refusal says which role is needed.
    pub(crate) fn person<T>(self, request: &Request<T>, action: Action) -> Result<Person, Status> {
        let person = match self.peer(request)? {
            None => Person::local(),
            Some(Peer::Operator(person)) => person,
            Some(other) => {
                tracing::warn!(peer = ?other, "refused a request from a certificate that is not an operator's");
                return Err(Status::permission_denied(format!(
                    "only operator certificates may {}",
                    action.what()
                )));
            }
        };
        person.allow(action).map_err(|refusal| {
            tracing::warn!(person = %refusal.person, action = action.what(), "refused: the role does not allow it");
            Status::permission_denied(refusal.to_string())
        })?;
        Ok(person)
    }
}

/// The peer a client certificate names. An operator's certificate from before roles existed
/// carries none, and keeps what it could do then: everything (`admin`).
pub(crate) fn peer_of(der: &[u8]) -> Peer {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Peer::Other;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Peer::Other;
    };
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    for uri in &uris {
        if let Some(host) = uri.strip_prefix("plumb://agent/") {
            return Peer::Agent(host.to_owned());
        }
        if let Some(name) = uri.strip_prefix("plumb://operator/") {
            let roles: Vec<&str> = uris
                .iter()
                .filter_map(|u| u.strip_prefix("plumb://role/"))
                .collect();
            let role = match roles.as_slice() {
                [] => Some(Role::Admin),
                [one] => Role::parse(one),
                _ => None,
            };
            return match role {
                Some(role) => Peer::Operator(Person {
                    name: name.to_owned(),
                    role,
                }),
                None => Peer::Other,
            };
        }
    }
    Peer::Other
}
