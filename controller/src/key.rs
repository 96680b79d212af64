//! What observations and drift are filed under: a declared file, or a declared package. Pure.

use std::borrow::Cow;
use std::fmt;

/// One key of a host's desired state. `Display` gives the resource string reports and drift
/// use (`file:/etc/ssh/sshd_config`, `package:nginx`). Files sort before packages, each by
/// name, as the untyped keys did.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A declared path, absolute.
    File(Box<str>),
    /// A declared package, by name.
    Package(Box<str>),
}

// A controller holds one key per observed path of every host (millions): no larger than the
// `String` keys it replaced.
const _: () = assert!(std::mem::size_of::<Key>() == std::mem::size_of::<String>());

/// How a package's key is spelled in a store (a path always starts with `/`, so the two
/// cannot be confused).
const STORED_PACKAGE: &str = "package:";

impl Key {
    pub fn file(path: &str) -> Self {
        Key::File(path.into())
    }

    pub fn package(name: &str) -> Self {
        Key::Package(name.into())
    }

    /// The path or the package name.
    pub fn name(&self) -> &str {
        match self {
            Key::File(path) => path,
            Key::Package(name) => name,
        }
    }

    /// The text a store files the key under: a path as it is, a package as `package:NAME`.
    /// It is how keys were spelled before they were typed, so that existing stores read back
    /// unchanged.
    pub fn stored(&self) -> Cow<'_, str> {
        match self {
            Key::File(path) => Cow::Borrowed(path),
            Key::Package(name) => Cow::Owned(format!("{STORED_PACKAGE}{name}")),
        }
    }

    /// The key a resource names, as `Display` writes it (`file:/etc/x`, `package:nginx`), or
    /// as people type it (a bare absolute path); `None` for anything else.
    pub fn parse_resource(text: &str) -> Option<Self> {
        if let Some(path) = text
            .strip_prefix("file:")
            .or(text.starts_with('/').then_some(text))
        {
            return (path.starts_with('/')).then(|| Key::file(path));
        }
        text.strip_prefix("package:")
            .filter(|n| !n.is_empty())
            .map(Key::package)
    }

    /// The inverse of [`Key::stored`].
    pub fn from_stored(text: &str) -> Self {
        match text.strip_prefix(STORED_PACKAGE) {
            Some(name) => Key::package(name),
            None => Key::file(text),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::File(path) => write!(f, "file:{path}"),
            Key::Package(name) => write!(f, "package:{name}"),
        }
    }
}

/// The resource string of a declared file, as `Key::File(path)` displays.
pub fn file_resource(path: &str) -> String {
    format!("file:{path}")
}

/// The resource string of a declared package, as `Key::Package(name)` displays.
pub fn package_resource(name: &str) -> String {
    format!("package:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_displays_as_its_resource_and_reads_back_from_its_stored_text() {
        let file = Key::file("/etc/ssh/sshd_config");
        let package = Key::package("nginx");
        assert_eq!(file.to_string(), "file:/etc/ssh/sshd_config");
        assert_eq!(package.to_string(), "package:nginx");
        assert_eq!(file.stored(), "/etc/ssh/sshd_config");
        assert_eq!(package.stored(), "package:nginx");
        assert_eq!(file_resource("/etc/ssh/sshd_config"), file.to_string());
        assert_eq!(package_resource("nginx"), package.to_string());
        for key in [file, package] {
            assert_eq!(Key::from_stored(&key.stored()), key);
        }
    }

    #[test]
    fn files_sort_before_packages_as_the_stored_text_does() {
        let mut keys = [
            Key::package("a"),
            Key::file("/z"),
            Key::file("/a"),
            Key::package("0"),
        ];
        keys.sort();
        let stored: Vec<String> = keys.iter().map(|k| k.stored().into_owned()).collect();
        let mut by_text = stored.clone();
        by_text.sort();
        assert_eq!(stored, by_text);
    }
}
