//! `audit verify`: walks audit events and their seals together in seq order, recomputes every
//! hash, checks the anchor file's checkpoints, and names the first broken seq and why; the same
//! walk checks an export offline (`--file`).
//!
//! Only seqs up to the head read at the start are walked: every seal up to it had committed (a
//! seal is chained from the one before, so seals commit in order), and so had every event it
//! seals, so the walk needs no snapshot and a running server may keep writing meanwhile.

use super::anchor::{self, Checkpoint};
use super::chain::{self, event_hash, gap_hash, parse_hash, ChainEvent, Seal, GENESIS};
use crate::crypto::KeyProvider;
use crate::db::Db;
use std::collections::VecDeque;
use std::path::Path;

/// Why the chain is broken at a seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The event's bytes no longer hash to its seal.
    EventEdited,
    /// A seal names an event that is not there.
    EventMissing,
    /// An event at a seq sealed as a gap: it committed after its gap was sealed (a transaction
    /// open past the grace), or was inserted behind the application's back.
    ExtraEvent,
    /// A seal was changed: its hash, its link to the one before, or its kind.
    SealEdited,
    /// A seq below the head has no seal: seals were removed.
    SealMissing,
    /// The event at this seq is one sealed at another: rows swapped or renumbered.
    Order,
    /// A checkpoint disagrees with the chain, or its MAC does not verify.
    Checkpoint,
    /// The chain ends before the newest checkpoint: its newest events were removed.
    Truncated,
    /// An export line (or the anchor file) that cannot be read.
    Unreadable,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::EventEdited => "event edited",
            Problem::EventMissing => "event missing",
            Problem::ExtraEvent => "extra event",
            Problem::SealEdited => "seal edited",
            Problem::SealMissing => "seal missing",
            Problem::Order => "order",
            Problem::Checkpoint => "checkpoint",
            Problem::Truncated => "truncated",
            Problem::Unreadable => "unreadable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// The first seq concerned; `None` for an anchor-file line naming no seq.
    pub seq: Option<i64>,
    pub problem: Problem,
    pub detail: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(s) => write!(f, "seq {s}: {}: {}", self.problem.as_str(), self.detail),
            None => write!(f, "{}: {}", self.problem.as_str(), self.detail),
        }
    }
}

/// What a walk found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub events_sealed: u64,
    pub gaps: u64,
    /// Events above the head (the sealer has yet to reach them).
    pub unsealed: u64,
    /// The seq the walk started after (0, or an export's first seal minus one).
    pub start_seq: i64,
    pub head_seq: i64,
    pub head_hash: String,
    /// Events at seqs sealed as gaps (each also a `Problem::ExtraEvent`).
    pub extra: Vec<i64>,
    /// Checkpoints whose MAC and hash were verified.
    pub checkpoints_ok: usize,
    /// There was no anchor file to check.
    pub no_anchor_file: bool,
    /// The first problem (smallest seq; anchor-file problems without a seq first).
    pub broken: Option<Break>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Seals looked through after a mismatch for the event's true place ("order").
const LOOKAHEAD: usize = 10_000;
const PAGE: i64 = 5_000;

struct Pending {
    seq: i64,
    computed: [u8; 32],
    event: ChainEvent,
    seals_after: usize,
}

/// The walk: fed one seq at a time (its event and seal, either possibly absent), in seq order.
pub struct Walker {
    expected: i64,
    prev: [u8; 32],
    stopped: bool,
    pending: Option<Pending>,
    /// Checkpoints with a verified MAC, by seq, not yet met.
    checkpoints: VecDeque<(usize, Checkpoint)>,
    report: Report,
}

impl Walker {
    /// A walk starting after the seal `start_seq` whose hash is `start_hash` (0 and zeros for
    /// the whole chain).
    pub fn new(
        start_seq: i64,
        start_hash: [u8; 32],
        mut checkpoints: Vec<(usize, Checkpoint)>,
    ) -> Self {
        checkpoints.sort_by_key(|(_, c)| c.seq);
        Walker {
            expected: start_seq + 1,
            prev: start_hash,
            stopped: false,
            pending: None,
            checkpoints: checkpoints.into(),
            report: Report {
                start_seq,
                head_seq: start_seq,
                head_hash: hex::encode(start_hash),
                ..Default::default()
            },
        }
    }

