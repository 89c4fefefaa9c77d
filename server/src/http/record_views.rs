//! "Who viewed my record": the page listing every staff view or change of the caller's own
//! record, for a signed-in member (`/account/record-views`) and for a pay-link visitor who gave
//! both identity answers (`/record-views`). Each view of the page is a permit for
//! `ViewOwnAccessLog` (audited as `record_views.view`, which the list itself leaves out: its
//! actor is the patient).
//!
//! **Whose records.** Only records the caller holds as the patient. The policy gives
//! `ViewOwnAccessLog` to the `Patient` role alone: a guarantor's grant is billing scope over a
//! dependant, and which staff looked at a dependant's record, when and why (an emergency's
//! reason) says more about the dependant's care than the amounts a guarantor pays. A dependant
//! who becomes an adult reads it on their own account; a parent holding the dependant's pay
//! link and both answers passes as the patient, as for every other pay-link page.

use super::error::{AppError, Result};
use super::extract::{Member, VerifiedVisitor};
use super::member::{self, MemberAsk};
use super::patient::{link_actor, link_principal};
use super::session::Sess;
use super::{tr, AppState, RequestContext, Routes};
use crate::access::{self, Action, Permit, Resource};
use crate::accounts;
use crate::audit::record_views::{self, Emergency, RecordViewsError, StaffView, PAGE};
use crate::ids::{PatientId, TenantId};
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::vm_record_views::{RecordViewVm, RecordViewsVm};
use patriotpay_app::Url;
use std::collections::BTreeMap;

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .phi_page(Url::AccountRecordViews, member_page)
        .phi_page(Url::RecordViews, visitor_page)
}

const EVENT: &str = "record_views.view";

/// `?before=<seq>`: the older page, after the last event shown.
#[derive(Default, serde::Deserialize)]
pub struct OlderQuery {
    #[serde(default)]
    before: String,
}

impl OlderQuery {
    fn cursor(&self) -> Option<i64> {
        self.before.parse().ok().filter(|s: &i64| *s > 0)
    }
}

impl From<RecordViewsError> for AppError {
    fn from(e: RecordViewsError) -> Self {
        match e {
            RecordViewsError::Db(d) => d.into(),
            RecordViewsError::Crypto(c) => c.into(),
            e @ (RecordViewsError::WrongPermit | RecordViewsError::ViewAs(_)) => {
                AppError::Internal(e.into())
            }
        }
    }
}

pub async fn member_page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Query(q): Query<OlderQuery>,
) -> Result<Response> {
    let people = member::people(&who);
    if people.is_empty() {
        // An account that acts for no one (every grant revoked) still asks, so the page's
        // answer, an empty list, comes from the policy like every protected page's.
        let on = Resource {
            tenant: accounts::platform(),
            patient: None,
            clinical_restricted: false,
        };
        let _refused = access::decide(&who.principal, Action::ViewOwnAccessLog, &on, ctx.now);
    }
    let mut permits = vec![];
    for (_, tenant, patient) in people {
        // A dependant's record is left out, not refused: the policy gives the access log to
        // the patient alone (see the module's doc).
        if !member::decide(
            &who,
            Action::ViewOwnAccessLog,
            &tenant,
            &patient,
            false,
            ctx.now,
        )
        .allowed()
        {
            continue;
        }
        let ask = MemberAsk {
            action: Action::ViewOwnAccessLog,
            tenant: &tenant,
            patient: &patient,
            event: EVENT,
            resource: Some(patient.as_str()),
        };
        let permit = member::member_permit(&state, &ctx, &who, ask).await?;
        permits.push((permit, patient));
    }
    let vm = listing(
        &state,
        &permits,
        q.cursor(),
        (Url::AccountRecordViews, Url::Account),
        true,
    )
    .await?;
    let meta = member::meta(&session).await?;
    Ok(Html(patriotpay_app::account::record_views(meta, vm)).into_response())
}

pub async fn visitor_page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    VerifiedVisitor(link): VerifiedVisitor,
    Query(q): Query<OlderQuery>,
) -> Result<Response> {
    let who = link_principal(&ctx, &link);
    let permit = access::permit_view(
        &state.audit,
        access::Ask {
            who: &who,
            actor: &ctx.actor(link_actor(&link)),
            action: Action::ViewOwnAccessLog,
            on: Resource {
                tenant: &link.tenant_id,
                patient: Some(&link.patient_id),
                clinical_restricted: false,
            },
            event: EVENT,
            resource: Some(link.patient_id.as_str()),
            now: ctx.now,
        },
    )
    .await?;
    let permits = [(permit, link.patient_id.clone())];
    // An emergency's reason is free text a staff member wrote: it goes to the signed-in
    // patient only, not to whoever holds the link and its answers (a household member, say).
    let vm = listing(
        &state,
        &permits,
        q.cursor(),
        (Url::RecordViews, Url::Summary),
        false,
    )
    .await?;
    let practice = member::practice_name(&state, &link.tenant_id).await?;
    let meta = super::patient::meta(&session, Some(practice)).await?;
    Ok(Html(patriotpay_app::account::record_views(meta, vm)).into_response())
}

