//! The data directory of `faas up`: where the platform's state lives between runs.
//!
//! `--data-dir`, else `$XDG_DATA_HOME/faas`, else `~/.local/share/faas`. The private Redis
//! keeps its append-only file in `redis/` below it, so functions, tasks and results survive a
//! restart of `faas up` and a crash of Redis. Other per-installation state (a generated worker
//! key, say) belongs next to it: [`DataDir::path`] is the one place that names it.
//!
//! One `faas up` at a time owns a data directory: two Redis servers appending to one file
//! would corrupt it, so the directory is locked (`flock` on `faas.lock`) while `faas up` runs.
//!
//! The directory is private to its user (mode 0700): Redis's files in it hold every function,
//! argument and result, and Redis writes them readable by all. One found open to others is made
//! private, with a note; `faas up` refuses to start on one it cannot make private.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::up::UpError;

/// The default data directory (`$XDG_DATA_HOME/faas` or `$HOME/.local/share/faas`); `None`
/// when neither variable names an absolute directory.
pub fn default_data_dir() -> Option<PathBuf> {
    // The XDG base directory spec says relative values are invalid and must be ignored.
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_DATA_HOME")
        .map(|d| d.join("faas"))
        .or_else(|| absolute("HOME").map(|h| h.join(".local/share/faas")))
}

/// Creates `path`, and any missing parent, private to this user (mode 0700; the XDG spec asks
/// that of `$XDG_DATA_HOME`), and makes it private if it was open to others: then returns the
/// mode it had.
pub(super) fn private_dir(path: &Path) -> std::io::Result<Option<u32>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(Some(mode))
}

/// A data directory held by this process until dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl DataDir {
    /// Creates (if needed) and locks `path`; fails if another `faas up` holds it.
    pub fn open(path: &Path) -> Result<Self, UpError> {
        let io = |what: String| move |source| UpError::Io { what, source };
        let was_open = private_dir(path).map_err(io(format!(
            "cannot create the data directory {} or make it private (mode 700)",
            path.display()
        )))?;
        // Made absolute once, so daemons started from another directory find the same place.
        let path = std::fs::canonicalize(path)
            .map_err(io(format!("cannot resolve {}", path.display())))?;
        if let Some(mode) = was_open {
            eprintln!(
                "faas up: note: made the data directory {} private (mode {mode:o} -> 700): it holds every function, argument and result",
                path.display()
            );
        }
        let lock_path = path.join("faas.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(format!("cannot open {}", lock_path.display())))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            UpError::Usage(format!(
                "the data directory {} is in use by another faas up; stop it or pass --data-dir",
                path.display()
            ))
        })?;
        Ok(Self { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the private Redis keeps its append-only file.
    pub fn redis_dir(&self) -> PathBuf {
        self.path.join("redis")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_is_held_by_one_owner_at_a_time() {
        let base = std::env::temp_dir().join(format!("faas-data-dir-test-{}", std::process::id()));
        let first = DataDir::open(&base).expect("first open");
        assert!(first.path().is_absolute());
        let second = DataDir::open(&base);
        assert!(
            matches!(&second, Err(UpError::Usage(m)) if m.contains("in use")),
            "{second:?}"
        );
        drop(first);
        let again = DataDir::open(&base).expect("free again after drop");
        assert_eq!(again.redis_dir(), again.path().join("redis"));
        drop(again);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_data_dir_is_private_whether_new_or_found_open() {
        let base = std::env::temp_dir().join(format!("faas-data-dir-mode-{}", std::process::id()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = base.join("a/b");
        let dir = DataDir::open(&fresh).expect("open a new one");
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&base.join("a")), 0o700, "a parent made for it");
        drop(dir);
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = DataDir::open(&open).expect("open an existing one");
        assert_eq!(mode(dir.path()), 0o700);
        drop(dir);
        let _ = std::fs::remove_dir_all(&base);
    }
}
