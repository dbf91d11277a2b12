//! `faas keygen PATH`: writes a new worker key file (32 random bytes, mode 0600) for
//! `faas-dispatcher` and `faas-worker` (`--worker-key-file`). `faas up` uses [`write_key_file`]
//! for the workers it starts.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;
use faas_protocol::worker_key::WorkerKey;

use super::{CliError, EXIT_OK};

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key file (it is created with mode 0600).
    pub path: PathBuf,
    /// Replace the file if it exists (workers holding the old key are refused from then on).
    #[arg(long)]
    pub force: bool,
}

/// Writes a new key to `path`, readable by its owner only. Refuses to replace an existing file
/// unless `overwrite`.
pub fn write_key_file(path: &Path, overwrite: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    // An existing file keeps its old mode through `open`: narrow it before the secret goes in.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(WorkerKey::generate().to_file_text().as_bytes())?;
    file.sync_all()
}

pub fn run(args: KeygenArgs) -> Result<i32, CliError> {
    write_key_file(&args.path, args.force).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AlreadyExists => " (it exists; --force replaces it)",
            _ => "",
        };
        CliError::Input(format!(
            "cannot write the key file {}: {e}{hint}",
            args.path.display()
        ))
    })?;
    eprintln!(
        "faas keygen: wrote a new worker key to {} (mode 0600).\n\
         Give the same file to faas-dispatcher and every faas-worker with --worker-key-file \
         (or FAAS_WORKER_KEY_FILE); keep it secret: whoever holds it can take and answer tasks.",
        args.path.display()
    );
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_private_parseable_and_never_silently_replaced() {
        let dir = std::env::temp_dir().join(format!("faas-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("worker.key");
        let _ = std::fs::remove_file(&path);
        write_key_file(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(WorkerKey::parse(&first).is_ok());
        let again = write_key_file(&path, false).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_key_file(&path, true).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), first);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "--force narrows the mode too");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
