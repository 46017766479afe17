//! On-disk persistence of inventory entries in a redb database (one file, ACID, crash-safe).
//!
//! Layout: table `entries`, key = JSON `[host, method, route]`, value = JSON [`EntryView`];
//! table `meta`, key `format` = [`FORMAT_VERSION`]; table `analytics`, key `endpoint:` + the
//! analytics endpoint name = JSON per-endpoint baselines, key `global` = JSON findings and
//! version map (see `detect::analytics`).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::EntryView;

const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ANALYTICS: TableDefinition<&str, &[u8]> = TableDefinition::new("analytics");
const GLOBAL_KEY: &str = "global";
const ENDPOINT_PREFIX: &str = "endpoint:";
/// Bumped when the stored entry encoding changes incompatibly.
pub const FORMAT_VERSION: u64 = 1;

/// A store that cannot be opened, read or written. Always names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("inventory store {path}: {source}")]
    Db { path: PathBuf, source: Box<redb::Error> },
    #[error("inventory store {path}: corrupt entry {key:?}: {message}")]
    Corrupt { path: PathBuf, key: String, message: String },
    #[error("inventory store {path}: format version {found} is not supported (expected {FORMAT_VERSION})")]
    Version { path: PathBuf, found: u64 },
}

/// Encoded analytics rows: per endpoint (name, JSON), and the global JSON.
pub type AnalyticsRows = (Vec<(String, Vec<u8>)>, Option<Vec<u8>>);

/// Handle on the inventory database file.
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// The store key of an entry.
#[must_use]
pub fn entry_key(host: &str, method: &str, route: &str) -> String {
    serde_json::to_string(&(host, method, route)).unwrap_or_default()
}

impl Store {
    /// Opens (or creates) the database at `path` and checks it is readable: a corrupt file, a
    /// file of another format or undecodable entries give a [`StoreError`] naming the path.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|e| db_err(&path, e))?;
        let store = Store { db, path };
        store.init()?;
        store.load()?;
        Ok(store)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        db_err(&self.path, e)
    }

    fn init(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let found = meta.get("format").map_err(|e| self.err(e))?.map(|v| v.value());
            match found {
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::Version { path: self.path.clone(), found });
                }
                None => {
                    meta.insert("format", FORMAT_VERSION).map_err(|e| self.err(e))?;
                }
            }
            tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            tx.open_table(ANALYTICS).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Analytics state: per-endpoint rows and the global row, still encoded (the analytics
    /// module owns the types).
    pub fn load_analytics(&self) -> Result<AnalyticsRows, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(ANALYTICS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), None)),
            Err(e) => return Err(self.err(e)),
        };
        let mut endpoints = Vec::new();
        let mut global = None;
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            if k.value() == GLOBAL_KEY {
                global = Some(v.value().to_vec());
            } else if let Some(name) = k.value().strip_prefix(ENDPOINT_PREFIX) {
                endpoints.push((name.to_owned(), v.value().to_vec()));
            }
        }
        Ok((endpoints, global))
    }

    /// Writes analytics rows (insert or replace), in one transaction.
    pub fn save_analytics<'a>(
        &mut self,
        endpoints: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        global: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(ANALYTICS).map_err(|e| self.err(e))?;
            for (name, value) in endpoints {
                let key = format!("{ENDPOINT_PREFIX}{name}");
                table.insert(key.as_str(), value).map_err(|e| self.err(e))?;
            }
            if let Some(g) = global {
                table.insert(GLOBAL_KEY, g).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// All stored entries.
    pub fn load(&self) -> Result<Vec<EntryView>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let entry: EntryView = serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                key: k.value().to_owned(),
                message: e.to_string(),
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// Writes `entries` (insert or replace) and deletes `removed` keys, in one transaction.
    pub fn save<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a EntryView>,
        removed: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            for key in removed {
                table.remove(key).map_err(|e| self.err(e))?;
            }
            for e in entries {
                let key = entry_key(&e.host, &e.method, &e.route);
                let value = serde_json::to_vec(e).map_err(|err| StoreError::Corrupt {
                    path: self.path.clone(),
                    key: key.clone(),
                    message: err.to_string(),
                })?;
                table.insert(key.as_str(), value.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db { path: path.to_path_buf(), source: Box::new(e.into()) }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_dir;
    use super::*;

    #[test]
    fn corrupt_and_foreign_files_are_named_errors() {
        let dir = temp_dir("store-corrupt");
        let p = dir.join("inv.redb");
        std::fs::write(&p, b"this is not a redb database, just text. ".repeat(200)).unwrap();
        let err = Store::open(&p).err().expect("must fail");
        let msg = err.to_string();
        println!("corrupt store error: {msg}");
        assert!(msg.contains("inv.redb"), "{msg}");

        let p2 = dir.join("empty-dir-as-file");
        std::fs::create_dir_all(&p2).unwrap();
        let msg = Store::open(&p2).err().expect("directory is not a store").to_string();
        assert!(msg.contains("empty-dir-as-file"), "{msg}");

        // a valid database holding an undecodable entry
        let p3 = dir.join("bad-entry.redb");
        {
            let db = Database::create(&p3).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(ENTRIES).unwrap().insert("k", b"{not json".as_slice()).unwrap();
            tx.commit().unwrap();
        }
        let msg = Store::open(&p3).err().expect("bad entry").to_string();
        assert!(msg.contains("bad-entry.redb") && msg.contains("corrupt entry"), "{msg}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
