//! What the benchmarks share: reading a form's CSRF token, numbers from the environment, and
//! $10.00 statements of demo patient 1 with their pay links.
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

/// `n` new statements of $10.00 for demo patient 1 (whose answers the benchmarks give), each
/// with its own pay link.
pub async fn ten_dollar_statements(running: &patriotpay::Running, n: usize) -> Vec<TenDollars> {
    let st = &running.state;
    let tenant = patriotpay::demo::ensure(&st.db, &st.crypto).await.unwrap();
    let first = patriotpay::demo::statement_of(&st.db, &st.crypto, &tenant, 1)
        .await
        .unwrap();
    let patient: String = sqlx::query_scalar("SELECT patient_id FROM statements WHERE id = $1")
        .bind(first.as_str())
        .fetch_one(st.db.pool())
        .await
        .unwrap();
    let patient = patriotpay::ids::PatientId::from_db(patient);
    let mut out = vec![];
    for _ in 0..n {
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
