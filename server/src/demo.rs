//! The demo practice: fictional patients loaded through the real import path, and pay links
//! printed for them. Used by `serve --demo` and `demo-link`.

use crate::billing::{self, NewLine, NewPatient, NewStatement};
use crate::crypto::FieldCrypto;
use crate::db::Db;
use crate::ids::{StatementId, TenantId};
use crate::money::Money;
use crate::phi::Phi;
use patriotpay_app::Lang;

pub const PRACTICE_NAME: &str = "Riverside Family Medicine";
pub const PRACTICE_PHONE: &str = "(555) 010-4400";

/// A demo patient's identity answers, printed next to their link. All fictional.
pub struct DemoPatient {
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub dob: &'static str,
    pub zip: &'static str,
    pub phone: &'static str,
    pub account: &'static str,
    /// The language the patient prefers (texts and pages).
    pub language: Lang,
    /// (service date, description, charge, insurance paid, adjustment, confidential)
    pub lines: &'static [(&'static str, &'static str, i64, i64, i64, bool)],
}

pub const PATIENTS: [DemoPatient; 6] = [
    DemoPatient {
        first_name: "Avery",
        last_name: "Quintero",
        dob: "1984-03-14",
        zip: "60614",
        phone: "+15550100001",
        account: "RFM-100231",
        language: Lang::En,
        lines: &[
            (
                "2026-09-02",
                "Office visit, established patient",
                18_500,
                12_000,
                1_500,
                false,
            ),
            (
                "2026-09-02",
                "Comprehensive metabolic panel",
                9_800,
                6_200,
                1_100,
                false,
            ),
            ("2026-09-16", "Follow-up visit", 14_000, 9_500, 800, false),
        ],
    },
    DemoPatient {
        first_name: "Jordan",
        last_name: "Whitlock",
        dob: "1991-11-02",
        zip: "60657",
        phone: "+15550100002",
        account: "RFM-100877",
        language: Lang::En,
        lines: &[
            ("2026-10-07", "Annual physical", 25_000, 25_000, 0, false),
            ("2026-10-07", "Lipid panel", 6_400, 3_800, 600, false),
        ],
    },
    DemoPatient {
        first_name: "Riley",
        last_name: "Okonkwo-Hart",
        dob: "2012-06-21",
        zip: "60622",
        phone: "+15550100003",
        account: "RFM-101402",
        language: Lang::En,
        lines: &[
            ("2026-08-19", "Sports physical", 9_000, 0, 1_500, false),
            ("2026-08-19", "Vision screening", 3_500, 0, 500, false),
            ("2026-10-28", "Sick visit", 16_000, 11_200, 1_300, false),
            ("2026-10-28", "Rapid strep test", 4_200, 2_900, 300, false),
        ],
    },
    // Patients 4 and 5 are siblings of patient 3: the household a guarantor pays for. Patient 5
    // is an adult, so a guarantor sees amounts but no service descriptions.
    DemoPatient {
        first_name: "Sam",
        last_name: "Okonkwo-Hart",
        dob: "2015-02-09",
        zip: "60622",
        phone: "+15550100004",
        account: "RFM-101403",
        language: Lang::En,
        lines: &[
            (
                "2026-10-12",
                "Well-child visit",
                15_000,
                12_000,
                1_000,
                false,
            ),
            (
                "2026-10-12",
                "Behavioral health screening",
                4_000,
                2_500,
                0,
                true,
            ),
        ],
    },
    DemoPatient {
        first_name: "Morgan",
        last_name: "Okonkwo-Hart",
        dob: "2006-05-30",
        zip: "60622",
        phone: "+15550100005",
        account: "RFM-101404",
        language: Lang::En,
        lines: &[(
            "2026-10-20",
            "Urgent care visit",
            21_000,
            16_000,
            1_500,
            false,
        )],
    },
    // Patient 6 prefers Spanish: her link opens the pages in Spanish. The practice's billing
    // system words the services in English, as most do; the portal never translates them.
    DemoPatient {
        first_name: "Lucía",
        last_name: "Ramírez Soto",
        dob: "1978-07-19",
        zip: "60608",
        phone: "+15550100006",
        account: "RFM-101588",
        language: Lang::Es,
        lines: &[
            (
                "2026-10-02",
                "Office visit, new patient",
                22_000,
                15_400,
                2_100,
                false,
            ),
            (
                "2026-10-02",
                "Hemoglobin A1c test",
                3_800,
                2_600,
                400,
                false,
            ),
        ],
    },
];

