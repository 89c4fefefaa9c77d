//! The PDFs read back as text: languages, page breaks, what a receipt names.

use super::*;
use patriotpay_app::vm::{
    AmountsVm, LineDetailVm, OpenStatementVm, PaymentVm, ReceiptItemVm, StatementLineVm,
};
use patriotpay_app::Lang;

/// Every page's text, as a reader (or a screen reader) gets it out of the file.
pub(crate) fn text_of(pdf: &[u8]) -> String {
    let doc = lopdf::Document::load_mem(pdf).expect("a readable PDF");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).expect("text")
}

fn amounts(c: &str) -> AmountsVm {
    AmountsVm {
        charge: c.into(),
        insurance_paid: "$80.00".into(),
        adjustment: "$10.00".into(),
        responsibility: "$35.00".into(),
    }
}

fn statement_vm(lines: usize) -> StatementVm {
    StatementVm {
        practice_name: "Clínica Familiar Núñez".into(),
        statement_date: "1 nov 2026".into(),
        due_date: "1 dic 2026".into(),
        lines: (0..lines)
            .map(|i| StatementLineVm {
                detail: (i % 5 != 4).then(|| LineDetailVm {
                    service_date: "2 sept 2026".into(),
                    description: format!("Consulta médica número {i}, con análisis"),
                }),
                amounts: amounts("$125.00"),
            })
            .collect(),
        totals: amounts("$1,234.56"),
        some_hidden: true,
        payments: vec![PaymentVm {
            date: "3 nov 2026".into(),
            amount: "$20.00".into(),
            brand: "Visa".into(),
            last4: "4242".into(),
            ..Default::default()
        }],
        balance: "$53.00".into(),
        ..Default::default()
    }
}

#[test]
fn a_statement_reads_back_in_its_language_with_every_accent() {
    let pdf = statement(Tr::new(Lang::Es), &statement_vm(3)).expect("pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    let text = text_of(&pdf);
    for want in [
        "Estado de cuenta detallado",
        "Clínica Familiar Núñez",
        "Consulta médica número 0",
        // The heading wraps over its column: "Pagó el" / "seguro".
        "Pagó el",
        "Usted debe",
        "$1,234.56",
        "$53.00",
        "Visa",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    // The fifth line's detail is hidden: its place holder, not its words.
    assert!(!text.contains("número 4"));
}

#[test]
fn a_long_statement_runs_onto_numbered_pages() {
    let pdf = statement(Tr::new(Lang::En), &statement_vm(120)).expect("pdf");
    let doc = lopdf::Document::load_mem(&pdf).expect("pdf");
    let pages = doc.get_pages().len();
    assert!(pages >= 3, "{pages} pages");
    let text = text_of(&pdf);
    assert!(text.contains(&format!("Page {pages} of {pages}")), "{text}");
    assert!(text.contains("Consulta médica número 118"));
}

/// Writes a sample statement for a person to look at (`PATRIOTPAY_PDF_SAMPLE=path`).
#[test]
fn sample_for_review() {
    if let Ok(path) = std::env::var("PATRIOTPAY_PDF_SAMPLE") {
        let pdf = statement(Tr::new(Lang::Es), &statement_vm(12)).expect("pdf");
        std::fs::write(path, pdf).expect("write");
    }
}

#[test]
fn a_receipt_names_the_payment() {
    let vm = ReceiptVm {
        practice_name: "Riverside Family Medicine".into(),
        amount: "$53.00".into(),
        date: "Dec 2, 2026".into(),
        card: Some(CardVm {
            brand: "Visa".into(),
            last4: "4242".into(),
        }),
        reference: "pay_0123456789abcdef".into(),
        new_balance: "$0.00".into(),
        ..Default::default()
    };
    let text = text_of(&receipt(Tr::default(), &vm).expect("pdf"));
    for want in [
        "Payment received",
        "Amount paid",
        "$53.00",
        "Visa ending 4242",
        "pay_0123456789abcdef",
        "Remaining balance",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
}

#[test]
fn a_household_receipt_names_each_statement_it_paid() {
    let item = |name: &str, amount: &str, left: &str| ReceiptItemVm {
        patient_name: name.into(),
        practice_name: "Lakeside Pediatrics".into(),
        statement_date: "03/01/2026".into(),
        amount: amount.into(),
        new_balance: left.into(),
    };
    let vm = AccountReceiptVm {
        amount: "$95.00".into(),
        date: "Dec 2, 2026".into(),
        reference: "pay_fedcba9876543210".into(),
        items: vec![
            item("Riley", "$70.00", "$0.00"),
            item("Sam", "$25.00", "$15.00"),
        ],
        ..Default::default()
    };
    let text = text_of(&account_receipt(Tr::default(), &vm).expect("pdf"));
    for want in [
        "Payment received",
        "$95.00",
        "pay_fedcba9876543210",
        "Statements this payment was applied to",
        "Riley",
        "$70.00",
        "Sam",
        "$25.00",
        "$15.00",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    assert!(!text.contains("Visa"), "no card was given: {text:?}");
}

#[test]
fn an_account_statement_says_whose_it_is() {
    let link = statement_vm(3);
    let vm = AccountStatementVm {
        practice_name: link.practice_name.clone(),
        patient_name: "Riley".into(),
        statement: OpenStatementVm {
            statement_date: link.statement_date.clone(),
            due_date: link.due_date.clone(),
            balance: "$70.00".into(),
            ..Default::default()
        },
        lines: link.lines.clone(),
        totals: link.totals.clone(),
        some_hidden: true,
        ..Default::default()
    };
    let text = text_of(&account_statement(Tr::default(), &vm).expect("pdf"));
    for want in [
        "Statement for Riley",
        "$70.00",
        "Some service descriptions are hidden",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
}
