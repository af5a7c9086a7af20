//! Start-up of the durable definitions: open the metadata log in `data_dir/metadata`, replay its
//! newest generation (snapshot, then every change entry), and hand the result to every shard.
//! A data directory written before the metadata log existed holds one `definitions` file
//! instead: it is read once, becomes the log's first snapshot, and is deleted only after that
//! snapshot is durable, so a crash during the conversion leaves one of the two complete (the
//! log wins when both exist). Runs on the main thread before any executor starts, with
//! blocking `std::fs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hare_storage::{MetadataLog, MetadataLogError, RecoveredMetadata};

use crate::config::Config;
use crate::protocol::ShortStr;
use crate::vhost::access::{
    AccessDocument, Permission, User, VHostEntry, VHostLimits, VHostMetadata, TAG_ADMINISTRATOR,
};
use crate::vhost::definitions::{self, DefinitionsError};
use crate::vhost::delta::MetaDelta;
use crate::vhost::metadata_record::{MetadataChange, MetadataSnapshot};
use crate::vhost::metadata_replay::MetadataReplay;
use crate::vhost::password::{hash_password, HashingAlgorithm};
use crate::vhost::Registry;
use crate::vhost::DEFAULT_VHOST;

/// The metadata log's directory inside the data directory.
pub const METADATA_DIR_NAME: &str = "metadata";

/// The durable definitions and the open log that keeps them.
pub struct OpenedMetadata {
    pub log: MetadataLog,
    pub snapshot: MetadataSnapshot,
    pub summary: MetadataSummary,
}

