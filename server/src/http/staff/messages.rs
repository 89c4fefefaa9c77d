//! A practice's messages for its staff (issue 13): texts and emails given up or failed, and the
//! inbox of patients' replies that were no keyword, with "mark as read". Support agents and
//! practice admins of that practice only: each view is a `ViewMessages` permit (its event names
//! the practice), each mark a `HandleMessages` permit committed with the change; another
//! practice is refused with 403 (which practices exist is no secret to staff). Also how a
//! message line is worded, which the support console shares.

use super::{ask, ask_in, forbidden, meta, practice};
use crate::access::{self, Action};
use crate::accounts::Account;
use crate::billing::{self, Tenant};
use crate::http::error::{AppError, Result};
use crate::http::extract::{CsrfForm, PracticeStaff, StaffWith};
use crate::http::session::{Flash, Sess};
use crate::http::{see_other_query, tr, AppState, RequestContext};
use crate::ids::TenantId;
use crate::messages::staff::{self as read, MarkRead, MessageLine, StaffReadError};
use crate::messages::Channel;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::forms::{MessageReadForm, MessagesQuery};
use patriotpay_app::vm_messages::{MessageLineVm, MessagesVm, ReplyVm};
use patriotpay_app::Url;

impl From<StaffReadError> for AppError {
    fn from(e: StaffReadError) -> Self {
        match e {
            StaffReadError::Db(e) => e.into(),
            StaffReadError::Crypto(e) => e.into(),
            StaffReadError::NotPermitted => AppError::NotFound,
        }
    }
}

