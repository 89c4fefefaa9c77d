//! The statement and receipt as PDF downloads, for a pay-link visitor and for an account: the
//! same view models as the pages, under the same policy decisions, audited as downloads
//! (`*.pdf` events). The file name says what it is, never whose.

use super::error::{AppError, Result};
use super::extract::{LinkVisitor, Member, VerifiedVisitor};
use super::link_views::{receipt_vm, statement_vm, Shown};
use super::member_views::{account_receipt_vm, account_statement_vm};
use super::session::Sess;
use super::{tr, AppState, RequestContext, Routes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use patriotpay_app::urls::{Url, ANY};

pub fn router(state: &AppState) -> Routes {
    Routes::new(state)
        .phi_page(Url::StatementPdf, statement_pdf)
        .phi_page(Url::ReceiptPdf(ANY), receipt_pdf)
        .phi_page(Url::AccountStatementPdf(ANY), account_statement_pdf)
        .phi_page(Url::AccountReceiptPdf(ANY), account_receipt_pdf)
}

/// A PDF as a download that no cache keeps.
fn download(bytes: Vec<u8>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}

/// Draws off the request's thread (a PDF document is not `Send`, and drawing is CPU work).
async fn draw<T: Send + 'static>(
    vm: T,
    f: fn(patriotpay_app::Tr, &T) -> std::result::Result<Vec<u8>, crate::pdf::PdfError>,
) -> Result<Vec<u8>> {
    let tr = tr();
    tokio::task::spawn_blocking(move || f(tr, &vm))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Internal(e.into()))
}

pub async fn statement_pdf(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    VerifiedVisitor(link): VerifiedVisitor,
) -> Result<Response> {
    let vm = statement_vm(&state, &ctx, &session, &link, Shown::Pdf).await?;
    Ok(download(
        draw(vm, crate::pdf::statement).await?,
        "statement.pdf",
    ))
}

pub async fn receipt_pdf(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    LinkVisitor { link, .. }: LinkVisitor,
    Path(raw): Path<String>,
) -> Result<Response> {
    let vm = receipt_vm(&state, &ctx, &session, &link, &raw, Shown::Pdf).await?;
    Ok(download(
        draw(vm, crate::pdf::receipt).await?,
        "receipt.pdf",
    ))
}

pub async fn account_statement_pdf(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: Sess,
    Member(who): Member,
    Path(raw): Path<String>,
) -> Result<Response> {
    let vm = account_statement_vm(&state, &ctx, &session, &who, &raw, Shown::Pdf).await?;
    Ok(download(
        draw(vm, crate::pdf::account_statement).await?,
        "statement.pdf",
    ))
}

pub async fn account_receipt_pdf(
    State(state): State<AppState>,
    ctx: RequestContext,
    Member(who): Member,
    Path(raw): Path<String>,
) -> Result<Response> {
    let vm = account_receipt_vm(&state, &ctx, &who, &raw, Shown::Pdf).await?;
    Ok(download(
        draw(vm, crate::pdf::account_receipt).await?,
        "receipt.pdf",
    ))
}