/// One page of staff events over every record permitted, newest first. Seqs are one order
/// across all patients, so each record's newest `PAGE + 1` below the cursor, merged, give the
/// page and tell whether an older one exists.
async fn listing(
    state: &AppState,
    permits: &[(Permit, PatientId)],
    before: Option<i64>,
    (here, back): (Url<'static>, Url<'static>),
    reasons: bool,
) -> Result<RecordViewsVm> {
    let mut views: Vec<StaffView> = vec![];
    for (permit, patient) in permits {
        views.extend(
            record_views::staff_views(&state.db, &state.crypto, permit, patient, before).await?,
        );
    }
    views.sort_by_key(|v| std::cmp::Reverse(v.seq));
    let more = views.len() > PAGE;
    views.truncate(PAGE);
    let older = match views.last() {
        Some(last) if more => Some(here.with_query("before", &last.seq.to_string())),
        _ => None,
    };
    let mut practices: BTreeMap<TenantId, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(views.len());
    for v in views {
        let tenant = v.staff_practice.clone();
        if !practices.contains_key(&tenant) {
            let name = member::practice_name(state, &tenant).await?;
            practices.insert(tenant.clone(), name);
        }
        let practice = practices.get(&tenant).map(String::as_str).unwrap_or("");
        out.push(worded(practice, v, reasons));
    }
    Ok(RecordViewsVm {
        views: out,
        older,
        back,
    })
}

/// The catalog's word for an action: what was done ("viewed your payments") and what was tried
/// ("view your payments"). Actions not named here read as opening the record.
fn action_key(action: &str) -> &'static str {
    match action {
        "patient.payments.view" => "payments",
        "payment.refund" | "payment.refund.issue" => "refund",
        "patient.search.result.view" => "search",
        "guarantor.invite" => "guarantor-invite",
        "guarantor.revoke" => "guarantor-revoke",
        "statement.summary.view" | "statement.itemised.view" | "statement.amounts.view" => {
            "statement"
        }
        "payment.receipt.view" => "receipt",
        "patient.console.view" => "console",
        "paylink.resend" => "link-resend",
        "paylink.revoke" => "link-revoke",
        "paylink.unlock" => "link-unlock",
        "viewas.start" => "view-as",
        "viewas.change" => "view-as-change",
        "viewas.act-on-behalf" => "view-as-pay",
        _ => "other",
    }
}

/// One event in plain words.
fn worded(practice: &str, v: StaffView, reasons: bool) -> RecordViewVm {
    let t = tr();
    let who = match &v.staff_name {
        Some(name) => t.ta(
            "record-views-staff",
            &[("name", name.as_str()), ("practice", practice)],
        ),
        None => t.ta("record-views-staff-unnamed", &[("practice", practice)]),
    };
    let key = action_key(&v.action);
    let when = when(v.at);
    let (template, what) = match v.outcome.as_str() {
        "success" => ("record-views-done", format!("record-views-did-{key}")),
        "denied" => ("record-views-refused", format!("record-views-try-{key}")),
        _ => ("record-views-failed", format!("record-views-try-{key}")),
    };
    let line = t.ta(
        template,
        &[("who", &who), ("what", &t.t(&what)), ("when", &when)],
    );
    let support = v.view_as.map(|s| {
        if reasons {
            t.ta(
                "record-views-view-as",
                &[
                    ("reason", s.reason.expose().as_str()),
                    ("ticket", s.ticket.as_str()),
                ],
            )
        } else {
            t.ta(
                "record-views-view-as-link",
                &[("ticket", s.ticket.as_str())],
            )
        }
    });
    let why = v
        .emergency
        .map(|e| match e {
            Emergency::Reason(r) if reasons => {
                t.ta("record-views-emergency", &[("reason", r.expose().as_str())])
            }
            Emergency::Reason(_) => t.t("record-views-emergency-link"),
            Emergency::Withheld => t.t("record-views-emergency-withheld"),
        })
        .or(support);
    RecordViewVm {
        line,
        why,
        refused: v.outcome != "success",
    }
}

/// "Nov 30, 2026 at 21:03 UTC".
fn when(at: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]");
    let clock = time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default();
    format!("{} at {clock} UTC", crate::clock::display_date_unix(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(action: &str, outcome: &str, name: Option<&str>) -> StaffView {
        StaffView {
            seq: 7,
            at: 1_796_072_580, // 2026-11-30 21:03 UTC
            action: action.into(),
            outcome: outcome.into(),
            staff_name: name.map(str::to_owned),
            staff_practice: TenantId::generate(),
            emergency: None,
            view_as: None,
        }
    }

    #[test]
    fn events_read_as_plain_sentences() {
        let v = worded(
            "Demo Clinic",
            view("patient.payments.view", "success", Some("Dana Ruiz")),
            true,
        );
        assert_eq!(
            v.line,
            "Dana Ruiz of Demo Clinic viewed your payments on Nov 30, 2026 at 21:03 UTC."
        );
        assert!(!v.refused && v.why.is_none());
        let v = worded("Demo Clinic", view("payment.refund", "denied", None), true);
        assert_eq!(
            v.line,
            "A staff member of Demo Clinic tried to issue a refund on Nov 30, 2026 at 21:03 UTC, and was refused."
        );
        assert!(v.refused);
        let emergency = || {
            let mut e = view("something.new", "success", Some("Sam"));
            e.emergency = Some(Emergency::Reason(crate::phi::Phi::new(
                "fraud review".into(),
            )));
            e
        };
        let v = worded("P", emergency(), true);
        assert!(v.line.contains("Sam of P opened your record"), "{}", v.line);
        assert!(v
            .why
            .is_some_and(|w| w.ends_with("Reason given: fraud review")));
        // On a pay link, the reason is not shown.
        let v = worded("P", emergency(), false);
        assert!(v.why.is_some_and(|w| !w.contains("fraud review")));
    }
}
