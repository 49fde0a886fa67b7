//! The last applied datastore state on disk, so a node that starts while etcd is down runs
//! what it ran before (projectcalico/calico#925): the keys wren reads and their values, the
//! revision they were read at, in one versioned JSON file written atomically (a temporary
//! file, fsync, rename, fsync of the directory).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::State;

/// The file's format; a file of another format is not read.
pub const FORMAT: u32 = 1;
/// Largest file read back.
const MAX_FILE: u64 = 512 << 20;

/// What is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub format: u32,
    /// The node it was computed for: another node's state is not run.
    pub node: String,
    pub revision: i64,
    /// When it was written, in seconds since the Unix epoch.
    pub saved: u64,
    /// Every key read, with its value (Calico's JSON).
    pub kvs: BTreeMap<String, String>,
}

impl Saved {
    pub fn new(node: &str, revision: i64, kvs: BTreeMap<String, String>) -> Saved {
        Saved {
            format: FORMAT,
            node: node.to_string(),
            revision,
            saved: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            kvs,
        }
    }
}

/// Starts the task that writes each state handed to it, one write at a time and only the
/// newest when several wait, off the daemon's event loop.
pub fn writer(path: PathBuf, node: String) -> watch::Sender<Option<Arc<State>>> {
    let (tx, mut rx) = watch::channel::<Option<Arc<State>>>(None);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let Some(state) = rx.borrow_and_update().clone() else {
                continue;
            };
            let (at, node) = (path.clone(), node.clone());
            let write = tokio::task::spawn_blocking(move || {
                let saved = Saved::new(&node, state.revision, state.kvs.clone());
                save(&at, &saved)
            });
            match write.await {
                Ok(Ok(())) => debug!("datastore state saved in {}", path.display()),
                Ok(Err(e)) => warn!("datastore state not saved in {}: {e}", path.display()),
                Err(e) => warn!("datastore state not saved: {e}"),
            }
        }
    });
    tx
}

/// Writes `s` to `path`: readers see the old file or the new one, never a part.
pub fn save(path: &Path, s: &Saved) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp)?;
    serde_json::to_writer(&mut f, s)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Reads a saved state: `Ok(None)` when there is none, an error when it cannot be used.
pub fn load(path: &Path, node: &str) -> Result<Option<Saved>, String> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut text = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!("{}: over {MAX_FILE} bytes", path.display()));
    }
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let v: Version =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if v.format != FORMAT {
        return Err(format!(
            "{}: format {} (this wren reads {FORMAT})",
            path.display(),
            v.format
        ));
    }
    let s: Saved = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if s.node != node {
        return Err(format!(
            "{}: saved for node {}, not {node}",
            path.display(),
            s.node
        ));
    }
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = std::env::temp_dir().join(format!("wren-state-{}", std::process::id()));
        let path = dir.join("sub/datastore.json");
        assert_eq!(load(&path, "a"), Ok(None));
        let kvs = BTreeMap::from([("/k".to_string(), "{\"v\":1}".to_string())]);
        let s = Saved::new("a", 7, kvs);
        save(&path, &s).unwrap();
        assert_eq!(load(&path, "a"), Ok(Some(s.clone())));
        assert!(!path.with_extension("json.tmp").exists());
        assert!(load(&path, "b").unwrap_err().contains("saved for node a"));
        let mut future = s;
        future.format = FORMAT + 1;
        save(&path, &future).unwrap();
        assert!(load(&path, "a").unwrap_err().contains("format 2"));
        fs::write(&path, "{\"format\":1").unwrap();
        assert!(load(&path, "a").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
