//! `incident notify --practice P`: the affected-client report for one practice — which patients,
//! which of their data was viewed or changed, when and by whom — with the notification deadline
//! (60 days from discovery) and the notification letter drafted. Names are PHI: each is read
//! under a permit the policy gives the operator acting as the practice's security officer
//! (`RunIncidentConsole`), which writes its audit event (`incident.notify.read`).

use super::{scope, show_time, Filter, Window};
use crate::access::{self, Action, Grant, Principal, Resource, Role};
use crate::audit::Actor;
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::{PatientId, TenantId};
use serde::Serialize;

/// Days from discovery within which the affected must be told.
pub const NOTIFY_WITHIN_DAYS: i64 = 60;

/// One affected patient.
#[derive(Clone, Debug, Serialize)]
pub struct Affected {
    pub patient: String,
    pub name: String,
    /// What was viewed or changed, in words.
    pub data: Vec<String>,
    pub first: i64,
    pub last: i64,
    pub by: Vec<String>,
}

/// The report for one practice.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub practice: String,
    pub practice_name: String,
    pub window: Window,
    pub discovered: i64,
    pub deadline: i64,
    pub affected: Vec<Affected>,
    pub letter: String,
}

/// What an audit action says was seen or changed, in the words a letter uses.
fn data_of(action: &str) -> String {
    let words = match action {
        a if a.starts_with("statement.itemised") || a.starts_with("account.statement") => {
            "itemised statement (services, dates of service, amounts)"
        }
        a if a.starts_with("statement.") => "statement balance and due date",
        a if a.starts_with("patient.console") => {
            "account details (statements, payments, payment links, messages)"
        }
        a if a.starts_with("viewas.") => "the patient portal as the patient sees it",
        a if a.starts_with("payment") || a.starts_with("refund") => "payments",
        a if a.starts_with("guarantor.") => "who may pay the bills (guarantors)",
        a if a.starts_with("paylink.") => "payment links",
        a if a.starts_with("record_views") => "the record of who viewed the account",
        other => return format!("other ({other})"),
    };
    words.to_owned()
}

/// The operator, acting as the practice's security officer.
fn officer(tenant: &TenantId) -> Principal {
    Principal {
        user: "cli".into(),
        grants: vec![Grant {
            role: Role::SecurityOfficer,
            tenant: Some(tenant.clone()),
            patients: Default::default(),
            expires_at: None,
        }],
        mfa: true,
        ..Principal::default()
    }
}

/// The report for `tenant` over `window`, discovered at `discovered`.
pub async fn report(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    window: Window,
    discovered: i64,
    now: i64,
) -> anyhow::Result<Report> {
    let practice_name = crate::billing::tenant(db, tenant)
        .await?
        .map(|t| t.name)
        .ok_or_else(|| anyhow::anyhow!("no practice {tenant}"))?;
    let filter = Filter {
        practice: Some(tenant.to_string()),
        ..Filter::default()
    };
    let s = scope(db, window, &filter).await?;
    let who = officer(tenant);
    let actor = Actor {
        at: Some(now),
        ..Actor::system("cli")
    };
    let mut affected = vec![];
    for p in &s.patients {
        let patient = PatientId::from_db(p.patient.clone());
        let permit = access::permit(
            db.pool(),
            access::Ask {
                who: &who,
                actor: &actor,
                action: Action::RunIncidentConsole,
                on: Resource {
                    tenant,
                    patient: Some(&patient),
                    clinical_restricted: false,
                },
                event: "incident.notify.read",
                resource: Some(patient.as_str()),
                now,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("the policy refused reading {patient}: {e:?}"))?;
        let name = crate::billing::full_name(db, crypto, &permit)
            .await
            .map_err(|e| anyhow::anyhow!("{patient}: {e}"))?;
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT action FROM audit_events
             WHERE patient_id = $1 AND tenant_id = $2 AND at >= $3 AND at <= $4
               AND outcome = 'success'",
        )
        .bind(patient.as_str())
        .bind(tenant.as_str())
        .bind(window.since)
        .bind(window.until)
        .fetch_all(db.pool())
        .await?;
        let mut data: Vec<String> = actions.iter().map(|a| data_of(a)).collect();
        data.sort();
        data.dedup();
        affected.push(Affected {
            patient: p.patient.clone(),
            name: name.into_inner(),
            data,
            first: p.first,
            last: p.last,
            by: p.actors.clone(),
        });
    }
    let deadline = discovered + NOTIFY_WITHIN_DAYS * 86_400;
    let letter = letter(&practice_name, window, discovered);
    Ok(Report {
        practice: tenant.to_string(),
        practice_name,
        window,
        discovered,
        deadline,
        affected,
        letter,
    })
}

/// The notification letter, drafted: `{name}` and `{data}` are filled per patient; the parts in
/// brackets are for the practice to write.
fn letter(practice: &str, window: Window, discovered: i64) -> String {
    let day = |t: i64| show_time(t)[..10].to_owned();
    format!(
        "Dear {{name}},\n\n\
         We are writing to tell you about an incident that involved some of your information at \
         {practice}.\n\n\
         What happened: between {} and {}, [describe what happened]. We found it on {}.\n\n\
         What information was involved: {{data}}.\n\n\
         What we are doing: [what was done to stop it and prevent it happening again].\n\n\
         What you can do: [steps the patient can take]. Your payment card numbers are never kept \
         by {practice} or PatriotPay, so they were not involved.\n\n\
         For more information: [contact name, phone and address].\n\n\
         Sincerely,\n{practice}\n",
        day(window.since),
        day(window.until),
        day(discovered),
    )
}

/// The report as a printable page (plain HTML, every value escaped).
pub fn html(r: &Report) -> String {
    let e = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut rows = String::new();
    for a in &r.affected {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td></tr>\n",
            e(&a.name),
            e(&a.patient),
            e(&a.data.join("; ")),
            show_time(a.first),
            show_time(a.last),
            e(&a.by.join(", "))
        ));
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Affected patients: {name}</title></head><body>\
         <h1>Affected patients: {name}</h1>\
         <p>Window {since} to {until}. Discovered {disc}. <strong>Notify by {deadline}</strong> \
         ({days} days from discovery).</p>\
         <table border=\"1\" cellpadding=\"4\"><thead><tr><th>Patient</th><th>Id</th>\
         <th>What was viewed or changed</th><th>When</th><th>By</th></tr></thead>\
         <tbody>\n{rows}</tbody></table>\
         <h2>Letter (draft)</h2><pre>{letter}</pre></body></html>\n",
        name = e(&r.practice_name),
        since = show_time(r.window.since),
        until = show_time(r.window.until),
        disc = show_time(r.discovered),
        deadline = &show_time(r.deadline)[..10],
        days = NOTIFY_WITHIN_DAYS,
        letter = e(&r.letter),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_the_data_they_show() {
        assert_eq!(
            data_of("statement.itemised.view"),
            "itemised statement (services, dates of service, amounts)"
        );
        assert_eq!(
            data_of("statement.summary.view"),
            "statement balance and due date"
        );
        assert!(data_of("patient.console.view").starts_with("account details"));
        assert_eq!(data_of("something.else"), "other (something.else)");
    }
}
