//! What the benchmarks share: fetching a page, reading a form's CSRF token, numbers from the environment, and
//! $10.00 statements, each of a new patient, with their pay links.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use patriotpay::billing::{NewLine, NewStatement};
use patriotpay::ids::{LinkId, StatementId, TenantId};
use patriotpay::money::Money;
use patriotpay::phi::Phi;

pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("csrf");
    let end = html[start..].find('"').expect("quote") + start;
    html[start..end].to_owned()
}

/// The body of a GET (the benchmarks' clients keep cookies and do not follow redirects).
pub async fn page(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

pub fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One new $10.00 statement and its pay link.
pub struct TenDollars {
    pub tenant: TenantId,
    pub patient: patriotpay::ids::PatientId,
    pub statement: StatementId,
    pub link: LinkId,
    /// The link's token, as the text carries it (`/p/{token}`).
    pub token: String,
}

/// `n` new patients (born 1984-03-14, ZIP 60614: the answers the benchmarks give), each with
/// one new $10.00 statement and its pay link. One patient each, as in life: the identity check
/// caps the attempts outstanding on one patient.
pub async fn ten_dollar_statements(running: &patriotpay::Running, n: usize) -> Vec<TenDollars> {
    let st = &running.state;
    let tenant = patriotpay::demo::ensure(&st.db, &st.crypto).await.unwrap();
    let mut out = vec![];
    for i in 0..n {
        let patient = patriotpay::billing::import_patient(
            &st.db,
            &st.crypto,
            &tenant,
            &patriotpay::billing::NewPatient {
                first_name: Phi::new("Bench".into()),
                last_name: Phi::new(format!("Patient{i}")),
                dob: Phi::new("1984-03-14".into()),
                zip: Phi::new("60614".into()),
                phone: Phi::new(format!("+1555030{i:04}")),
                account_number: Phi::new(format!("BENCH-{i}")),
            },
        )
        .await
        .unwrap();
        let statement = patriotpay::billing::import_statement(
            &st.db,
            &st.crypto,
            &tenant,
            &patient,
            &NewStatement {
                statement_date: "2026-11-01".into(),
                due_date: "2026-12-01".into(),
                lines: vec![NewLine {
                    service_date: Phi::new("2026-10-01".into()),
                    description: Phi::new("Office visit".into()),
                    charge: Money::from_cents(1000),
                    insurance_paid: Money::ZERO,
                    adjustment: Money::ZERO,
                    patient_responsibility: Money::from_cents(1000),
                    confidential: false,
                }],
            },
        )
        .await
        .unwrap();
        let (link, token) = patriotpay::links::create(&st.db, &tenant, &statement, i64::MAX)
            .await
            .unwrap();
        out.push(TenDollars {
            tenant: tenant.clone(),
            patient: patient.clone(),
            statement,
            link,
            token,
        });
    }
    out
}
