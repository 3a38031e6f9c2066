//! The audit log of the control loop (issue #13): JSON Lines, one event per line, appended and
//! flushed to disk before an action is executed and again with its result. A restarted loop
//! replays it into the gate's state ([`GateState`]), so cooldowns and actions in flight survive a
//! restart, and a round can be replayed from what it recorded.
//!
//! The file is the user's (default `$XDG_STATE_HOME/operator/audit/<subject>.jsonl`); a line
//! that does not parse (a write torn by a crash) is skipped and counted, never fatal.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gate::{Action, GateState};

/// Longest line replayed, in bytes; longer ones are skipped like torn ones.
const MAX_LINE: usize = 1 << 20;
/// Size past which the loop rotates its log at the start of a round: the log moves to
/// `<file>.1` (replacing an older one) and a new one starts with what replays to the same state,
/// so replay and `operator audit` read a bounded file.
pub const ROTATE_AT: u64 = 64 << 20;

/// One event of the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AuditEvent {
    /// A round: what was seen, what the policy proposed and what the gate said.
    Round {
        time_ms: u64,
        round: u64,
        subject: String,
        policy: String,
        dry_run: bool,
        /// The policy's parameters as given (`--param`), to replay its decision.
        #[serde(default)]
        params: Vec<(String, String)>,
        /// The gate's limits this round.
        #[serde(default)]
        limits: Option<LimitsRecord>,
        /// Per store: id, state and leader write flow (bytes/s).
        stores: Vec<StoreSummary>,
        proposals: Vec<ProposalRecord>,
    },
    /// An admitted action is about to be executed (written and flushed first).
    Start { time_ms: u64, round: u64, action: Action },
    /// How an executed action ended.
    Outcome { time_ms: u64, round: u64, action: Action, applied: bool, detail: String },
    /// An admitted action that was not executed: not approved, or the loop was interrupted.
    Skipped { time_ms: u64, round: u64, action: Action, detail: String },
    /// A round that could not observe or decide, and why.
    RoundFailed { time_ms: u64, round: u64, subject: String, policy: String, error: String },
}

impl AuditEvent {
    /// The round the event belongs to.
    pub fn round(&self) -> u64 {
        match self {
            AuditEvent::Round { round, .. }
            | AuditEvent::Start { round, .. }
            | AuditEvent::Outcome { round, .. }
            | AuditEvent::Skipped { round, .. }
            | AuditEvent::RoundFailed { round, .. } => *round,
        }
    }
}

/// The gate's limits as a round applied them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LimitsRecord {
    pub max_actions_per_round: usize,
    pub max_in_flight: usize,
    pub region_cooldown_ms: u64,
}

impl From<&crate::gate::GateLimits> for LimitsRecord {
    fn from(l: &crate::gate::GateLimits) -> Self {
        LimitsRecord {
            max_actions_per_round: l.max_actions_per_round,
            max_in_flight: l.max_in_flight,
            region_cooldown_ms: u64::try_from(l.region_cooldown.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A store as a round saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StoreSummary {
    pub id: u64,
    pub state: String,
    pub leader_write_bytes_per_second: f64,
}

/// A proposal with the gate's verdict (`admitted`, or a refusal's name) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProposalRecord {
    pub action: Action,
    pub reason: String,
    pub score: f64,
    pub verdict: String,
    pub detail: String,
}

/// Why the audit log cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// An audit log open for appending.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// See [`ROTATE_AT`].
    pub rotate_at: u64,
}

impl AuditLog {
    /// `$XDG_STATE_HOME/operator/audit/<subject>.jsonl` (`~/.local/state` without it).
    pub fn default_path(subject: &str) -> Option<PathBuf> {
        let state = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(v) => PathBuf::from(v),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
        };
        Some(state.join("operator").join("audit").join(format!("{subject}.jsonl")))
    }

    /// Opens (creating it and its folder, private to the user) for appending, and locks it: two
    /// loops on one log would each take the other's caps and cooldowns for their own. A last line
    /// torn by a crash is ended, so the next event starts on a line of its own.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let err = |source| AuditError { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(err)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                std::io::Error::other(
                    "another `operator run`, or an action of `operator mcp`, holds this audit log; retry when it is \
                     done (two controllers of one cluster must share one log: it holds their cooldowns)",
                )
            } else {
                e
            }));
        }
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            use std::io::{Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
            }
        }
        Ok(AuditLog { path: path.to_path_buf(), file, rotate_at: ROTATE_AT })
    }

    /// Whether the log has grown past [`AuditLog::rotate_at`].
    pub fn needs_rotation(&self) -> Result<bool, AuditError> {
        let len = self.file.metadata().map_err(|source| AuditError { path: self.path.clone(), source })?.len();
        Ok(len > self.rotate_at)
    }

    /// Moves the log to `<file>.1` (replacing an older one) and goes on in a new log that starts
    /// with `carry` ([`Replay::carry`]). The new file is locked before the old one's lock goes.
    pub fn rotate(&mut self, carry: &[AuditEvent]) -> Result<(), AuditError> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, &old).map_err(|source| AuditError { path: self.path.clone(), source })?;
        let mut fresh = AuditLog::open(&self.path)?;
        fresh.rotate_at = self.rotate_at;
        for event in carry {
            fresh.append(event)?;
        }
        *self = fresh;
        Ok(())
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and flushes it to disk before returning.
    pub fn append(&mut self, event: &AuditEvent) -> Result<(), AuditError> {
        let err = |source| AuditError { path: self.path.clone(), source };
        // Control characters, bidi and C1 codes, escaped: the log is read on terminals.
        let text = serde_json::to_string(event).map_err(|e| err(std::io::Error::other(e)))?;
        let mut line = crate::text::json_safe(&text).into_owned().into_bytes();
        line.push(b'\n');
        self.file.write_all(&line).map_err(err)?;
        self.file.sync_data().map_err(err)
    }
}

