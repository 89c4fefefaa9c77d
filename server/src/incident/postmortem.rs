//! `incident postmortem`: a Markdown post-mortem drafted from the record — the window, its
//! scope (`scope`), a timeline of what matters (alerts, anomaly and emergency-access events,
//! view-as sessions, operator commands) and every incident action taken since, with its time —
//! and the sections people write (summary, root cause, remediation, policy changes). Ids only:
//! no patient's name or data.

use super::{scope, show_time, trace, Filter, TraceItem, Window};
use crate::db::Db;
use std::fmt::Write;

/// Whether a trace item belongs in the post-mortem's timeline.
fn notable(item: &TraceItem) -> bool {
    match item {
        TraceItem::Alert { .. } => true,
        TraceItem::Event { action, .. } => [
            "anomaly.",
            "incident.",
            "breakglass",
            "break-glass",
            "viewas.start",
            "users.",
            "keys.",
            "account.not_me",
            "webhook.signature",
        ]
        .iter()
        .any(|p| action.starts_with(p)),
    }
}

/// The drafted document for `window`, with the actions taken up to `now`.
pub async fn draft(db: &Db, window: Window, now: i64) -> Result<String, sqlx::Error> {
    let all = Filter::default();
    let s = scope(db, window, &all).await?;
    let timeline: Vec<TraceItem> = trace(db, window, &all)
        .await?
        .into_iter()
        .filter(notable)
        .collect();
    let after = Window {
        since: window.since,
        until: now,
    };
    let actions: Vec<TraceItem> = trace(db, after, &all)
        .await?
        .into_iter()
        .filter(|i| matches!(i, TraceItem::Event { action, .. } if action.starts_with("incident.")))
        .collect();
    let (from, to) = (show_time(window.since), show_time(window.until));
    let mut md = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(md, "# Post-mortem: security incident, {from} to {to}\n");
    let _ = writeln!(
        md,
        "_Drafted by `patriotpay incident postmortem` at {} from the audit log and alerts. \
         The sections marked TODO are for the people who handled it._\n",
        show_time(now)
    );
    md.push_str(
        "## Summary\n\nTODO: what happened, who was affected, how it was found and stopped.\n\n",
    );
    md.push_str("## Scope\n\n");
    let _ = writeln!(md, "- Window: {from} to {to}");
    let _ = writeln!(md, "- Accounts that acted: {}", s.actors.len());
    let _ = writeln!(
        md,
        "- Patients whose records were viewed or changed: {}",
        s.patients.len()
    );
    let _ = writeln!(md, "- Practices affected: {}\n", s.practices.join(", "));
    md.push_str(
        "| account | events | patients | first | last |\n| --- | --- | --- | --- | --- |\n",
    );
    for a in &s.actors {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} |",
            a.actor,
            a.events,
            a.patients,
            show_time(a.first),
            show_time(a.last)
        );
    }
    md.push_str("\nPatients (ids; `patriotpay incident notify` reports them per practice):\n\n");
    for p in &s.patients {
        let _ = writeln!(
            md,
            "- `{}` ({}), {} event(s), {} to {}, by {}",
            p.patient,
            p.practice.as_deref().unwrap_or("no practice"),
            p.events,
            show_time(p.first),
            show_time(p.last),
            p.actors.join(", ")
        );
    }
    md.push_str("\n## Timeline\n\n");
    let _ = writeln!(
        md,
        "Alerts and notable events; the whole trail is `patriotpay incident trace --since {} --until {}`.\n",
        window.since, window.until
    );
    for i in &timeline {
        let _ = writeln!(md, "- `{}`", i.line());
    }
    md.push_str("\n## Actions taken\n\n");
    if actions.is_empty() {
        md.push_str("None recorded yet.\n");
    }
    for i in &actions {
        let _ = writeln!(md, "- `{}`", i.line());
    }
    md.push_str("\n## Root cause\n\nTODO\n\n## Remediation\n\nTODO\n\n## Policy changes\n\nTODO\n");
    Ok(md)
}
