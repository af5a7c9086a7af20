//! Certificate reload without a restart: a thread of its own looks at the files' modification
//! times once a second (a `stat` per file, off every shard's executor) and rebuilds the server
//! configuration when one changed. Connections accepted afterwards use the new certificate;
//! open ones keep the session they have. Files that do not load leave the previous
//! configuration in place, with an error logged once per change.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::{build_server_config, file_stamps, TlsContext, TlsError};

/// How often the files' modification times are looked at.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a look at the files found.
#[derive(Debug)]
pub enum ReloadOutcome {
    Unchanged,
    Reloaded,
    /// A file changed but the set does not load; the previous configuration stays.
    Failed(TlsError),
}

impl TlsContext {
    /// Rebuilds the configuration if a file's modification time changed since the last look.
    pub fn reload_if_changed(&self) -> ReloadOutcome {
        let stamps = file_stamps(&self.settings);
        {
            let mut known = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
            if *known == stamps {
                return ReloadOutcome::Unchanged;
            }
            // Remembered even if the files fail to load, so one bad change is reported once;
            // the next change (the rest of a certificate and key pair, say) is tried again.
            *known = stamps;
        }
        match build_server_config(&self.settings) {
            Ok(config) => {
                self.replace(config);
                ReloadOutcome::Reloaded
            }
            Err(error) => ReloadOutcome::Failed(error),
        }
    }
}

/// Starts the thread that reloads `context`'s files when they change. It ends once the
/// broker has dropped the context.
pub fn watch(context: &Arc<TlsContext>) -> std::io::Result<()> {
    let context = Arc::downgrade(context);
    std::thread::Builder::new()
        .name("hare-tls-reload".into())
        .spawn(move || loop {
            std::thread::sleep(RELOAD_CHECK_INTERVAL);
            let Some(context) = context.upgrade() else {
                return;
            };
            match context.reload_if_changed() {
                ReloadOutcome::Unchanged => {}
                ReloadOutcome::Reloaded => {
                    tracing::info!(cert = %context.settings.cert.display(), "TLS certificate reloaded");
                }
                ReloadOutcome::Failed(error) => {
                    tracing::error!(%error, "TLS files changed but do not load; the previous certificate stays in use");
                }
            }
        })?;
    Ok(())
}
