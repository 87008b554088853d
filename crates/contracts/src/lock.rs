//! One writer per work directory: an OS advisory lock (`flock`) that every stage writing
//! there holds for its whole run.
//!
//! The lock is on `WORK/.lock`, which also says who holds it, so a second run can tell the user
//! which process to wait for. The OS drops the lock when its holder exits, however it exits
//! (`kill -9` included), so a killed run leaves no stale lock: the file stays, but locking it
//! succeeds and the new holder rewrites it.
//!
//! Shards of one featurizing job (`featurizer --shard k/n`, e.g. a Slurm array) must run at
//! the same time. Each takes the work-dir lock *shared*, which any other run's exclusive lock
//! excludes, and an exclusive lock of its own shard, `WORK/.lock-shard-K-of-N`, which holds its
//! job's fingerprint (its settings). A shard refuses to start next to a live shard of another
//! job: two unrelated runs are still stopped, while the shards of one job run together.
//! Readers (`evaluator show`, `caption`) take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::ContractError;

/// The work directory's lock file.
pub const LOCK_FILE: &str = ".lock";
const SHARD_PREFIX: &str = ".lock-shard-";

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct WorkDirLock {
    _files: Vec<File>,
}

/// Who holds a lock, as written into its file.
#[derive(Debug, Clone, PartialEq)]
struct Holder {
    pid: u32,
    what: String,
    /// The job fingerprint of a shard (empty for whole runs).
    job: String,
}

impl Holder {
    fn me(what: &str, job: &str) -> Self {
        Self {
            pid: std::process::id(),
            what: what.to_string(),
            job: job.to_string(),
        }
    }

    fn encode(&self) -> String {
        format!("pid {}\n{}\n{}\n", self.pid, self.what, self.job)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
        let what = lines.next()?.to_string();
        let job = lines.next().unwrap_or_default().to_string();
        Some(Self { pid, what, job })
    }

    fn describe(&self) -> String {
        format!("{} (pid {})", self.what, self.pid)
    }
}

/// Takes the work-dir lock for a run of `stage` (e.g. `trainer`), creating the directory.
/// A second run gets an error naming the process that holds it.
pub fn lock_work_dir(work_dir: &Path, stage: &str) -> Result<WorkDirLock, ContractError> {
    let path = lock_path(work_dir)?;
    let mut file = open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            write_holder(&mut file, &path, &Holder::me(stage, ""))?;
            Ok(WorkDirLock { _files: vec![file] })
        }
        Err(TryLockError::WouldBlock) => {
            let holder = live_shards(work_dir)?
                .into_iter()
                .next()
                .map(|(_, h)| h)
                .or_else(|| read_holder(&mut file));
            Err(in_use(work_dir, holder))
        }
        Err(TryLockError::Error(error)) => Err(ContractError::io(&path, error)),
    }
}

/// Takes the lock for shard `index` of `count` of a featurizing job whose settings have the
/// fingerprint `job`: shared with the job's other shards, exclusive against everything else.
pub fn lock_work_dir_shard(
    work_dir: &Path,
    stage: &str,
    index: usize,
    count: usize,
    job: &str,
) -> Result<WorkDirLock, ContractError> {
    let path = lock_path(work_dir)?;
    let file = open(&path)?;
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut file = file;
            return Err(in_use(work_dir, read_holder(&mut file)));
        }
        Err(TryLockError::Error(error)) => return Err(ContractError::io(&path, error)),
    }
    let what = format!("{stage} shard {index}/{count}");
    let me = Holder::me(&what, &format!("{count} {job}"));
    for (_, other) in live_shards(work_dir)? {
        if other.job != me.job {
            return Err(ContractError::Locked {
                message: format!(
                    "{} is in use by {}, a shard of another featurizing job (other settings or \
                     shard count); wait for it to finish or stop it",
                    work_dir.display(),
                    other.describe()
                ),
            });
        }
    }
    let shard_path = work_dir.join(format!("{SHARD_PREFIX}{index}-of-{count}"));
    let mut shard = open(&shard_path)?;
    match shard.try_lock() {
        Ok(()) => {
            write_holder(&mut shard, &shard_path, &me)?;
            Ok(WorkDirLock {
                _files: vec![file, shard],
            })
        }
        Err(TryLockError::WouldBlock) => Err(in_use(work_dir, read_holder(&mut shard))),
        Err(TryLockError::Error(error)) => Err(ContractError::io(&shard_path, error)),
    }
}