    fn found(&mut self, seq: Option<i64>, problem: Problem, detail: String) {
        let earlier = match (&self.report.broken, seq) {
            (None, _) => true,
            (Some(b), Some(s)) => b.seq.is_some_and(|bs| s < bs),
            (Some(_), None) => false,
        };
        if earlier {
            self.report.broken = Some(Break {
                seq,
                problem,
                detail,
            });
        }
    }

    fn stop(&mut self, seq: i64, problem: Problem, detail: String) -> bool {
        self.found(Some(seq), problem, detail);
        self.stopped = true;
        false
    }

    /// Takes the next seq; `false` once nothing more is needed.
    pub fn feed(&mut self, seq: i64, event: Option<&ChainEvent>, seal: Option<&Seal>) -> bool {
        if self.pending.is_some() {
            return self.look_ahead(seal);
        }
        if self.stopped {
            return false;
        }
        let Some(seal) = seal else {
            // Only seqs up to the head are fed, so a later seal exists.
            return self.stop(
                seq,
                Problem::SealMissing,
                "the event has no seal though later events are sealed: its seal was removed".into(),
            );
        };
        if seal.seq < self.expected {
            return self.stop(
                seal.seq,
                Problem::Order,
                format!("out of seq order: it comes after seq {}", self.expected - 1),
            );
        }
        if seal.seq > self.expected {
            return self.stop(
                self.expected,
                Problem::SealMissing,
                format!(
                    "no seal and no event here, the next seal is seq {}: seals were removed",
                    seal.seq
                ),
            );
        }
        let (Some(prev), Some(hash)) = (parse_hash(&seal.prev_hash), parse_hash(&seal.hash)) else {
            return self.stop(
                seq,
                Problem::SealEdited,
                "its hashes are not SHA-256 hex".into(),
            );
        };
        if prev != self.prev {
            return self.stop(
                seq,
                Problem::SealEdited,
                format!(
                    "its prev_hash is not the hash of seq {} (the seal was changed)",
                    seq - 1
                ),
            );
        }
        match (seal.kind.as_str(), event) {
            ("gap", ev) => {
                if gap_hash(&prev, seq) != hash {
                    return self.stop(
                        seq,
                        Problem::SealEdited,
                        "the gap seal's hash does not recompute".into(),
                    );
                }
                if ev.is_some() {
                    self.report.extra.push(seq);
                    self.found(
                        Some(seq),
                        Problem::ExtraEvent,
                        "an event the chain does not cover: its seq was sealed as a gap before \
                         it existed (committed after the sealer's grace, or inserted behind the \
                         application's back)"
                            .into(),
                    );
                }
                self.report.gaps += 1;
            }
            ("event", None) => {
                return self.stop(
                    seq,
                    Problem::EventMissing,
                    "sealed, but the event is gone".into(),
                )
            }
            ("event", Some(ev)) => {
                let computed = event_hash(&prev, ev, seq);
                if computed != hash {
                    // Edited, or is the seal's hash what changed, or does the event belong at
                    // another seq? The seals that follow tell.
                    self.pending = Some(Pending {
                        seq,
                        computed,
                        event: ev.clone(),
                        seals_after: 0,
                    });
                    return true;
                }
                self.report.events_sealed += 1;
            }
            (other, _) => {
                return self.stop(
                    seq,
                    Problem::SealEdited,
                    format!("its kind {other:?} is neither event nor gap"),
                )
            }
        }
        self.prev = hash;
        self.expected = seq + 1;
        self.report.head_seq = seq;
        self.report.head_hash = seal.hash.clone();
        self.meet_checkpoints(seq, &seal.hash);
        true
    }

    fn meet_checkpoints(&mut self, seq: i64, hash: &str) {
        while let Some((line, cp)) = self.checkpoints.front().cloned() {
            if cp.seq > seq {
                break;
            }
            self.checkpoints.pop_front();
            if cp.seq < seq {
                // Below where this walk started (an export's window): not this walk's to check.
                continue;
            }
            if cp.hash == hash {
                self.report.checkpoints_ok += 1;
            } else {
                self.found(
                    Some(seq),
                    Problem::Checkpoint,
                    format!(
                        "the chain's hash here is {hash}, but the checkpoint of {} (anchor file \
                         line {line}) says {}: the history up to it was rewritten",
                        crate::clock::display_date_unix(cp.at),
                        cp.hash
                    ),
                );
                self.stopped = true;
            }
        }
    }