/// What start-up found, for its log line.
#[derive(Debug, Clone)]
pub struct MetadataSummary {
    pub generation: u32,
    pub changes_replayed: u64,
    pub torn_tail_bytes: u64,
    /// True if this start converted a `definitions` file into the log.
    pub converted_definitions_file: bool,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataRecoveryError {
    #[error(transparent)]
    Log(#[from] MetadataLogError),
    #[error("cannot use the definitions in {}: {source}", .path.display())]
    Definitions {
        path: PathBuf,
        source: DefinitionsError,
    },
    #[error("cannot delete the converted definitions file {}: {source}", .path.display())]
    RemoveConverted {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Opens (or creates) the metadata log and rebuilds the durable definitions from it.
pub fn open_metadata(config: &Config) -> Result<OpenedMetadata, MetadataRecoveryError> {
    let started = Instant::now();
    let dir = config.data_dir.join(METADATA_DIR_NAME);
    let opened = match MetadataLog::open(&dir)? {
        Some((log, recovered)) => {
            let (snapshot, changes_replayed) = replay(&recovered, &log.path())?;
            let summary = MetadataSummary {
                generation: log.generation(),
                changes_replayed,
                torn_tail_bytes: recovered.report.torn_tail_bytes,
                converted_definitions_file: false,
                duration: Duration::ZERO,
            };
            OpenedMetadata {
                log,
                snapshot,
                summary,
            }
        }
        None => create_from_definitions_file(config, &dir)?,
    };
    // A definitions file beside a log was converted already: the crash came before its
    // deletion.
    remove_definitions_file(&config.data_dir)?;
    let opened = install_default_access(config, opened)?;
    Ok(OpenedMetadata {
        summary: MetadataSummary {
            duration: started.elapsed(),
            ..opened.summary
        },
        ..opened
    })
}

/// A log that has never held users, vhosts and permissions (new, or from before they existed)
/// gets RabbitMQ's defaults: the vhost `/` and the configured default user, an administrator
/// with every permission on `/`. They are appended as one change and synced before any
/// executor starts, so every shard starts from the same, durable state.
fn install_default_access(
    config: &Config,
    mut opened: OpenedMetadata,
) -> Result<OpenedMetadata, MetadataRecoveryError> {
    if opened.snapshot.access.is_some() {
        return Ok(opened);
    }
    let document = default_access(config);
    let change = MetadataChange {
        next_id: opened.snapshot.next_id,
        vhost: ShortStr::from_static(DEFAULT_VHOST),
        deltas: document
            .deltas()
            .into_iter()
            .map(MetaDelta::Access)
            .collect(),
    };
    opened.log.append(&[&change.encode()])?;
    opened.snapshot.access = Some(document);
    Ok(opened)
}

/// The access state of a new broker.
fn default_access(config: &Config) -> AccessDocument {
    let user = config.default_user.clone();
    AccessDocument {
        vhosts: vec![VHostEntry {
            name: DEFAULT_VHOST.to_owned(),
            metadata: VHostMetadata {
                description: "Default virtual host".into(),
                tags: Vec::new(),
                default_queue_type: "classic".into(),
            },
            limits: VHostLimits::default(),
        }],
        users: vec![User {
            name: user.clone(),
            password_hash: hash_password(HashingAlgorithm::Sha256, config.default_pass.as_bytes()),
            hashing_algorithm: HashingAlgorithm::Sha256,
            tags: vec![TAG_ADMINISTRATOR.to_owned()],
        }],
        user_limits: Vec::new(),
        permissions: vec![Permission {
            user,
            vhost: DEFAULT_VHOST.to_owned(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }],
        topic_permissions: Vec::new(),
        policies: Vec::new(),
    }
}

/// Rebuilds one snapshot from what a generation holds: its snapshot, then every change entry,
/// each checked against the state before it. Start-up uses it, and so does a compaction, on a
/// thread of its own. Returns the snapshot and the number of changes replayed.
pub fn replay(
    recovered: &RecoveredMetadata,
    path: &Path,
) -> Result<(MetadataSnapshot, u64), MetadataRecoveryError> {
    let in_log = |source| MetadataRecoveryError::Definitions {
        path: path.to_path_buf(),
        source,
    };
    let snapshot = MetadataSnapshot::decode(recovered.snapshot()).map_err(in_log)?;
    let mut replay = MetadataReplay::new(&snapshot).map_err(in_log)?;
    for entry in recovered.entries() {
        let change = MetadataChange::decode(entry).map_err(in_log)?;
        replay.apply(&change).map_err(in_log)?;
    }
    let changes = replay.changes();
    Ok((replay.finish(), changes))
}

/// The first generation: from the `definitions` file if there is one, else empty.
fn create_from_definitions_file(
    config: &Config,
    dir: &Path,
) -> Result<OpenedMetadata, MetadataRecoveryError> {
    let file = config.data_dir.join(definitions::FILE_NAME);
    let loaded = definitions::load(&config.data_dir)
        .map_err(|source| MetadataRecoveryError::Definitions { path: file, source })?;
    let converted = loaded.is_some();
    let shard_count = u16::try_from(config.shards).expect("at most 1024 shards");
    let snapshot = match loaded {
        Some(definitions) => MetadataSnapshot {
            shard_count: definitions.shard_count,
            next_id: definitions.next_id,
            vhosts: if definitions.is_empty() {
                Vec::new()
            } else {
                vec![definitions]
            },
            access: None,
        },
        None => MetadataSnapshot::empty(shard_count, Registry::FIRST_DYNAMIC_ID),
    };
    let log = MetadataLog::create(dir, &snapshot.encode())?;
    let summary = MetadataSummary {
        generation: log.generation(),
        changes_replayed: 0,
        torn_tail_bytes: 0,
        converted_definitions_file: converted,
        duration: Duration::ZERO,
    };
    Ok(OpenedMetadata {
        log,
        snapshot,
        summary,
    })
}

/// Deletes `data_dir/definitions` (and a leftover temporary file of the old writer) once the
/// log holds what it held, and makes the deletion durable.
fn remove_definitions_file(data_dir: &Path) -> Result<(), MetadataRecoveryError> {
    let mut removed = false;
    for name in [definitions::FILE_NAME, definitions::TEMPORARY_FILE_NAME] {
        let path = data_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(MetadataRecoveryError::RemoveConverted { path, source }),
        }
    }
    if removed {
        std::fs::File::open(data_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| MetadataRecoveryError::RemoveConverted {
                path: data_dir.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}
