//! The journal options `buffer-server` and `im-endpoint` share: the `[journal]`
//! section of the TOML file and the `--journal-*` flags that override it.

use std::path::PathBuf;

use serde::Deserialize;

use smslink::journal::{JournalConfig, SyncPolicy};
use smslink::runtime::JournalSpec;

/// `--journal-*` flags (each overrides the file's `[journal]` key of the same name).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct JournalArgs {
    /// [journal] dir: keep both rings in a journal in this directory, so that a crash
    /// (kill -9, power cut) of this process loses nothing it confirmed. Default: off
    /// (RAM only).
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// [journal] sync: when records are made durable: always (before every
    /// confirmation that depends on them), interval:<ms> (at most every <ms>;
    /// a crash of the machine may lose the last interval) or off (the OS decides;
    /// survives a process crash only). Default always.
    #[arg(long, value_name = "POLICY")]
    pub journal_sync: Option<String>,
    /// [journal] max_disk_bytes: disk the journal may use; when it is full, new
    /// messages are held back as when the ring is full. Default 1073741824 (1 GiB).
    #[arg(long, value_name = "BYTES")]
    pub journal_max_disk_bytes: Option<u64>,
    /// [journal] repair: if the journal is damaged in the middle, cut it there (and log
    /// what was dropped) instead of refusing to start. Default false.
    #[arg(long)]
    pub journal_repair: bool,
}

/// The `[journal]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileJournal {
    pub dir: Option<PathBuf>,
    pub sync: Option<String>,
    pub max_disk_bytes: Option<u64>,
    pub repair: Option<bool>,
}

impl JournalArgs {
    /// Flags over the file over the defaults; `None` when no directory is given
    /// (then the other settings must not be given either: they would be ignored).
    pub fn spec(&self, file: &FileJournal) -> Result<Option<JournalSpec>, String> {
        let sync = self.journal_sync.as_deref().or(file.sync.as_deref());
        let max_disk_bytes = self.journal_max_disk_bytes.or(file.max_disk_bytes);
        let repair = self.journal_repair || file.repair.unwrap_or(false);
        let Some(dir) = self.journal_dir.clone().or(file.dir.clone()) else {
            if sync.is_some() || max_disk_bytes.is_some() || repair {
                return Err("journal settings without a journal directory (give dir)".into());
            }
            return Ok(None);
        };
        let mut config = JournalConfig {
            repair,
            ..JournalConfig::default()
        };
        if let Some(s) = sync {
            config.sync = s
                .parse::<SyncPolicy>()
                .map_err(|e| format!("journal {e}"))?;
        }
        if let Some(max) = max_disk_bytes {
            config.set_max_disk_bytes(max);
        }
        Ok(Some(JournalSpec { dir, config }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file = FileJournal {
            dir: Some("/var/lib/smslink/j".into()),
            sync: Some("interval:50".into()),
            max_disk_bytes: Some(1 << 20),
            repair: None,
        };
        let spec = JournalArgs::default().spec(&file).unwrap().unwrap();
        assert_eq!(spec.dir, PathBuf::from("/var/lib/smslink/j"));
        assert_eq!(
            spec.config.sync,
            SyncPolicy::Interval(Duration::from_millis(50))
        );
        assert_eq!(spec.config.max_disk_bytes, 1 << 20);
        assert_eq!(spec.config.segment_size, 1 << 19);
        assert!(!spec.config.repair);

        let flags = JournalArgs {
            journal_dir: Some("/tmp/j".into()),
            journal_sync: Some("off".into()),
            journal_max_disk_bytes: None,
            journal_repair: true,
        };
        let spec = flags.spec(&file).unwrap().unwrap();
        assert_eq!(spec.dir, PathBuf::from("/tmp/j"));
        assert_eq!(spec.config.sync, SyncPolicy::Off);
        assert_eq!(spec.config.max_disk_bytes, 1 << 20);
        assert!(spec.config.repair);

        let only_dir = JournalArgs {
            journal_dir: Some("/tmp/j".into()),
            ..JournalArgs::default()
        };
        let spec = only_dir.spec(&FileJournal::default()).unwrap().unwrap();
        assert_eq!(spec.config, JournalConfig::default());
    }

    #[test]
    fn no_directory_means_no_journal_and_stray_settings_are_errors() {
        let none = JournalArgs::default().spec(&FileJournal::default());
        assert_eq!(none, Ok(None));
        let stray = JournalArgs {
            journal_sync: Some("always".into()),
            ..JournalArgs::default()
        };
        assert!(stray.spec(&FileJournal::default()).is_err());
        let bad = JournalArgs {
            journal_dir: Some("/tmp/j".into()),
            journal_sync: Some("sometimes".into()),
            ..JournalArgs::default()
        };
        assert!(bad
            .spec(&FileJournal::default())
            .unwrap_err()
            .contains("sometimes"));
    }
}
