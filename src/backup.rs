//! `backup` and `restore`: the files around a copy of the database. A copy
//! is made under a temp name beside its destination, synced, and only then
//! given its name, so a backup or restore that fails or is killed never
//! leaves a partial file where a whole one is expected. The SQLite side
//! (the online copy, the checks of a copy) lives in `store`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, Config};
use crate::crypto::{Keyring, MasterKey};
use crate::{api, store};

/// `proxyplane backup FILE`: a consistent copy of the running database.
/// Needs only read access to the database; the master key is not copied
/// (it must be kept beside the backup, see README).
pub fn backup(config: &Config, file: &Path) -> Result<ExitCode, String> {
    let db = config::db_path(&config.data_dir);
    if !db.is_file() {
        return Err(store::missing_database(&db));
    }
    if file.symlink_metadata().is_ok() {
        return Err(format!(
            "{} exists already; choose a new file",
            file.display()
        ));
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(format!(
                "the directory {} for the backup does not exist",
                dir.display()
            ));
        }
    }
    let tmp = temp_beside(file, "partial")?;
    let show = std::io::stderr().is_terminal();
    let mut shown = None;
    let result = create_private(&tmp)
        .and_then(|()| {
            store::copy_database(&db, &tmp, |done, total| {
                let pct = done * 100 / total.max(1);
                if show && shown != Some(pct) {
                    eprint!("\rbackup: {pct:3}% ({done} of {total} pages)");
                    shown = Some(pct);
                }
            })
        })
        .and_then(|()| sync_file(&tmp))
        .and_then(|()| link_new(&tmp, file))
        .and_then(|()| sync_dir(file));
    if show && shown.is_some() {
        eprintln!();
    }
    remove_with_sidecars(&tmp);
    result?;
    println!("{}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// `proxyplane restore BACKUP [--force]`: checks a backup (integrity,
/// schema, that the master key opens it) on a copy inside the data dir,
/// then swaps it in with a rename.
pub fn restore(
    config: &Config,
    master_env: Option<&str>,
    backup: &Path,
    force: bool,
) -> Result<ExitCode, String> {
    if !backup.is_file() {
        return Err(format!("there is no backup file at {}", backup.display()));
    }
    let db = config::db_path(&config.data_dir);
    if db.symlink_metadata().is_ok() {
        if !force {
            return Err(format!(
                "{} holds a database already; `restore --force` replaces it (stop the server first)",
                db.display()
            ));
        }
        if store::in_use(&db) == Some(true) {
            return Err(format!(
                "the database {} is in use by another process (a running `proxyplane serve`, a backup, Litestream?); stop it first",
                db.display()
            ));
        }
    }
    crate::create_data_dir(&config.data_dir)?;
    let tmp = temp_beside(&db, "restore")?;
    let result = (|| {
        create_private(&tmp)?;
        copy_into(backup, &tmp)?;
        verify(config, master_env, &tmp, backup)?;
        sync_file(&tmp)?;
        // The old database's WAL and index must not meet the restored file:
        // SQLite would apply the old frames to it. Gone before the rename,
        // so a crash in between leaves no pairing of old WAL and new file.
        for suffix in ["-wal", "-shm"] {
            remove_if_there(&sidecar(&db, suffix))?;
        }
        std::fs::rename(&tmp, &db)
            .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), db.display()))?;
        sync_dir(&db)
    })();
    remove_with_sidecars(&tmp);
    result?;
    println!("restored {} into {}", backup.display(), db.display());
    Ok(ExitCode::SUCCESS)
}

/// The checks a backup must pass before it replaces anything: see
/// `store::open_checked_copy`, then the master key must match the copy's
/// check value and open every workspace's data key.
fn verify(
    config: &Config,
    master_env: Option<&str>,
    copy: &Path,
    shown: &Path,
) -> Result<(), String> {
    let conn = store::open_checked_copy(copy, shown)?;
    let check = store::meta_get(&conn, "master_check")
        .map_err(|e| format!("cannot read {}: {}", shown.display(), e.message))?
        .ok_or_else(|| {
            format!(
                "{} is not a proxyplane database that was ever started (no master key check)",
                shown.display()
            )
        })?;
    let master = MasterKey::load(&config.master_key_file, master_env, false)?;
    let source = master_env.map_or_else(
        || config.master_key_file.display().to_string(),
        |_| "PROXYPLANE_MASTER_KEY".into(),
    );
    if !master.verifies(&check) {
        return Err(format!(
            "the master key ({source}) does not open {}; put the master key that was in use when the backup was made in place first",
            shown.display()
        ));
    }
    api::providers::verify_all_data_keys(&conn, &Keyring::new(master)).map_err(|e| {
        format!(
            "the master key ({source}) does not open every data key in {}: {}",
            shown.display(),
            e.message
        )
    })?;
    conn.close()
        .map_err(|(_, e)| format!("cannot close {}: {e}", copy.display()))
}

/// `.NAME.TAG-PID` in the directory of `file`: hidden, so globs such as
/// `*.db` in a backup rotation do not pick up a copy in progress.
fn temp_beside(file: &Path, tag: &str) -> Result<PathBuf, String> {
    let name = file
        .file_name()
        .ok_or_else(|| format!("{} does not name a file", file.display()))?;
    Ok(file.with_file_name(format!(
        ".{}.{tag}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

fn sidecar(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A new empty file readable by its owner only: the copy holds sealed
/// secrets and API key hashes, and SQLite gives its journal the same mode.
fn create_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn copy_into(from: &Path, to: &Path) -> Result<(), String> {
    let mut src =
        std::fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .open(to)
        .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    std::io::copy(&mut src, &mut dst)
        .map(drop)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

fn sync_file(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", path.display()))
}

/// Syncs the directory holding `file`, so its new name survives a crash.
fn sync_dir(file: &Path) -> Result<(), String> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync directory {}: {e}", dir.display()))
}

/// Gives `tmp` the name `file` unless `file` exists: a hard link fails
/// rather than replace, where a rename would overwrite a file that appeared
/// while the backup ran. Where hard links are unsupported, checks and
/// renames.
fn link_new(tmp: &Path, file: &Path) -> Result<(), String> {
    let exists = || {
        format!(
            "{} appeared while the backup ran; the copy was not put in its place",
            file.display()
        )
    };
    match std::fs::hard_link(tmp, file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(_) if file.symlink_metadata().is_ok() => Err(exists()),
        Err(_) => std::fs::rename(tmp, file)
            .map_err(|e| format!("cannot move the copy to {}: {e}", file.display())),
    }
}

fn remove_if_there(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// Removes a temp copy and anything SQLite may have left beside it.
fn remove_with_sidecars(tmp: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        remove_if_there(&sidecar(tmp, suffix)).ok();
    }
}
