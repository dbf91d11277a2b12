//! Where things are: the workspace, its built binaries, and a scratch directory per test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cargo workspace root (the parent of this crate's folder).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("faas-tests lives inside the workspace")
}

/// A binary built by this workspace (`faas-gateway`, `faas-dispatcher`, `faas-worker`, `faas`).
///
/// Found next to the test executable rather than through `CARGO_BIN_EXE_*`, because those are
/// only set for binaries of the crate under test and the daemons live in another crate.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("test executable has a parent directory");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "binary {name:?} not found at {}: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A scratch directory for one test: daemon logs, Redis's working dir, Python scripts and
/// modules. Removed when the test passes, kept (and its path printed) when it fails, so the
/// logs of a failed run can be read afterwards.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Named after the current test (the test harness names each test's thread after it).
    pub fn new() -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace("::", "-")
            .replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_",
            );
        let path = std::env::temp_dir().join("faas-tests").join(format!(
            "{test}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from an earlier run with a recycled pid would mix logs.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test dir");
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns the full path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write file in test dir");
        p
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
