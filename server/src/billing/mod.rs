//! Billing: practices, patients and itemised statements, imported encrypted; balances derived
//! from the ledger. The types and the permit check live here; importing (`import`), statements
//! and their ledger (`statements`) and a patient's own details (`patients`) in the submodules.

mod import;
mod patients;
mod statements;

pub use import::*;
pub use patients::*;
pub use statements::*;

use crate::access::{Action, Permit};
use crate::crypto::{CryptoError, FieldAad, FieldCrypto};
use crate::db::Db;
use crate::ids::{LineId, PatientId, StatementId, TenantId};
use crate::money::Money;
use crate::phi::Phi;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("invalid import: {0}")]
    Invalid(&'static str),
    /// A reader was handed a permit for another record or action: a bug, refused before any
    /// decryption.
    #[error("permit does not cover this read")]
    NotPermitted,
}

/// The permit must be for this patient of this practice and one of `actions`.
fn check(
    permit: &Permit,
    tenant: &TenantId,
    patient: &PatientId,
    actions: &[Action],
) -> Result<(), BillingError> {
    if permit.covers_patient(tenant, patient) && actions.contains(&permit.action()) {
        Ok(())
    } else {
        Err(BillingError::NotPermitted)
    }
}

/// Actions under which a statement's lines may be read (descriptions are then shown or hidden
/// line by line by the policy).
const LINE_READERS: &[Action] = &[Action::ViewItemisedStatement, Action::ViewStatementAmounts];
/// Actions under which a patient's name may be read.
const NAME_READERS: &[Action] = &[
    Action::ViewAsPatient,
    Action::ViewBalance,
    Action::ViewItemisedStatement,
    Action::ViewStatementAmounts,
    Action::ViewReceipt,
    Action::SearchPatients,
    Action::InviteGuarantor,
    Action::RevokeGuarantor,
    Action::IssueRefund,
    // A security officer's incident work: whom to notify (`incident notify`).
    Action::RunIncidentConsole,
];

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub support_phone: String,
}

/// A patient as a practice's system hands it to us, before encryption.
#[derive(Clone, Debug)]
pub struct NewPatient {
    pub first_name: Phi<String>,
    pub last_name: Phi<String>,
    /// ISO `YYYY-MM-DD`.
    pub dob: Phi<String>,
    pub zip: Phi<String>,
    pub phone: Phi<String>,
    pub account_number: Phi<String>,
}

#[derive(Clone, Debug)]
pub struct NewLine {
    pub service_date: Phi<String>,
    pub description: Phi<String>,
    pub charge: Money,
    pub insurance_paid: Money,
    pub adjustment: Money,
    pub patient_responsibility: Money,
    /// The practice marks this line confidential: a guarantor sees its amounts, never its
    /// description.
    pub confidential: bool,
}

#[derive(Clone, Debug)]
pub struct NewStatement {
    pub statement_date: String,
    pub due_date: String,
    pub lines: Vec<NewLine>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StatementHeader {
    pub id: StatementId,
    pub tenant_id: TenantId,
    pub patient_id: PatientId,
    pub statement_date: String,
    pub due_date: String,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub service_date: Phi<String>,
    pub description: Phi<String>,
    pub charge: Money,
    pub insurance_paid: Money,
    pub adjustment: Money,
    pub patient_responsibility: Money,
    pub confidential: bool,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentRecord {
    pub id: String,
    /// The account that started the checkout (`None` for pay-link payments).
    pub paid_by: Option<crate::ids::UserId>,
    #[sqlx(rename = "amount_cents")]
    pub amount: Money,
    pub card_brand: String,
    pub card_last4: String,
    pub paid_at: i64,
    /// `processing` (a bank debit settling), `succeeded` or `failed`.
    pub status: String,
}

const PATIENTS: &str = "patients";
const LINES: &str = "statement_lines";

pub(crate) fn patient_aad<'a>(
    tenant: &'a TenantId,
    row: &'a str,
    column: &'static str,
) -> FieldAad<'a> {
    FieldAad {
        tenant,
        table: PATIENTS,
        column,
        row,
    }
}
