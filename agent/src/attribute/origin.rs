//! The usual origins of a change, in one word a report can group by: a configuration tool or a
//! package manager that was the writer or one of its ancestors, else a person's login session
//! (`manual`) or a process outside any (`service`). Pure.

/// Configuration tools, by the names their processes and scripts go by. A configuration tool
/// that runs a package manager is the origin: it asked for the change.
const CONFIG_TOOLS: &[(&str, &str)] = &[
    ("puppet", "puppet"),
    ("chef-client", "chef"),
    ("chef-solo", "chef"),
    ("cinc-client", "chef"),
    ("ansible", "ansible"),
    ("ansible-playbook", "ansible"),
    ("ansible-pull", "ansible"),
    ("salt-minion", "salt"),
    ("salt-call", "salt"),
];

/// Package managers. The outermost wins: apt runs dpkg, and apt is what someone asked.
const PACKAGE_MANAGERS: &[(&str, &str)] = &[
    ("dpkg", "dpkg"),
    ("apt", "apt"),
    ("apt-get", "apt"),
    ("aptitude", "apt"),
    ("unattended-upgr", "apt"),
    ("unattended-upgrade", "apt"),
    ("rpm", "rpm"),
    ("dnf", "dnf"),
    ("dnf-3", "dnf"),
    ("microdnf", "dnf"),
    ("yum", "yum"),
    ("apk", "apk"),
    ("pacman", "pacman"),
];

/// The origin of a change made by process `name` (run as `argv`, its first few arguments)
/// whose ancestors are `parents` (nearest first); `login` says whether it runs in a login
/// session (an audit login uid is set).
pub(super) fn of(name: &str, argv: &[String], parents: &[String], login: bool) -> &'static str {
    let chain = || std::iter::once(name).chain(parents.iter().map(String::as_str));
    // An interpreted tool's process is its interpreter (python3, ruby): its script says what
    // it is (ansible's modules run as AnsiballZ_*.py).
    let script = argv.iter().skip(1).find_map(|a| {
        let base = a.rsplit('/').next().unwrap_or(a);
        if base.starts_with("AnsiballZ_") {
            return Some("ansible");
        }
        lookup(CONFIG_TOOLS, base).or_else(|| lookup(PACKAGE_MANAGERS, base))
    });
    if let Some(tool) = chain().filter_map(|n| lookup(CONFIG_TOOLS, n)).next_back() {
        return tool;
    }
    if let Some(tool) = script.filter(|t| CONFIG_TOOLS.iter().any(|(_, w)| w == t)) {
        return tool;
    }
    if let Some(manager) = chain()
        .filter_map(|n| lookup(PACKAGE_MANAGERS, n))
        .next_back()
        .or(script)
    {
        return manager;
    }
    if login { "manual" } else { "service" }
}

fn lookup(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
    table.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_outermost_tool_names_the_origin() {
        /// The process, its arguments, its ancestors, whether in a login, and its origin.
        type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], bool, &'a str);
        let cases: &[Case<'_>] = &[
            ("sed", &["sed", "-i"], &["bash", "sshd"], true, "manual"),
            ("sed", &["sed"], &["cron"], false, "service"),
            ("dpkg", &["/usr/bin/dpkg", "-i"], &["bash"], true, "dpkg"),
            ("dpkg", &["dpkg"], &["apt-get", "bash"], true, "apt"),
            ("cp", &["cp"], &["sh", "dpkg", "apt"], false, "apt"),
            (
                "cp",
                &["cp"],
                &["sh", "dpkg", "apt", "puppet"],
                false,
                "puppet",
            ),
            (
                "python3",
                &["/usr/bin/python3", "/root/.ansible/tmp/x/AnsiballZ_copy.py"],
                &["sh", "sshd"],
                true,
                "ansible",
            ),
            (
                "ruby",
                &["/usr/bin/ruby", "/usr/bin/puppet", "agent"],
                &[],
                false,
                "puppet",
            ),
            (
                "python3",
                &["python3", "/usr/bin/dnf", "install"],
                &[],
                true,
                "dnf",
            ),
            ("chef-client", &[], &["systemd"], false, "chef"),
            ("rpm", &["rpm", "-U"], &["dnf"], false, "dnf"),
        ];
        for (name, argv, parents, login, want) in cases {
            let parents = names(parents);
            assert_eq!(
                of(name, &names(argv), &parents, *login),
                *want,
                "{name} {argv:?} under {parents:?}"
            );
        }
    }
}
