//! Who is on the other end of a mutual-TLS connection, from the URI SANs of the certificate
//! `plumb certs` issued: `plumb://agent/HOST`, or `plumb://operator/NAME` with the person's
//! role in `plumb://role/ROLE`.

use tonic::{Request, Status};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::manifest::glob::Glob;
use crate::role::{Action, Person, Role, Scope, Selector};

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

/// The hosts an operator's certificate limits them to (`plumb://scope/hosts/GLOB`, any of
/// them; `plumb://scope/label/KEY=VALUE`, all of them; percent-encoded): none, the whole
/// fleet. `None`: a scope that does not parse, which refuses the certificate.
fn scope_of(uris: &[&str]) -> Option<Scope> {
    let mut selector = Selector::default();
    for uri in uris {
        if let Some(glob) = uri.strip_prefix("plumb://scope/hosts/") {
            selector
                .hosts
                .push(Glob::new(&crate::certs::unescape(glob)?).ok()?);
        } else if let Some(label) = uri.strip_prefix("plumb://scope/label/") {
            let (k, v) = label.split_once('=')?;
            selector
                .labels
                .insert(crate::certs::unescape(k)?, crate::certs::unescape(v)?);
        } else if uri.starts_with("plumb://scope/") {
            return None;
        }
    }
    Some(Scope {
        selectors: if selector == Selector::default() {
            Vec::new()
        } else {
            vec![selector]
        },
    })
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
            return match (role, scope_of(&uris)) {
                (Some(role), Some(scope)) => Peer::Operator(Person {
                    name: name.to_owned(),
                    role,
                    scope,
                }),
                _ => Peer::Other,
            };
        }
    }
    Peer::Other
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    use super::*;
    use crate::certs::{Kind, init, issue};

    fn issued(role: Role, scope: &[(&str, String)]) -> Peer {
        let dir = tempfile::tempdir().expect("temp dir");
        init(dir.path(), 10).expect("a CA");
        issue(
            dir.path(),
            Kind::Operator,
            &["pat".to_owned()],
            Some(role),
            scope,
            10,
            None,
        )
        .expect("a certificate");
        let pem = std::fs::read(dir.path().join("operator-pat.pem")).expect("read");
        let der = CertificateDer::from_pem_slice(&pem).expect("PEM");
        peer_of(der.as_ref())
    }

    #[test]
    fn an_operator_certificate_carries_the_role_and_the_hosts_it_is_for() {
        let Peer::Operator(p) = issued(
            Role::Operator,
            &[
                ("hosts", "web-*".to_owned()),
                ("hosts", "api-?".to_owned()),
                ("label", "env=prod/eu".to_owned()),
            ],
        ) else {
            panic!("an operator");
        };
        assert_eq!((p.name.as_str(), p.role), ("pat", Role::Operator));
        assert_eq!(p.scope.describe(), "hosts web-* api-?, label env=prod/eu");
        let prod: std::collections::BTreeMap<String, String> =
            [("env".to_owned(), "prod/eu".to_owned())].into();
        assert!(p.scope.sees("web-1", &prod) && !p.scope.sees("db-1", &prod));
        let Peer::Operator(whole) = issued(Role::Viewer, &[]) else {
            panic!("an operator");
        };
        assert!(whole.scope.whole());
        let dir = tempfile::tempdir().expect("temp dir");
        init(dir.path(), 10).expect("a CA");
        let e = issue(
            dir.path(),
            Kind::Operator,
            &["pat".to_owned()],
            Some(Role::Viewer),
            &[("hosts", "web 1".to_owned())],
            10,
            None,
        )
        .expect_err("a glob with a space");
        assert!(e.to_string().contains("--hosts \"web 1\""), "{e}");
    }
}
