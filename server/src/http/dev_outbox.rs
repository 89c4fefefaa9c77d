//! `/dev/outbox`: the demo's outbox viewer. Served only when `serve --demo` turned it on, to a
//! caller on this machine (never through a proxy: with forwarded addresses trusted it is off),
//! since it shows every queued message, pay-link tokens included. Anyone else gets a 404.

use super::{page_meta, AppState, RequestContext};
use crate::http::error::{AppError, Result};
use crate::ids::TenantId;
use crate::messages::{aad, MessageId};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use patriotpay_app::dev_outbox::{DevMessageVm, DevOutboxVm};

/// Messages shown, newest first.
const SHOWN: i64 = 200;

type Row = (
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    Vec<u8>,
    i64,
);

pub async fn page(State(state): State<AppState>, ctx: RequestContext) -> Result<Response> {
    let local = !state.trust_forwarded_for
        && ctx
            .address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if !state.dev_outbox || !local {
        return Err(AppError::NotFound);
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, tenant_id, channel, template, state, recipient_ct, subject_ct, body_ct,
             created_at
         FROM outbox ORDER BY created_at DESC, id DESC LIMIT $1",
    )
    .bind(SHOWN)
    .fetch_all(state.db.pool())
    .await?;
    let mut messages = Vec::with_capacity(rows.len());
    for (id, tenant, channel, template, st, to_ct, subject_ct, body_ct, at) in rows {
        let (id, tenant) = (MessageId::from_db(id), TenantId::from_db(tenant));
        let c = &state.crypto;
        let to = c
            .decrypt_str(aad(&tenant, id.as_str(), "recipient"), &to_ct)
            .await?;
        let body = c
            .decrypt_str(aad(&tenant, id.as_str(), "body"), &body_ct)
            .await?;
        let subject = match subject_ct {
            Some(ct) => Some(
                c.decrypt_str(aad(&tenant, id.as_str(), "subject"), &ct)
                    .await?
                    .expose()
                    .clone(),
            ),
            None => None,
        };
        let link = body
            .expose()
            .split_whitespace()
            .find(|w| w.starts_with(&state.public_url))
            .map(|w| w.trim_end_matches(['.', ',', ')']).to_owned());
        messages.push(DevMessageVm {
            queued: crate::clock::display_date_unix(at),
            channel,
            to: to.expose().clone(),
            template,
            state: st,
            subject,
            body: body.expose().clone(),
            link,
        });
    }
    let page = patriotpay_app::dev_outbox::dev_outbox(page_meta(), DevOutboxVm { messages });
    Ok(Html(page).into_response())
}
