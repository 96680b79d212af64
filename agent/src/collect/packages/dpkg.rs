//! dpkg's database: `/var/lib/dpkg/status`, plus the journal in `/var/lib/dpkg/updates/` that
//! dpkg writes during a run and folds into `status` when it finishes. Reading both gives the
//! current state; a package dpkg left half-way is reported as such.

use std::fs;
use std::io::ErrorKind;

use super::{Error, Instance, describe};
use crate::root::Root;

const STATUS: &str = "/var/lib/dpkg/status";
const UPDATES: &str = "/var/lib/dpkg/updates";
/// `dpkg-divert`'s record: which paths other packages' files are installed away from.
const DIVERSIONS: &str = "/var/lib/dpkg/diversions";
/// `status` is replaced by rename (watched through its folder); journal entries appear in
/// `updates/` (watched itself).
pub(super) const WATCH: [(&str, bool); 3] = [(STATUS, false), (UPDATES, true), (DIVERSIONS, false)];

pub(super) struct Entry {
    pub(super) name: String,
    pub(super) instance: Instance,
    /// (path, md5) of the package's configuration files, from its `Conffiles:` field.
    pub(super) conffiles: Vec<(String, String)>,
}

pub(super) fn present(root: &Root) -> bool {
    root.host_path(STATUS).is_file()
}

pub(super) fn read(root: &Root) -> Result<Vec<Entry>, Error> {
    let status = fs::read_to_string(root.host_path(STATUS)).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::Unsettled(format!("{STATUS} is being replaced")),
        _ => Error::Unreadable(format!("cannot read {STATUS}: {}", describe(&e))),
    })?;
    let mut stanzas: Vec<Stanza> =
        parse(&status).map_err(|e| Error::Unsettled(format!("{STATUS}: {e}")))?;

    // Journal entries override the status file, in the order dpkg wrote them.
    let mut journal: Vec<(u64, String)> = match fs::read_dir(root.host_path(UPDATES)) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let seq = name
                    .parse::<u64>()
                    .ok()
                    .filter(|_| name.bytes().all(|b| b.is_ascii_digit()))?;
                Some((seq, name))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    journal.sort();
    for (_, name) in journal {
        let path = format!("{UPDATES}/{name}");
        let text = match fs::read_to_string(root.host_path(&path)) {
            Ok(t) => t,
            // Folded into status and removed while we were reading: read everything again.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::Unsettled(format!("{path} went away")));
            }
            Err(e) => {
                return Err(Error::Unreadable(format!(
                    "cannot read {path}: {}",
                    describe(&e)
                )));
            }
        };
        for entry in parse(&text).map_err(|e| Error::Unsettled(format!("{path}: {e}")))? {
            match stanzas
                .iter_mut()
                .find(|s| s.package == entry.package && s.arch == entry.arch)
            {
                Some(s) => *s = entry,
                None => stanzas.push(entry),
            }
        }
    }

    Ok(stanzas
        .into_iter()
        .filter_map(|s| {
            let state = match s.status.as_str() {
                "installed" | "triggers-awaited" | "triggers-pending" => "installed".to_owned(),
                "not-installed" | "config-files" => return None,
                other => other.to_owned(), // half-installed, unpacked, half-configured
            };
            Some(Entry {
                name: s.package,
                instance: Instance {
                    manager: "dpkg",
                    arch: s.arch,
                    version: s.version,
                    state,
                },
                conffiles: s.conffiles,
            })
        })
        .collect())
}

struct Stanza {
    package: String,
    arch: String,
    version: String,
    conffiles: Vec<(String, String)>,
    /// The third word of `Status:` (`install ok installed` -> `installed`).
    status: String,
}