    fn look_ahead(&mut self, seal: Option<&Seal>) -> bool {
        let Some(seal) = seal else { return true };
        let Some(p) = self.pending.as_mut() else {
            return false;
        };
        let (prev, hash) = (parse_hash(&seal.prev_hash), parse_hash(&seal.hash));
        if p.seals_after == 0 && seal.seq == p.seq + 1 && prev == Some(p.computed) {
            let seq = p.seq;
            self.pending = None;
            return self.stop(
                seq,
                Problem::SealEdited,
                "its hash was changed: the event and the next seal agree on another".into(),
            );
        }
        if let (Some(prev), Some(hash)) = (prev, hash) {
            if seal.kind == "event" && event_hash(&prev, &p.event, seal.seq) == hash {
                let (seq, at) = (p.seq, seal.seq);
                self.pending = None;
                return self.stop(
                    seq,
                    Problem::Order,
                    format!("it holds the event sealed at seq {at}: rows swapped or renumbered"),
                );
            }
        }
        p.seals_after += 1;
        if p.seals_after >= LOOKAHEAD {
            self.finish_pending();
            return false;
        }
        true
    }

    fn finish_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            let detail = if p.seals_after == 0 {
                "its bytes no longer hash to its seal (or, as it is the newest seal, the seal's \
                 hash was changed)"
            } else {
                "its bytes no longer hash to its seal"
            };
            self.stop(p.seq, Problem::EventEdited, detail.into());
        }
    }

    /// Ends the walk: a mismatch still waiting is an edit; a checkpoint past the head is a
    /// truncation.
    pub fn finish(mut self) -> Report {
        self.finish_pending();
        if !self.stopped {
            if let Some((line, cp)) = self.checkpoints.back().cloned() {
                let head = self.report.head_seq;
                self.found(
                    Some(head + 1),
                    Problem::Truncated,
                    format!(
                        "the chain ends at seq {head}, but the checkpoint of {} (anchor file line \
                         {line}) covers seq {}: the newest events were removed",
                        crate::clock::display_date_unix(cp.at),
                        cp.seq
                    ),
                );
            }
        }
        self.report
    }
}

/// Reads the anchor file and verifies each checkpoint's MAC; returns those that verify and the
/// problems (into `report`).
async fn checkpoints(
    provider: &dyn KeyProvider,
    path: &Path,
    report: &mut Report,
) -> anyhow::Result<Vec<(usize, Checkpoint)>> {
    let Some(lines) = anchor::read(path)? else {
        report.no_anchor_file = true;
        return Ok(vec![]);
    };
    let mut good = vec![];
    let mut problems = vec![];
    for (line, cp) in lines {
        match cp {
            Err(e) => problems.push(Break {
                seq: None,
                problem: Problem::Unreadable,
                detail: format!("anchor file line {line} is not a checkpoint ({e})"),
            }),
            Ok(cp) => match anchor::mac_ok(provider, &cp).await {
                Ok(true) => good.push((line, cp)),
                Ok(false) => problems.push(Break {
                    seq: Some(cp.seq),
                    problem: Problem::Checkpoint,
                    detail: format!(
                        "the MAC of the checkpoint on anchor file line {line} does not verify: \
                         the anchor file was edited"
                    ),
                }),
                Err(e) => problems.push(Break {
                    seq: Some(cp.seq),
                    problem: Problem::Checkpoint,
                    detail: format!(
                        "the checkpoint on anchor file line {line} cannot be checked: {e}"
                    ),
                }),
            },
        }
    }
    // A problem with the anchor file comes first: it undermines every check after it.
    report.broken = problems.into_iter().next();
    Ok(good)
}