/// The demo practice, created with its patients and statements on first call.
pub async fn ensure(db: &Db, crypto: &FieldCrypto) -> anyhow::Result<TenantId> {
    let existing: Option<String> = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
        .bind(PRACTICE_NAME)
        .fetch_optional(db.pool())
        .await?;
    if let Some(id) = existing {
        return Ok(TenantId::from_db(id));
    }
    let tenant = billing::create_tenant(db, PRACTICE_NAME, PRACTICE_PHONE).await?;
    // The demo practice takes bank debits (ACH) beside cards, so the sandbox shows both.
    sqlx::query("UPDATE tenants SET bank_debit = 1 WHERE id = $1")
        .bind(tenant.as_str())
        .execute(db.pool())
        .await?;
    for p in &PATIENTS {
        let patient = billing::import_patient(
            db,
            crypto,
            &tenant,
            &NewPatient {
                first_name: Phi::new(p.first_name.into()),
                last_name: Phi::new(p.last_name.into()),
                dob: Phi::new(p.dob.into()),
                zip: Phi::new(p.zip.into()),
                phone: Phi::new(p.phone.into()),
                account_number: Phi::new(p.account.into()),
            },
        )
        .await?;
        if p.language != Lang::En {
            sqlx::query("UPDATE patients SET language = $1 WHERE id = $2")
                .bind(p.language.code())
                .bind(patient.as_str())
                .execute(db.pool())
                .await?;
        }
        let lines = p
            .lines
            .iter()
            .map(|(date, desc, charge, ins, adj, confidential)| NewLine {
                service_date: Phi::new((*date).into()),
                description: Phi::new((*desc).into()),
                charge: Money::from_cents(*charge),
                insurance_paid: Money::from_cents(*ins),
                adjustment: Money::from_cents(*adj),
                patient_responsibility: Money::from_cents(charge - ins - adj),
                confidential: *confidential,
            })
            .collect();
        billing::import_statement(
            db,
            crypto,
            &tenant,
            &patient,
            &NewStatement {
                statement_date: "2026-11-01".into(),
                due_date: "2026-12-01".into(),
                lines,
            },
        )
        .await?;
    }
    Ok(tenant)
}

/// The statement of the n-th demo patient (1-based), found by decrypting account numbers:
/// rows are created within the same second, so no column orders them reliably.
pub async fn statement_of(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    n: usize,
) -> anyhow::Result<StatementId> {
    anyhow::ensure!(
        (1..=PATIENTS.len()).contains(&n),
        "there are {} demo patients; pick 1 to {}",
        PATIENTS.len(),
        PATIENTS.len()
    );
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT s.id, p.id, p.account_number_ct FROM statements s JOIN patients p ON p.id = s.patient_id
         WHERE s.tenant_id = $1",
    )
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    for (statement, patient, account) in rows {
        let aad = crate::crypto::FieldAad {
            tenant,
            table: "patients",
            column: "account_number",
            row: &patient,
        };
        if crypto.decrypt_str(aad, &account).await?.expose() == PATIENTS[n - 1].account {
            return Ok(StatementId::from_db(statement));
        }
    }
    anyhow::bail!("demo patient {n} has no statement")
}

/// A fresh link to the n-th demo patient's statement, and the lines to print for it.
pub async fn link_text(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    n: usize,
    public_url: &str,
    ttl_days: u32,
) -> anyhow::Result<(String, String)> {
    let statement = statement_of(db, crypto, tenant, n).await?;
    let expires = crate::clock::now_unix() + i64::from(ttl_days) * 86_400;
    let (_, token) = crate::links::create(db, tenant, &statement, expires).await?;
    let p = &PATIENTS[n - 1];
    let (y, rest) = p.dob.split_at(4);
    let (m, d) = (&rest[1..3], &rest[4..6]);
    let help = format!(
        "Demo practice: {PRACTICE_NAME}. Demo patient {n} of {} (fictional).\n\
         Identity check: date of birth month {m}, day {d}, year {y}; then ZIP {} for the itemised statement.\n\
         Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined; any future expiry, any 3-digit CVC.\n\
         Test bank account (ACH): routing 110000000, account 000123456789 (000111111116 fails); it settles after PATRIOTPAY_SANDBOX_SETTLE_SECS.",
        PATIENTS.len(),
        p.zip
    );
    Ok((help, format!("{public_url}/p/{token}")))
}

/// A fresh guarantor invitation for the n-th demo patient, made as the practice makes one, and
/// the lines to print for it.
pub async fn invite_text(
    db: &Db,
    crypto: &FieldCrypto,
    tenant: &TenantId,
    n: usize,
    public_url: &str,
) -> anyhow::Result<(String, String)> {
    let statement = statement_of(db, crypto, tenant, n).await?;
    let header = billing::statement_header(db, &statement)
        .await?
        .ok_or_else(|| anyhow::anyhow!("demo statement vanished"))?;
    let now = crate::clock::now_unix();
    let (_, token) = crate::guarantors::invite(
        db.pool(),
        tenant,
        &header.patient_id,
        "cli:demo-invite",
        now,
    )
    .await?;
    let p = &PATIENTS[n - 1];
    let (y, rest) = p.dob.split_at(4);
    let (m, d) = (&rest[1..3], &rest[4..6]);
    let help = format!(
        "Guarantor invitation for demo patient {n} ({} {}, fictional), valid 14 days, usable once.\n\
         The invitee confirms: date of birth month {m}, day {d}, year {y}, and ZIP {}.",
        p.first_name, p.last_name, p.zip
    );
    Ok((help, format!("{public_url}/g/{token}")))
}

#[cfg(test)]
mod tests {
    /// The identity pages' examples must be nobody's answers: not a demo patient's date of birth
    /// (in the form it is typed) or ZIP.
    #[test]
    fn page_examples_are_no_patients_answers() {
        let catalog = include_str!("../../app/locales/en.ftl");
        for p in &super::PATIENTS {
            let (y, rest) = p.dob.split_at(4);
            let typed = format!("{} {} {y}", &rest[1..3], &rest[4..6]);
            assert!(!catalog.contains(&typed), "{typed} is a demo patient's");
            assert!(
                !catalog.contains(p.zip),
                "{} is a demo patient's ZIP",
                p.zip
            );
        }
    }
}