fn lock_path(work_dir: &Path) -> Result<PathBuf, ContractError> {
    std::fs::create_dir_all(work_dir).map_err(|e| ContractError::io(work_dir, e))?;
    Ok(work_dir.join(LOCK_FILE))
}

fn open(path: &Path) -> Result<File, ContractError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| ContractError::io(path, e))
}

fn write_holder(file: &mut File, path: &Path, holder: &Holder) -> Result<(), ContractError> {
    let io = |e| ContractError::io(path, e);
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(holder.encode().as_bytes()).map_err(io)?;
    file.flush().map_err(io)
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    Holder::decode(&text)
}

/// The shard locks of `work_dir` whose holders are alive, with who holds them.
fn live_shards(work_dir: &Path) -> Result<Vec<(PathBuf, Holder)>, ContractError> {
    let entries = std::fs::read_dir(work_dir).map_err(|e| ContractError::io(work_dir, e))?;
    let mut live = Vec::new();
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(SHARD_PREFIX)
        {
            continue;
        }
        let path = entry.path();
        let Ok(mut file) = File::open(&path) else {
            continue;
        };
        // A lock we can take is one whose holder is gone; let it go at once.
        if matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
            && let Some(holder) = read_holder(&mut file)
        {
            live.push((path, holder));
        }
    }
    live.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(live)
}

fn in_use(work_dir: &Path, holder: Option<Holder>) -> ContractError {
    let who = holder.map_or_else(|| "another run".to_string(), |h| h.describe());
    ContractError::Locked {
        message: format!(
            "{} is in use by {who}; wait for it to finish or stop it (two runs writing one work \
             dir would mix their outputs)",
            work_dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<WorkDirLock, ContractError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_second_writer_is_told_who_holds_the_lock_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_work_dir(dir.path(), "trainer").unwrap();
        assert_eq!(
            message(lock_work_dir(dir.path(), "tokenizer")),
            format!(
                "{} is in use by trainer (pid {}); wait for it to finish or stop it (two runs \
                 writing one work dir would mix their outputs)",
                dir.path().display(),
                std::process::id()
            )
        );
        drop(held);
        lock_work_dir(dir.path(), "tokenizer").unwrap();
    }

    #[test]
    fn shards_of_one_job_share_the_dir_and_exclude_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let one = lock_work_dir_shard(dir.path(), "featurizer", 1, 3, "abc").unwrap();
        let two = lock_work_dir_shard(dir.path(), "featurizer", 2, 3, "abc").unwrap();
        let pid = std::process::id();
        let dir_name = dir.path().display();
        assert_eq!(
            message(lock_work_dir_shard(dir.path(), "featurizer", 2, 3, "abc")),
            format!(
                "{dir_name} is in use by featurizer shard 2/3 (pid {pid}); wait for it to \
                 finish or stop it (two runs writing one work dir would mix their outputs)"
            )
        );
        assert_eq!(
            message(lock_work_dir_shard(dir.path(), "featurizer", 1, 2, "abc")),
            format!(
                "{dir_name} is in use by featurizer shard 1/3 (pid {pid}), a shard of another \
                 featurizing job (other settings or shard count); wait for it to finish or stop it"
            )
        );
        assert_eq!(
            message(lock_work_dir(dir.path(), "featurizer")),
            format!(
                "{dir_name} is in use by featurizer shard 1/3 (pid {pid}); wait for it to \
                 finish or stop it (two runs writing one work dir would mix their outputs)"
            )
        );
        drop((one, two));
        let whole = lock_work_dir(dir.path(), "featurizer").unwrap();
        assert!(lock_work_dir_shard(dir.path(), "featurizer", 3, 3, "abc").is_err());
        drop(whole);
        lock_work_dir_shard(dir.path(), "featurizer", 3, 3, "abc").unwrap();
    }
}