/// Verifies the whole chain in the database against the anchor file. `progress(done, total)`
/// is called as seqs are walked.
pub async fn verify_db(
    db: &Db,
    provider: &dyn KeyProvider,
    anchor_file: &Path,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<Report> {
    let (head, _) = chain::head(db).await?;
    let mut pre = Report::default();
    let cps = checkpoints(provider, anchor_file, &mut pre).await?;
    let mut w = Walker::new(0, GENESIS, cps);
    w.report.broken = pre.broken;
    w.report.no_anchor_file = pre.no_anchor_file;
    let events_sql = format!(
        "SELECT {} FROM audit_events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT {PAGE}",
        chain::EVENT_COLUMNS
    );
    let seals_sql = format!(
        "SELECT seq, kind, prev_hash, hash FROM audit_seals WHERE seq > $1 AND seq <= $2
         ORDER BY seq LIMIT {PAGE}"
    );
    let (mut events, mut seals) = (VecDeque::<ChainEvent>::new(), VecDeque::<Seal>::new());
    let (mut events_after, mut seals_after) = (Some(0i64), Some(0i64));
    let total = u64::try_from(head).unwrap_or(0);
    loop {
        if events.is_empty() {
            if let Some(after) = events_after {
                let page: Vec<ChainEvent> = sqlx::query_as(&events_sql)
                    .bind(after)
                    .bind(head)
                    .fetch_all(db.pool())
                    .await?;
                events_after = page
                    .last()
                    .map(|e| e.seq)
                    .filter(|_| page.len() as i64 == PAGE);
                events.extend(page);
            }
        }
        if seals.is_empty() {
            if let Some(after) = seals_after {
                let page: Vec<Seal> = sqlx::query_as(&seals_sql)
                    .bind(after)
                    .bind(head)
                    .fetch_all(db.pool())
                    .await?;
                seals_after = page
                    .last()
                    .map(|s| s.seq)
                    .filter(|_| page.len() as i64 == PAGE);
                seals.extend(page);
            }
        }
        let seq = match (events.front(), seals.front()) {
            (None, None) => break,
            (Some(e), None) => e.seq,
            (None, Some(s)) => s.seq,
            (Some(e), Some(s)) => e.seq.min(s.seq),
        };
        let ev = events
            .front()
            .is_some_and(|e| e.seq == seq)
            .then(|| events.pop_front())
            .flatten();
        let seal = seals
            .front()
            .is_some_and(|s| s.seq == seq)
            .then(|| seals.pop_front())
            .flatten();
        if seq % 1000 == 0 {
            progress(u64::try_from(seq).unwrap_or(0), total);
        }
        if !w.feed(seq, ev.as_ref(), seal.as_ref()) {
            break;
        }
    }
    progress(total, total);
    let mut report = w.finish();
    report.unsealed =
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events WHERE seq > $1")
            .bind(head)
            .fetch_one(db.pool())
            .await?
            .try_into()
            .unwrap_or(0);
    Ok(report)
}

/// Verifies an export (`audit export`) offline: the window's chain from the seal before it.
/// `progress(bytes_read)` is called as it goes.
pub fn verify_export(
    input: impl std::io::BufRead,
    progress: &dyn Fn(u64),
) -> anyhow::Result<Report> {
    use super::export::{ExportLine, ExportStart};
    let mut lines = input.lines();
    let first = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("the export is empty"))??;
    let start: ExportStart = serde_json::from_str(&first)
        .map_err(|e| anyhow::anyhow!("the first line is not an export's start ({e})"))?;
    let start_hash = parse_hash(&start.start_hash)
        .ok_or_else(|| anyhow::anyhow!("the start line's hash is not SHA-256 hex"))?;
    let mut w = Walker::new(start.start_seq, start_hash, vec![]);
    let mut read = first.len() as u64 + 1;
    for (n, line) in lines.enumerate() {
        let line = line?;
        read += line.len() as u64 + 1;
        if n % 1000 == 0 {
            progress(read);
        }
        if line.trim().is_empty() {
            continue;
        }
        let rec: ExportLine = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                let seq = w.expected;
                w.stop(
                    seq,
                    Problem::Unreadable,
                    format!("line {} is not a seal ({e})", n + 2),
                );
                break;
            }
        };
        if rec.event.as_ref().is_some_and(|e| e.seq != rec.seq) {
            w.stop(
                rec.seq,
                Problem::Order,
                "its line carries an event of another seq".into(),
            );
            break;
        }
        let seal = Seal {
            seq: rec.seq,
            kind: rec.kind,
            prev_hash: rec.prev_hash,
            hash: rec.hash,
        };
        if !w.feed(rec.seq, rec.event.as_ref(), Some(&seal)) {
            break;
        }
    }
    progress(read);
    Ok(w.finish())
}
