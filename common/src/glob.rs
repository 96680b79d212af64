//! Globs, as manifests write them and both binaries match them: `*` any run of characters and
//! `?` one character within a name; in a path, `**` any number of names (none included).

/// Whether `name` matches the wildcard `pattern` (`*`, `?`), given as its characters.
pub fn wildcard(pattern: &[char], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (p, n) = (pattern, &name);
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// Whether `name` (one path component) matches `glob`.
pub fn name_matches(glob: &str, name: &str) -> bool {
    wildcard(&glob.chars().collect::<Vec<_>>(), name)
}

/// Whether `path` matches the path glob `glob`: names matched one by one, `**` standing for any
/// number of them.
pub fn path_matches(glob: &str, path: &str) -> bool {
    let g: Vec<&str> = glob.split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    components(&g, &p)
}

/// The directory below which every match of the path glob `glob` lies: its leading names
/// without a wildcard (`/etc/nginx` for `/etc/nginx/**/*.conf`; `/` for `/*`).
pub fn base(glob: &str) -> String {
    let names: Vec<&str> = glob
        .split('/')
        .filter(|s| !s.is_empty())
        .take_while(|s| !s.contains(['*', '?']))
        .collect();
    // A glob without a wildcard is a path: its base is its directory.
    let names = if names.len() == glob.split('/').filter(|s| !s.is_empty()).count() {
        &names[..names.len().saturating_sub(1)]
    } else {
        &names[..]
    };
    format!("/{}", names.join("/"))
}

/// Whether some path strictly below directory `dir` may match the path glob `glob`: what a
/// walk for its matches must enter.
pub fn may_lead_below(glob: &str, dir: &str) -> bool {
    let g: Vec<&str> = glob.split('/').filter(|s| !s.is_empty()).collect();
    let d: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    prefix(&g, &d)
}

/// Whether the names `d` can be the first names of a path (with at least one name more) that
/// `g` matches.
fn prefix(g: &[&str], d: &[&str]) -> bool {
    match (g.split_first(), d.split_first()) {
        (Some((&"**", _)), _) => true,
        (Some(_), None) => true,
        (None, _) => false,
        (Some((first, rest)), Some((name, tail))) => {
            name_matches(first, name) && prefix(rest, tail)
        }
    }
}

fn components(g: &[&str], p: &[&str]) -> bool {
    match g.split_first() {
        None => p.is_empty(),
        Some((&"**", rest)) => (0..=p.len()).any(|i| components(rest, &p[i..])),
        Some((first, rest)) => p
            .split_first()
            .is_some_and(|(name, tail)| name_matches(first, name) && components(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        for (glob, name, want) in [
            ("*.swp", ".motd.swp", true),
            ("*.dpkg-*", "sshd_config.dpkg-old", true),
            ("*-", "passwd-", true),
            ("*-", "passwd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
        ] {
            assert_eq!(name_matches(glob, name), want, "{glob} {name}");
        }
        for (glob, path, want) in [
            ("/etc/ld.so.cache", "/etc/ld.so.cache", true),
            ("/etc/**/*.swp", "/etc/a/b/.x.swp", true),
            ("/etc/**/*.swp", "/etc/.x.swp", true),
            ("**/__pycache__/**", "/usr/lib/x/__pycache__/a.pyc", true),
            ("/etc/nginx/**", "/etc/nginxx/a", false),
            ("/etc/*", "/etc/a/b", false),
        ] {
            assert_eq!(path_matches(glob, path), want, "{glob} {path}");
        }
        assert_eq!(base("/etc/nginx/**/*.conf"), "/etc/nginx");
        assert_eq!(base("/etc/ssh/ssh_host_*_key"), "/etc/ssh");
        assert_eq!(base("/*"), "/");
        assert_eq!(base("/etc/motd"), "/etc");
        for (glob, dir, want) in [
            ("/etc/nginx/**", "/etc/nginx/sites", true),
            ("/etc/*/conf", "/etc/a", true),
            ("/etc/*/conf", "/etc/a/b", false),
            ("/etc/*.conf", "/etc", true),
            ("/etc/*.conf", "/etc/x", false),
            ("/etc/a?/*", "/etc/ab", true),
            ("/etc/a?/*", "/etc/abc", false),
        ] {
            assert_eq!(may_lead_below(glob, dir), want, "{glob} {dir}");
        }
    }
}
