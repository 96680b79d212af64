//! Which declared files are in the middle of a change: the session observes at once when none
//! is, and otherwise waits for them, at most its coalescing window.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::watch::Stage;

#[derive(Debug, Default)]
pub(super) struct Settling {
    /// Declared files with a change under way: data being written, removed or renamed away,
    /// or created.
    busy: HashSet<PathBuf>,
    /// Declared files created since the last flush. They stay busy until the window ends,
    /// whatever follows: install(1) creates the file 0600, writes, closes, and only then sets
    /// its mode, so its close does not finish it.
    created: HashSet<PathBuf>,
}

impl Settling {
    /// Notes one event's stage for `path`; `declared` says whether it is a declared path.
    pub(super) fn note(&mut self, path: &Path, stage: Stage, declared: bool) {
        match stage {
            Stage::Done => {
                if !self.created.contains(path) {
                    self.busy.remove(path);
                }
            }
            Stage::Pending | Stage::Created if declared => {
                self.busy.insert(path.to_path_buf());
                if stage == Stage::Created {
                    self.created.insert(path.to_path_buf());
                }
            }
            Stage::Pending | Stage::Created => {}
        }
    }

    /// Nothing declared is mid-change: what changed can be observed now.
    pub(super) fn quiet(&self) -> bool {
        self.busy.is_empty()
    }

    /// Observed (the window ended, or all was quiet): start afresh.
    pub(super) fn clear(&mut self) {
        self.busy.clear();
        self.created.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_place_write_is_complete_at_its_close() {
        let mut s = Settling::default();
        let p = Path::new("/etc/app.conf");
        s.note(p, Stage::Pending, true); // data
        assert!(!s.quiet());
        s.note(p, Stage::Done, true); // close after write
        assert!(s.quiet());
    }

    #[test]
    fn a_new_file_waits_the_window_even_after_its_close_and_chmod() {
        // install(1): unlink, create 0600, write, close, chmod 0644.
        let mut s = Settling::default();
        let p = Path::new("/etc/app.conf");
        s.note(p, Stage::Pending, true);
        s.note(p, Stage::Created, true);
        s.note(p, Stage::Pending, true);
        s.note(p, Stage::Done, true);
        assert!(!s.quiet(), "the mode may still change after the close");
        s.note(p, Stage::Done, true);
        assert!(!s.quiet(), "nor is a chmod known to be the last step");
        s.clear();
        assert!(s.quiet());
        s.note(p, Stage::Pending, true);
        s.note(p, Stage::Done, true);
        assert!(s.quiet(), "once flushed, the file is an old one again");
    }

    #[test]
    fn undeclared_paths_never_hold_the_session_up() {
        let mut s = Settling::default();
        s.note(Path::new("/etc/.app.conf.swp"), Stage::Created, false);
        s.note(Path::new("/etc/app.conf~"), Stage::Pending, false);
        assert!(s.quiet());
    }
}
