//! PDF downloads (issue 16), on both databases: a visitor who gave both answers downloads the
//! itemised statement and a receipt as PDFs named without PHI and kept by no cache, whose text
//! holds the statement's lines and amounts in the visitor's language; each download is audited
//! apart from the page; without the ZIP answer there is no statement PDF, and another link's
//! visitor gets no receipt. A guarantor downloads a dependant's statement and a household
//! receipt the same way, seeing in the file only what the pages show them.

use crate::common::{
    answers, guarantor_of_4_and_5, location, pay_statements, Backend, Browser, TestApp,
};
use reqwest::StatusCode;

both_backends!(
    the_statement_and_a_receipt_download_as_pdfs,
    a_guarantor_downloads_a_dependants_statement_and_the_household_receipt,
);

/// The text of every page of a PDF.
fn pdf_text(bytes: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(bytes).expect("a PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).expect("text")
}

/// GETs `path` and checks it is a PDF download named `name`; its text.
async fn download(b: &Browser, path: &str, name: &str) -> String {
    let r = b.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    let header = |h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/pdf");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"{name}\"")
    );
    assert_eq!(header("cache-control"), "no-store");
    let bytes = r.bytes().await.expect("body");
    assert!(bytes.starts_with(b"%PDF-"));
    pdf_text(&bytes)
}

async fn the_statement_and_a_receipt_download_as_pdfs(backend: Backend) {
    let app = TestApp::start(backend).await;
    let b = app.verified_visitor(1).await;
    assert!(b
        .page("/statement")
        .await
        .contains("href=\"/statement/pdf\""));
    let text = download(&b, "/statement/pdf", "statement.pdf").await;
    for want in [
        "Itemised statement",
        "Riverside Family Medicine",
        "Office visit, established patient",
        "Comprehensive metabolic panel",
        "$185.00",
        "Insurance paid",
        "Balance due",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    let pdf_views = "SELECT COUNT(*) FROM audit_events WHERE action = 'statement.itemised.pdf'";
    assert_eq!(app.count(pdf_views).await, 1);

    // In the visitor's language.
    assert_eq!(location(&b.get("/statement?lang=es").await), "/statement");
    let text = download(&b, "/statement/pdf", "statement.pdf").await;
    assert!(text.contains("Estado de cuenta detallado"), "{text}");
    assert!(text.contains("Pagó el"), "{text}");
    assert!(text.contains("Office visit, established patient"), "{text}");
    assert_eq!(location(&b.get("/statement?lang=en").await), "/statement");

    // A receipt: pay $5 through the sandbox, then download it.
    let checkout = location(&b.pay("5.00").await);
    let back = location(&b.card(&checkout, "4242 4242 4242 4242").await);
    let receipt = location(&b.get(back.trim_start_matches(&app.url)).await);
    assert!(b
        .page(&receipt)
        .await
        .contains(&format!("href=\"{receipt}/pdf\"")));
    let text = download(&b, &format!("{receipt}/pdf"), "receipt.pdf").await;
    let payment = receipt.rsplit('/').next().expect("payment id");
    for want in ["Payment received", "$5.00", "Visa ending 4242", payment] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    let receipt_pdfs = "SELECT COUNT(*) FROM audit_events WHERE action = 'payment.receipt.pdf'";
    assert_eq!(app.count(receipt_pdfs).await, 1);

    // Only the date of birth given: no itemised statement, as a page or a PDF.
    let half = Browser::new(&app);
    half.open_link(&app.link(2).await).await;
    let (m, d, y, _) = answers(2);
    assert_eq!(location(&half.submit_dob(&m, &d, &y).await), "/summary");
    let r = half.get("/statement/pdf").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/verify/zip");
    // Another link's visitor: that receipt is not theirs.
    let other = app.verified_visitor(2).await;
    assert_eq!(
        other.get(&format!("{receipt}/pdf")).await.status(),
        StatusCode::NOT_FOUND
    );
    app.finish().await;
}

async fn a_guarantor_downloads_a_dependants_statement_and_the_household_receipt(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s4, s5) = (app.statement_of(4).await, app.statement_of(5).await);

    // Sam's statement: the page offers the PDF; the file shows what the page does (the
    // confidential line's words hidden) and is audited as a download.
    let page = format!("/account/statements/{s4}");
    let html = g.page(&page).await;
    assert!(html.contains(&format!("href=\"{page}/pdf\"")), "{html}");
    let pdfs = "SELECT COUNT(*) FROM audit_events WHERE action LIKE 'statement.%.pdf'";
    assert_eq!(app.count(pdfs).await, 0, "the page is not a download");
    let text = download(&g, &format!("{page}/pdf"), "statement.pdf").await;
    for want in ["Statement for Sam", "Well-child visit", "$35.00"] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    assert!(
        !text.contains("Behavioral health screening"),
        "a confidential line's words stay hidden: {text:?}"
    );
    assert_eq!(app.count(pdfs).await, 1);

    // One payment over both siblings' statements: the receipt PDF names each share.
    let csrf = g.csrf("/account").await;
    let checkout = location(&pay_statements(&g, &csrf, &[(&s4, "35.00"), (&s5, "20.00")]).await);
    let back = location(&g.card(&checkout, "4242 4242 4242 4242").await);
    let receipt = location(&g.get(back.trim_start_matches(&app.url)).await);
    assert!(receipt.starts_with("/account/receipt/"), "{receipt}");
    assert!(g
        .page(&receipt)
        .await
        .contains(&format!("href=\"{receipt}/pdf\"")));
    let text = download(&g, &format!("{receipt}/pdf"), "receipt.pdf").await;
    let payment = receipt.rsplit('/').next().expect("payment id");
    for want in [
        "Payment received",
        "$55.00",
        payment,
        "Sam",
        "Morgan",
        "$20.00",
        "$15.00",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    // One audited view per person the receipt covers.
    let receipt_pdfs = "SELECT COUNT(*) FROM audit_events WHERE action = 'payment.receipt.pdf'";
    assert_eq!(app.count(receipt_pdfs).await, 2);

    // Someone else's account: neither file exists for them.
    let (other, _) = app.signed_in_member(1, "someone.else@example.org").await;
    for path in [format!("{page}/pdf"), format!("{receipt}/pdf")] {
        assert_eq!(
            other.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Signed out: no file, a way to sign in.
    let nobody = Browser::new(&app);
    assert_eq!(
        nobody.get(&format!("{page}/pdf")).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.count(receipt_pdfs).await, 2, "refusals are not views");
    app.finish().await;
}
