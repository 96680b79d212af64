//! apk's database (Alpine): `/lib/apk/db/installed`, blocks of `K:value` lines, one block per
//! installed package (`P:` name, `V:` version, `A:` arch).

use std::fs;
use std::io::ErrorKind;

use super::{Error, Instance, describe};
use crate::root::Root;

const INSTALLED: &str = "/lib/apk/db/installed";
pub(super) const WATCH: [(&str, bool); 1] = [(INSTALLED, false)];

pub(super) fn present(root: &Root) -> bool {
    root.host_path(INSTALLED).is_file()
}

pub(super) fn read(root: &Root) -> Result<Vec<(String, Instance)>, Error> {
    let text = fs::read_to_string(root.host_path(INSTALLED)).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::Unsettled(format!("{INSTALLED} is being replaced")),
        _ => Error::Unreadable(format!("cannot read {INSTALLED}: {}", describe(&e))),
    })?;
    parse(&text).map_err(|e| Error::Unsettled(format!("{INSTALLED}: {e}")))
}

fn parse(text: &str) -> Result<Vec<(String, Instance)>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("ends in the middle of a line (still being written?)".into());
    }
    let mut out = Vec::new();
    for (n, block) in text.split("\n\n").enumerate() {
        if block.trim().is_empty() {
            continue;
        }
        let (mut name, mut version, mut arch) = (None, None, String::new());
        for line in block.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v.to_owned()),
                Some(("V", v)) => version = Some(v.to_owned()),
                Some(("A", v)) => arch = v.to_owned(),
                Some(_) => {}
                None => return Err(format!("block {} has a line that is not a field", n + 1)),
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            return Err(format!("block {} has no P: or no V:", n + 1));
        };
        let instance = Instance {
            manager: "apk",
            arch,
            version,
            state: "installed".into(),
        };
        out.push((name, instance));
    }
    Ok(out)
}
