//! `plumb certs`: a small private CA for plumb's mutual TLS, and the certificates it issues.
//!
//! Identities live in URI SANs: `plumb://agent/HOST`, `plumb://operator/NAME`,
//! `plumb://controller`; an operator's role in `plumb://role/ROLE`. The controller reads them from the peer's certificate
//! (`server::identity`); the common name is for people.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};

use crate::role::Role;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A client certificate an agent presents; it can only ever report for HOST.
    Agent,
    /// A client certificate for the CLI and the console, for a person with a role.
    Operator,
    /// The controller's server certificate, for the DNS names and IP addresses given.
    Controller,
}

/// A file that was written, for the report to the user.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub what: String,
}

/// Creates the CA in `dir` (refusing to overwrite one).
pub fn init(dir: &Path, days: u32) -> anyhow::Result<Vec<Written>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    ensure!(
        !dir.join(CA_KEY).exists(),
        "{} already holds a CA; hint: issue certificates with `plumb certs issue`, or use another --dir",
        dir.display()
    );
    let key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name("plumb CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days, None)?;
    let cert = params
        .self_signed(&key)
        .context("cannot sign the CA certificate")?;
    Ok(vec![
        write(
            dir,
            CA_KEY,
            &key.serialize_pem(),
            "CA private key: keep it offline, it signs every identity",
        )?,
        write(
            dir,
            CA_CERT,
            &cert.pem(),
            "CA certificate: give it to the controller, agents and operators",
        )?,
    ])
}

/// Issues a certificate (and its key) signed by the CA in `dir`.
pub fn issue(
    dir: &Path,
    kind: Kind,
    names: &[String],
    role: Option<Role>,
    scope: &[(&str, String)],
    days: u32,
    not_after: Option<&str>,
) -> anyhow::Result<Vec<Written>> {
    let ca_key = read(dir, CA_KEY)?;
    let ca_cert = read(dir, CA_CERT)?;
    let ca_key = KeyPair::from_pem(&ca_key).context("the CA key does not parse")?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert, ca_key).context("the CA certificate does not parse")?;

    let mut params = CertificateParams::default();
    match (kind, role) {
        (Kind::Operator, None) => bail!(
            "give the operator's role: --role viewer|operator|auditor|admin (see `plumb certs issue --help`)"
        ),
        (Kind::Agent | Kind::Controller, Some(_)) => {
            bail!("--role is for operator certificates only")
        }
        _ => {}
    }
    ensure!(
        scope.is_empty() || kind == Kind::Operator,
        "--hosts and --label are for operator certificates only"
    );
    for (what, value) in scope {
        if *what == "hosts" {
            crate::manifest::glob::Glob::new(value)
                .map_err(|p| anyhow::anyhow!("--hosts {value:?}: {p}"))?;
        }
    }
    let (stem, uses) = match kind {
        Kind::Agent | Kind::Operator => {
            let [id] = names else {
                bail!("give exactly one {} name", kind_name(kind))
            };
            check_id(id)?;
            params.distinguished_name = name(id);
            params.subject_alt_names = vec![SanType::URI(
                format!("plumb://{}/{id}", kind_name(kind)).try_into()?,
            )];
            if let Some(role) = role {
                params
                    .subject_alt_names
                    .push(SanType::URI(format!("plumb://role/{role}").try_into()?));
            }
            for (what, value) in scope {
                params.subject_alt_names.push(SanType::URI(
                    format!("plumb://scope/{what}/{}", escape(value)).try_into()?,
                ));
            }
            (
                format!("{}-{id}", kind_name(kind)),
                ExtendedKeyUsagePurpose::ClientAuth,
            )
        }
        Kind::Controller => {
            ensure!(
                !names.is_empty(),
                "give the controller's DNS names or IP addresses, e.g. plumb.example.com 127.0.0.1"
            );
            params.distinguished_name = name(&names[0]);
            let mut sans = vec![SanType::URI("plumb://controller".try_into()?)];
            for n in names {
                sans.push(match n.parse::<IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        n.as_str()
                            .try_into()
                            .with_context(|| format!("invalid DNS name {n:?}"))?,
                    ),
                });
            }
            params.subject_alt_names = sans;
            ("controller".to_owned(), ExtendedKeyUsagePurpose::ServerAuth)
        }
    };
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![uses];
    validity(&mut params, days, not_after)?;
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the certificate")?;
    Ok(vec![
        write(
            dir,
            &format!("{stem}-key.pem"),
            &key.serialize_pem(),
            "private key",
        )?,
        write(dir, &format!("{stem}.pem"), &cert.pem(), "certificate")?,
    ])
}

/// How to give a browser an operator's identity for the console: a PKCS#12 file, made with
/// the openssl tool (its password protects the key in transit; import it into the browser).
pub fn browser_hint(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "for the web console, export it for a browser (asks for a password) and import the .p12 there:\n  \
         openssl pkcs12 -export -in {d}/operator-{name}.pem -inkey {d}/operator-{name}-key.pem \\\n    \
         -certfile {d}/{CA_CERT} -name plumb-{name} -out operator-{name}.p12\n"
    )
}

/// A value in a URI SAN: unreserved characters, `*`, `?` and `=` as they are, the rest
/// percent-encoded.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~*?=".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `escape` undone; `None` for a malformed escape or text that is not UTF-8.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Agent => "agent",
        Kind::Operator => "operator",
        Kind::Controller => "controller",
    }
}

fn check_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 253
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    ensure!(
        ok,
        "invalid name {id:?}: use letters, digits, '.', '_', '-', ':'"
    );
    Ok(())
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationName, "plumb");
    dn
}

/// From yesterday (clock skew) to `days` from now, or to an explicit `YYYY-MM-DD`.
fn validity(
    params: &mut CertificateParams,
    days: u32,
    not_after: Option<&str>,
) -> anyhow::Result<()> {
    let today = (SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() / 86_400) as i64;
    let (y, m, d) = civil(today - 1);
    params.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = match not_after {
        Some(date) => parse_date(date)?,
        None => civil(today + i64::from(days)),
    };
    params.not_after = date_time_ymd(y, m, d);
    Ok(())
}

fn parse_date(s: &str) -> anyhow::Result<(i32, u8, u8)> {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        bail!("invalid date {s:?}; expected YYYY-MM-DD")
    };
    let (y, m, d): (i32, u8, u8) = (y.parse()?, m.parse()?, d.parse()?);
    ensure!(
        (1..=12).contains(&m) && (1..=31).contains(&d),
        "invalid date {s:?}"
    );
    Ok((y, m, d))
}

/// The civil date of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

fn read(dir: &Path, file: &str) -> anyhow::Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}; hint: create the CA first with `plumb certs init --dir {}`",
            path.display(),
            dir.display()
        )
    })
}

/// Writes a file readable by its owner only (keys and certificates alike).
fn write(dir: &Path, file: &str, content: &str, what: &str) -> anyhow::Result<Written> {
    let path = dir.join(file);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(Written {
        path,
        what: what.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(20_416), (2025, 11, 24));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