/// What a replay found: the events, and how many lines were skipped.
#[derive(Debug, Default)]
pub struct Replay {
    pub events: Vec<AuditEvent>,
    pub skipped: u64,
}

impl Replay {
    /// Reads the log at `path` (an absent file is an empty log).
    pub fn read(path: &Path) -> Result<Replay, AuditError> {
        let err = |source| AuditError { path: path.to_path_buf(), source };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
            Err(e) => return Err(err(e)),
        };
        let mut replay = Replay::default();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).map_err(err)?;
            if n == 0 {
                break;
            }
            if line.len() > MAX_LINE {
                // Skip the rest of an overlong line, a bounded chunk at a time.
                replay.skipped += 1;
                while !line.ends_with(b"\n") {
                    line.clear();
                    if (&mut reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).map_err(err)? == 0 {
                        break;
                    }
                }
                continue;
            }
            match serde_json::from_slice::<AuditEvent>(&line) {
                Ok(e) => replay.events.push(e),
                Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                Err(_) => replay.skipped += 1,
            }
        }
        Ok(replay)
    }

    /// The events a new log must start with to replay to the same state: the starts of actions
    /// in flight, starts and outcomes within `window_ms` of `now_ms` (cooldowns), the last
    /// `recent` outcomes (the policy's history) and the last round's event (the numbering).
    pub fn carry(&self, now_ms: u64, window_ms: u64, recent: usize) -> Vec<AuditEvent> {
        let in_flight = self.gate_state(now_ms).in_flight;
        let since = now_ms.saturating_sub(window_ms);
        let outcomes = self.events.iter().filter(|e| matches!(e, AuditEvent::Outcome { .. })).count();
        let mut outcome_index = 0usize;
        let last_round =
            self.events.iter().rposition(|e| matches!(e, AuditEvent::Round { .. } | AuditEvent::RoundFailed { .. }));
        let mut last_start: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, e) in self.events.iter().enumerate() {
            if let AuditEvent::Start { action, .. } = e {
                last_start.insert(action.region_id(), i);
            }
        }
        self.events
            .iter()
            .enumerate()
            .filter(|(i, e)| match e {
                AuditEvent::Start { time_ms, action, .. } => {
                    *time_ms >= since
                        || (in_flight.get(&action.region_id()) == Some(action)
                            && last_start.get(&action.region_id()) == Some(i))
                }
                AuditEvent::Outcome { time_ms, .. } => {
                    outcome_index += 1;
                    *time_ms >= since || outcomes - outcome_index < recent
                }
                AuditEvent::Round { .. } | AuditEvent::RoundFailed { .. } => Some(*i) == last_round,
                AuditEvent::Skipped { .. } => false,
            })
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The gate's state at `now_ms` after these events: an action started and not ended is in
    /// flight; every start counts for its region's cooldown. A start dated after `now_ms` (a
    /// clock set back, an edited log) counts from now, or it would hold its region until then.
    pub fn gate_state(&self, now_ms: u64) -> GateState {
        let mut state = GateState::default();
        for e in &self.events {
            match e {
                AuditEvent::Start { time_ms, action, .. } => state.started(*action, (*time_ms).min(now_ms)),
                AuditEvent::Outcome { action, .. } => state.finished(action.region_id()),
                AuditEvent::Round { .. } | AuditEvent::Skipped { .. } | AuditEvent::RoundFailed { .. } => {}
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(region_id: u64, time_ms: u64) -> AuditEvent {
        AuditEvent::Start { time_ms, round: 1, action: Action::TransferLeader { region_id, to_store_id: 2 } }
    }

    #[test]
    fn a_restarted_loop_gets_back_its_in_flight_actions_and_cooldowns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/audit/tikv.jsonl");
        let mut log = AuditLog::open(&path).expect("open");
        log.append(&AuditEvent::Round {
            time_ms: 1,
            round: 1,
            subject: "tikv".into(),
            policy: "hot-write-balance".into(),
            dry_run: false,
            params: vec![],
            limits: None,
            stores: vec![StoreSummary { id: 1, state: "up".into(), leader_write_bytes_per_second: 5.0 }],
            proposals: vec![],
        })
        .expect("append");
        log.append(&start(10, 1_000)).expect("append");
        log.append(&start(11, 2_000)).expect("append");
        log.append(&AuditEvent::Outcome {
            time_ms: 3_000,
            round: 1,
            action: Action::TransferLeader { region_id: 10, to_store_id: 2 },
            applied: true,
            detail: "confirmed".into(),
        })
        .expect("append");
        // Not executed, or no round at all: neither is in flight nor cools a region down.
        let action = Action::TransferLeader { region_id: 12, to_store_id: 2 };
        log.append(&AuditEvent::Skipped { time_ms: 3_500, round: 1, action, detail: "not approved".into() })
            .expect("append");
        log.append(&AuditEvent::RoundFailed {
            time_ms: 4_000,
            round: 2,
            subject: "tikv".into(),
            policy: "hot-write-balance".into(),
            error: "decide: trap".into(),
        })
        .expect("append");
        drop(log);

        let replay = Replay::read(&path).expect("read");
        assert_eq!((replay.events.len(), replay.skipped), (6, 0));
        assert_eq!(replay.events.iter().map(AuditEvent::round).max(), Some(2));
        let state = replay.gate_state(u64::MAX);
        assert_eq!(state.in_flight.keys().copied().collect::<Vec<_>>(), [11]);
        assert!(!state.last_action_ms.contains_key(&12));
        assert_eq!(state.last_action_ms.get(&10), Some(&1_000));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn one_loop_at_a_time_and_a_torn_line_does_not_swallow_the_next_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"event\":\"start\",\"ti").expect("write");
        let mut log = AuditLog::open(&path).expect("open");
        let e = AuditLog::open(&path).expect_err("locked");
        assert!(e.to_string().contains("another `operator run`"), "{e}");
        log.append(&start(3, 9)).expect("append");
        drop(log);
        let replay = Replay::read(&path).expect("read");
        assert_eq!((replay.events.len(), replay.skipped), (1, 1));
        std::os::unix::fs::symlink(&path, dir.path().join("link.jsonl")).expect("symlink");
        assert!(AuditLog::open(&dir.path().join("link.jsonl")).is_err(), "a symlinked log is refused");
    }

    #[test]
    fn a_rotated_log_replays_to_the_same_in_flight_actions_cooldowns_and_round() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tikv.jsonl");
        let mut log = AuditLog::open(&path).expect("open");
        log.rotate_at = 1;
        let outcome = |region_id, time_ms| AuditEvent::Outcome {
            time_ms,
            round: 3,
            action: Action::TransferLeader { region_id, to_store_id: 2 },
            applied: true,
            detail: "confirmed".into(),
        };
        let failed_round = AuditEvent::RoundFailed {
            time_ms: 99_000,
            round: 7,
            subject: "tikv".into(),
            policy: "p".into(),
            error: "decide: trap".into(),
        };
        // Region 10: long done. Region 11: in flight for long. Region 12: done, still cooling down.
        for e in [start(10, 1_000), outcome(10, 2_000), start(11, 1_000), start(12, 95_000), outcome(12, 96_000)] {
            log.append(&e).expect("append");
        }
        log.append(&failed_round).expect("append");
        assert!(log.needs_rotation().expect("size"));
        let before = Replay::read(&path).expect("read");
        log.rotate(&before.carry(100_000, 60_000, 0)).expect("rotate");
        log.append(&start(13, 100_500)).expect("append to the new log");
        drop(log);

        let old = Replay::read(&dir.path().join("tikv.jsonl.1")).expect("the old log");
        assert_eq!(old.events, before.events);
        let after = Replay::read(&path).expect("read");
        let state = after.gate_state(u64::MAX);
        assert_eq!(state.in_flight.keys().copied().collect::<Vec<_>>(), [11, 13]);
        assert_eq!(state.last_action_ms.get(&11), Some(&1_000));
        assert_eq!(state.last_action_ms.get(&12), Some(&95_000));
        assert!(!state.last_action_ms.contains_key(&10), "region 10's cooldown ended long ago");
        assert_eq!(after.events.iter().map(AuditEvent::round).max(), Some(7));
        // The policy's history: the last outcomes are carried even when old.
        assert!(before.carry(100_000, 0, 1).contains(&outcome(12, 96_000)));
    }

    #[test]
    fn a_start_dated_in_the_future_counts_from_now() {
        let replay = Replay { events: vec![start(10, 90_000)], skipped: 0 };
        assert_eq!(replay.gate_state(5_000).last_action_ms.get(&10), Some(&5_000));
        assert_eq!(replay.gate_state(100_000).last_action_ms.get(&10), Some(&90_000));
    }

    #[test]
    fn a_torn_or_foreign_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jsonl");
        let good = serde_json::to_string(&start(7, 5)).expect("json");
        let huge = "x".repeat(MAX_LINE + 10);
        std::fs::write(&path, format!("{good}\n{{\"event\":\"start\",\"ti\n\n{huge}\nnot json\n{good}"))
            .expect("write");
        let replay = Replay::read(&path).expect("read");
        assert_eq!(replay.events.len(), 2);
        assert_eq!(replay.skipped, 3);
        assert!(Replay::read(&dir.path().join("absent.jsonl")).expect("absent").events.is_empty());
    }
}