/// `Dec 1, 2026 14:05 UTC`.
pub(super) fn display_time(unix: i64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!("[hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default();
    format!("{} {time} UTC", crate::clock::display_date_unix(unix))
}

/// Where a message stands, in words.
fn state_words(m: &MessageLine, now: i64) -> String {
    let error = m.last_error.as_deref().unwrap_or_default();
    match m.state.as_str() {
        "queued" if m.next_attempt_at > now => tr().ta(
            "messages-state-deferred",
            &[("until", &display_time(m.next_attempt_at))],
        ),
        "failed" if error.is_empty() => tr().t("messages-state-failed-plain"),
        "failed" => tr().ta("messages-state-failed", &[("error", error)]),
        "dead" => tr().ta("messages-state-dead", &[("error", error)]),
        // Suppressed by the worker for want of consent; else the number opted out.
        "suppressed" if error == "no consent" => tr().t("messages-state-no-consent"),
        "suppressed" => tr().t("messages-state-opted-out"),
        s @ ("queued" | "sending" | "sent" | "delivered") => tr().t(&format!("messages-state-{s}")),
        other => other.to_owned(),
    }
}

/// One message as staff see it: no body, the recipient masked.
pub(super) fn line_vm(m: &MessageLine, now: i64) -> MessageLineVm {
    let template = match m.template.as_str() {
        t @ ("pay-link" | "reset-code" | "password-changed") => {
            tr().t(&format!("messages-template-{t}"))
        }
        other => tr().ta("messages-template-other", &[("name", other)]),
    };
    MessageLineVm {
        queued: display_time(m.created_at),
        channel: tr().t(match m.channel {
            Channel::Sms => "messages-channel-sms",
            Channel::Email => "messages-channel-email",
        }),
        template,
        state: state_words(m, now),
        recipient: m.recipient.clone(),
    }
}

/// Practices whose messages the policy lets this account see (nothing is read here).
async fn viewable(state: &AppState, account: &Account, now: i64) -> Result<Vec<Tenant>> {
    let mut out: Vec<Tenant> = vec![];
    for g in &account.principal.grants {
        let Some(t) = &g.tenant else { continue };
        if !access::decide(&account.principal, Action::ViewMessages, &practice(t), now).allowed() {
            continue;
        }
        if let Some(tenant) = billing::tenant(&state.db, t).await? {
            if !out.iter().any(|x| x.id == tenant.id) {
                out.push(tenant);
            }
        }
    }
    Ok(out)
}

/// Whether the home page links here (the policy only; nothing is read).
pub(super) fn can_view(account: &Account, now: i64) -> bool {
    account.principal.grants.iter().any(|g| {
        g.tenant.as_ref().is_some_and(|t| {
            access::decide(&account.principal, Action::ViewMessages, &practice(t), now).allowed()
        })
    })
}

/// The page: the practice named in the query, else the first the caller may see.
pub async fn page(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<PracticeStaff>,
    Query(q): Query<MessagesQuery>,
) -> Result<Response> {
    let mine = viewable(&state, &account, ctx.now).await?;
    let tenant = if q.practice.trim().is_empty() {
        mine.first()
            .map(|t| t.id.clone())
            .ok_or(AppError::Forbidden)?
    } else {
        TenantId::parse(q.practice.trim()).ok_or(AppError::BadRequest)?
    };
    let permit = ask(
        &state,
        &ctx,
        &account,
        Action::ViewMessages,
        practice(&tenant),
        "messages.view",
        Some(tenant.as_str()),
    )
    .await
    .map_err(forbidden)?;
    let name = billing::tenant(&state.db, &tenant)
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    let dead = read::dead_letters(&state.db, &state.crypto, &permit)
        .await?
        .iter()
        .map(|m| line_vm(m, ctx.now))
        .collect();
    let replies = read::replies(&state.db, &state.crypto, &permit)
        .await?
        .into_iter()
        .map(|r| ReplyVm {
            id: r.id,
            received: display_time(r.received_at),
            from: r.from,
            body: r.body.into_inner(),
            read: r.read_at.map(display_time),
        })
        .collect();
    let can_mark = access::decide(
        &account.principal,
        Action::HandleMessages,
        &practice(&tenant),
        ctx.now,
    )
    .allowed();
    let notice = match session.take_flash().await? {
        Some(f) if f.key.starts_with("messages-") => Some(tr().t(&f.key)),
        _ => None,
    };
    let vm = MessagesVm {
        csrf: session.csrf_token().await?,
        others: mine
            .into_iter()
            .filter(|t| t.id != tenant)
            .map(|t| (t.id.to_string(), t.name))
            .collect(),
        practice: (tenant.to_string(), name),
        dead,
        replies,
        can_mark,
        notice,
    };
    let html = patriotpay_app::staff_messages::messages(meta(), vm);
    Ok((StatusCode::OK, Html(html)).into_response())
}

/// Marks one reply read; the permit's event commits with the change (and alone when there was
/// nothing to change, so the attempt is on the record either way).
pub async fn mark_read(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    StaffWith(account, _): StaffWith<PracticeStaff>,
    CsrfForm(form): CsrfForm<MessageReadForm>,
) -> Result<Response> {
    let tenant = TenantId::parse(form.practice.trim()).ok_or(AppError::BadRequest)?;
    let reply = form.reply.trim();
    // Replies are `inb_` and 32 hex digits: anything else names none, and is not logged.
    let well_formed = reply.len() == 36
        && reply.starts_with("inb_")
        && reply[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(AppError::NotFound);
    }
    let (permit, mut tx) = ask_in(
        &state,
        &ctx,
        &account,
        Action::HandleMessages,
        practice(&tenant),
        "messages.reply.read",
        Some(reply),
    )
    .await
    .map_err(forbidden)?;
    let done = read::mark_read(&mut tx, &permit, reply, ctx.now).await?;
    tx.commit().await?;
    let key = match done {
        MarkRead::Marked => "messages-marked",
        MarkRead::AlreadyRead => "messages-marked-already",
        MarkRead::NotFound => return Err(AppError::NotFound),
    };
    session.set_flash(Flash::key(key)).await?;
    Ok(see_other_query(
        Url::StaffMessages,
        MessagesQuery::PRACTICE,
        tenant.as_str(),
    ))
}