/// Parses RFC 822-style stanzas. A stanza without `Package` or `Status`, or a text that does
/// not end in a newline, is what a partly written file looks like: an error.
fn parse(text: &str) -> Result<Vec<Stanza>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("ends in the middle of a line (still being written?)".into());
    }
    let mut out = Vec::new();
    let mut line_no = 0;
    for block in text.split("\n\n") {
        let start = line_no + 1;
        line_no += block.lines().count() + 1;
        if block.trim().is_empty() {
            continue;
        }
        let (mut package, mut arch, mut version, mut status) = (None, None, None, None);
        let mut conffiles = Vec::new();
        let mut field = "";
        for line in block.lines() {
            if line.starts_with([' ', '\t']) {
                // Continuation of a multi-line field; `Conffiles:` lines are ` PATH MD5 [obsolete]`.
                let mut words = line.split_whitespace();
                if field == "Conffiles"
                    && let (Some(path), Some(md5), None) =
                        (words.next(), words.next(), words.next())
                    && md5.len() == 32
                {
                    conffiles.push((path.to_owned(), md5.to_owned()));
                }
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!(
                    "line {start}: stanza has a line that is not a field"
                ));
            };
            let value = value.trim();
            field = key;
            match key {
                "Package" => package = Some(value.to_owned()),
                "Architecture" => arch = Some(value.to_owned()),
                "Version" => version = Some(value.to_owned()),
                "Status" => status = value.split_whitespace().nth(2).map(str::to_owned),
                _ => {}
            }
        }
        let (Some(package), Some(status)) = (package, status) else {
            return Err(format!(
                "stanza at line {start} has no Package or no Status"
            ));
        };
        out.push(Stanza {
            package,
            arch: arch.unwrap_or_default(),
            version: version.unwrap_or_default(),
            conffiles,
            status,
        });
    }
    Ok(out)
}

/// (path, md5) of every regular file the package installed, from `info/NAME[:ARCH].md5sums`.
/// A package without the file (some ship none) owns no checked files.
/// Where dpkg put files diverted away from their path: from -> (to, the diverting package, or
/// `:` for a local diversion). Triplets of lines, as `dpkg-divert --list` reads them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Diversions(std::collections::HashMap<String, (String, String)>);

impl Diversions {
    pub(super) fn read(root: &Root) -> Result<Self, Error> {
        let text = match fs::read_to_string(root.host_path(DIVERSIONS)) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(Error::Unreadable(format!(
                    "cannot read {DIVERSIONS}: {}",
                    describe(&e)
                )));
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        if !lines.len().is_multiple_of(3) {
            // dpkg replaces it by rename, so this is no half-written file: it is broken.
            return Err(Error::Unreadable(format!(
                "{DIVERSIONS} is malformed: {} lines, not triplets of them",
                lines.len()
            )));
        }
        Ok(Self(
            lines
                .chunks_exact(3)
                .map(|t| (t[0].to_owned(), (t[1].to_owned(), t[2].to_owned())))
                .collect(),
        ))
    }

    /// Where `package`'s file for `path` really is: diverted elsewhere when another package
    /// (or the administrator) diverted that path; the diverting package's own file stays.
    pub(super) fn locate(&self, package: &str, path: String) -> String {
        match self.0.get(&path) {
            Some((to, by)) if by != package => to.clone(),
            _ => path,
        }
    }
}

pub(super) fn md5sums(
    root: &Root,
    name: &str,
    arch: &str,
) -> Result<Vec<(String, String)>, String> {
    let candidates = [
        format!("/var/lib/dpkg/info/{name}:{arch}.md5sums"),
        format!("/var/lib/dpkg/info/{name}.md5sums"),
    ];
    for path in &candidates {
        let text = match fs::read_to_string(root.host_path(path)) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {path}: {}", describe(&e))),
        };
        return Ok(text
            .lines()
            .filter_map(|l| {
                let (md5, file) = l.split_once(char::is_whitespace)?;
                let file = file.trim_start().trim_start_matches('/');
                (md5.len() == 32 && !file.is_empty()).then(|| (format!("/{file}"), md5.to_owned()))
            })
            .collect());
    }
    Ok(Vec::new())
}
