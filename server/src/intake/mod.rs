//! Statement intake (issue 12): bytes from a practice's billing system turned into validated
//! records, one statement at a time, from a CSV or a JSON file. Nothing here touches the
//! database; the import writer takes `ParsedStatement`s and maps them onto `billing`.
//!
//! Both readers stream: each yields `Result<ParsedStatement, IntakeError>` and keeps at most one
//! statement (at most `MAX_LINES` lines) in memory. A `Rejected` item names the record, the field
//! and a plain reason, and nothing of that statement is yielded as valid; a `Malformed` item (bad
//! header, broken JSON, a read error) is the last item of the file. The formats are documented in
//! the README ("Statement import formats"); `samples/statements.{csv,json}` are examples.

pub mod csv;
pub mod json;
pub mod run;
pub mod store;
pub mod validate;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

use crate::billing::{NewLine, NewPatient, NewStatement};
use crate::money::Money;
use crate::phi::Phi;
use std::fmt;
use time::Date;

pub use self::csv::CsvStatements;
pub use self::json::JsonStatements;
pub use self::validate::{
    MAX_AMOUNT_CENTS, MAX_DESCRIPTION_CHARS, MAX_EXTERNAL_ID_CHARS, MAX_LINES, MAX_NAME_CHARS,
};

/// A practice's own id for a practice, patient or statement: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
/// Not PHI (a patient's external id is held as `Phi` instead; see `PatientRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalId(String);

impl ExternalId {
    /// Accepts the documented shape only (after trimming surrounding spaces).
    pub fn parse(raw: &str) -> Option<Self> {
        validate::external_id(raw).ok().map(ExternalId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Languages the portal knows a patient may prefer: the interface's own languages, so a
/// patient's preference is always one the pages can be shown in.
pub use patriotpay_app::Lang as Language;

/// How a guarantor is related to the patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relationship {
    Parent,
    LegalGuardian,
    Spouse,
    AdultChild,
    Other,
}

impl Relationship {
    pub const ALL: [(&'static str, Relationship); 5] = [
        ("parent", Relationship::Parent),
        ("legal_guardian", Relationship::LegalGuardian),
        ("spouse", Relationship::Spouse),
        ("adult_child", Relationship::AdultChild),
        ("other", Relationship::Other),
    ];
}

/// One statement that passed every check: its patient, guarantor, header and lines.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedStatement {
    /// The practice the file (or row) names; the writer checks it is the one importing.
    pub practice: ExternalId,
    pub patient: PatientRecord,
    pub guarantor: Option<GuarantorRecord>,
    pub statement: StatementRecord,
    /// 1 to `MAX_LINES` lines, in file order.
    pub lines: Vec<LineRecord>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PatientRecord {
    /// The practice's id for the patient (often the medical record number, so PHI).
    pub external_id: Phi<String>,
    pub first_name: Phi<String>,
    pub last_name: Phi<String>,
    pub date_of_birth: Phi<Date>,
    pub address_line1: Phi<String>,
    pub address_line2: Option<Phi<String>>,
    pub city: Phi<String>,
    /// USPS code, upper case (a state alone identifies no one).
    pub state: String,
    /// `12345` or `12345-6789`.
    pub zip: Phi<String>,
    /// E.164, `+1` and ten digits.
    pub mobile_phone: Phi<String>,
    pub email: Option<Phi<String>>,
    pub account_number: Phi<String>,
    pub preferred_language: Language,
    pub minor: bool,
    /// The practice marks the whole record confidential.
    pub confidential: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GuarantorRecord {
    pub name: Phi<String>,
    /// E.164, `+1` and ten digits.
    pub phone: Phi<String>,
    pub relationship: Relationship,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatementRecord {
    pub external_id: ExternalId,
    pub statement_date: Date,
    /// On or after `statement_date`.
    pub due_date: Date,
    /// The sum of the lines' patient responsibility, as sent and checked (may be zero: a
    /// re-sent statement that insurance paid off). Always US dollars.
    pub total: Money,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LineRecord {
    /// On or before the statement date, on or after the date of birth.
    pub service_date: Phi<Date>,
    /// CPT/HCPCS code as sent, if any (with the patient it says what was done, so PHI).
    pub procedure_code: Option<Phi<String>>,
    pub description: Phi<String>,
    pub charge: Money,
    pub insurance_paid: Money,
    pub adjustment: Money,
    /// `charge − insurance_paid − adjustment`, checked.
    pub patient_responsibility: Money,
    pub confidential: bool,
}

impl ParsedStatement {
    /// The patient as `billing::import_patient` stores it today.
    pub fn billing_patient(&self) -> NewPatient {
        let p = &self.patient;
        NewPatient {
            first_name: p.first_name.clone(),
            last_name: p.last_name.clone(),
            dob: Phi::new(iso(*p.date_of_birth.expose())),
            zip: p.zip.clone(),
            phone: p.mobile_phone.clone(),
            account_number: p.account_number.clone(),
        }
    }

    /// The statement and lines as `billing::import_statement` stores them today.
    pub fn billing_statement(&self) -> NewStatement {
        NewStatement {
            statement_date: iso(self.statement.statement_date),
            due_date: iso(self.statement.due_date),
            lines: self
                .lines
                .iter()
                .map(|l| NewLine {
                    service_date: Phi::new(iso(*l.service_date.expose())),
                    description: l.description.clone(),
                    charge: l.charge,
                    insurance_paid: l.insurance_paid,
                    adjustment: l.adjustment,
                    patient_responsibility: l.patient_responsibility,
                    confidential: l.confidential,
                })
                .collect(),
        }
    }
}

/// `YYYY-MM-DD`: a `Date` always formats with this description, so the fallback never shows.
fn iso(d: Date) -> String {
    d.format(crate::links::ISO_DATE).unwrap_or_default()
}

/// Every field of a statement record: its CSV column and its JSON path (inside one element of
/// `statements`; line fields inside one element of `lines`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Practice,
    PatientId,
    FirstName,
    LastName,
    DateOfBirth,
    AddressLine1,
    AddressLine2,
    City,
    State,
    Zip,
    MobilePhone,
    Email,
    AccountNumber,
    PreferredLanguage,
    Minor,
    Confidential,
    GuarantorName,
    GuarantorPhone,
    GuarantorRelationship,
    StatementId,
    StatementDate,
    DueDate,
    Currency,
    StatementTotal,
    ServiceDate,
    ProcedureCode,
    Description,
    Charge,
    InsurancePaid,
    Adjustment,
    PatientResponsibility,
    LineConfidential,
    /// The lines as a whole (none, too many).
    Lines,
    /// The record as a whole (a CSV row of the wrong width, a JSON element of the wrong shape).
    Record,
}

impl Field {
    /// The CSV columns, in the order the sample file uses (any order is accepted).
    pub const COLUMNS: [Field; 32] = [
        Field::Practice,
        Field::PatientId,
        Field::FirstName,
        Field::LastName,
        Field::DateOfBirth,
        Field::AddressLine1,
        Field::AddressLine2,
        Field::City,
        Field::State,
        Field::Zip,
        Field::MobilePhone,
        Field::Email,
        Field::AccountNumber,
        Field::PreferredLanguage,
        Field::Minor,
        Field::Confidential,
        Field::GuarantorName,
        Field::GuarantorPhone,
        Field::GuarantorRelationship,
        Field::StatementId,
        Field::StatementDate,
        Field::DueDate,
        Field::Currency,
        Field::StatementTotal,
        Field::ServiceDate,
        Field::ProcedureCode,
        Field::Description,
        Field::Charge,
        Field::InsurancePaid,
        Field::Adjustment,
        Field::PatientResponsibility,
        Field::LineConfidential,
    ];

    /// The CSV header name (`Record`, `Lines` and `Guarantor` are no column; they name a row).
    pub fn column(self) -> &'static str {
        self.names().0
    }

    /// Where the field sits in one JSON statement (`patient.first_name`, `lines[].charge` → `charge`).
    pub fn json_path(self) -> &'static str {
        self.names().1
    }

    /// A line-level field (it lives in each row of a CSV statement, in `lines[i]` in JSON).
    pub fn is_line_field(self) -> bool {
        matches!(
            self,
            Field::ServiceDate
                | Field::ProcedureCode
                | Field::Description
                | Field::Charge
                | Field::InsurancePaid
                | Field::Adjustment
                | Field::PatientResponsibility
                | Field::LineConfidential
        )
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Field::Practice => ("practice_id", "practice"),
            Field::PatientId => ("patient_id", "patient.id"),
            Field::FirstName => ("first_name", "patient.first_name"),
            Field::LastName => ("last_name", "patient.last_name"),
            Field::DateOfBirth => ("date_of_birth", "patient.date_of_birth"),
            Field::AddressLine1 => ("address_line1", "patient.address_line1"),
            Field::AddressLine2 => ("address_line2", "patient.address_line2"),
            Field::City => ("city", "patient.city"),
            Field::State => ("state", "patient.state"),
            Field::Zip => ("zip", "patient.zip"),
            Field::MobilePhone => ("mobile_phone", "patient.mobile_phone"),
            Field::Email => ("email", "patient.email"),
            Field::AccountNumber => ("account_number", "patient.account_number"),
            Field::PreferredLanguage => ("preferred_language", "patient.preferred_language"),
            Field::Minor => ("minor", "patient.minor"),
            Field::Confidential => ("confidential", "patient.confidential"),
            Field::GuarantorName => ("guarantor_name", "guarantor.name"),
            Field::GuarantorPhone => ("guarantor_phone", "guarantor.phone"),
            Field::GuarantorRelationship => ("guarantor_relationship", "guarantor.relationship"),
            Field::StatementId => ("statement_id", "statement.id"),
            Field::StatementDate => ("statement_date", "statement.statement_date"),
            Field::DueDate => ("due_date", "statement.due_date"),
            Field::Currency => ("currency", "statement.currency"),
            Field::StatementTotal => ("statement_total", "statement.total"),
            Field::ServiceDate => ("service_date", "service_date"),
            Field::ProcedureCode => ("procedure_code", "procedure_code"),
            Field::Description => ("description", "description"),
            Field::Charge => ("charge", "charge"),
            Field::InsurancePaid => ("insurance_paid", "insurance_paid"),
            Field::Adjustment => ("adjustment", "adjustment"),
            Field::PatientResponsibility => ("patient_responsibility", "patient_responsibility"),
            Field::LineConfidential => ("line_confidential", "confidential"),
            Field::Lines => ("row", "lines"),
            Field::Record => ("row", ""),
        }
    }
}

/// Where in the file a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A CSV line, 1-based, the header being line 1 (a quoted field may span lines: the row's
    /// first line).
    Csv { line: u64 },
    /// A JSON statement (index in `statements`, from 0) and, for a line field, the line (index
    /// in its `lines`, from 0).
    Json {
        statement: usize,
        line: Option<usize>,
    },
}

/// One thing wrong with a statement. The reason never quotes the value (it may be PHI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    pub field: Field,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Location::Csv { line } => {
                write!(f, "line {line}, {}: {}", self.field.column(), self.reason)
            }
            Location::Json { statement, line } => {
                write!(f, "statements[{statement}]")?;
                if let Some(l) = line {
                    write!(f, ".lines[{l}]")?;
                }
                match self.field.json_path() {
                    "" => write!(f, ": {}", self.reason),
                    path => write!(f, ".{path}: {}", self.reason),
                }
            }
        }
    }
}

/// A statement refused: every problem found in it (at most `MAX_PROBLEMS`), and its external id
/// when that much could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub statement_id: Option<ExternalId>,
    pub problems: Vec<Problem>,
}

/// Problems kept per rejected statement; the rest are counted in the last one's place.
pub const MAX_PROBLEMS: usize = 20;

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.statement_id {
            Some(id) => write!(f, "statement {id} rejected: ")?,
            None => f.write_str("statement rejected: ")?,
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The whole file cannot be read on (bad CSV header, broken JSON, a read error, a statement over
/// the size limit). Where known, the reason names the line (and JSON column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed file: {reason}")]
pub struct Malformed {
    pub reason: String,
}

impl Malformed {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Malformed {
            reason: reason.into(),
        }
    }
}

/// What a reader yields instead of a statement.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// This statement is refused; reading goes on with the next.
    #[error("{0}")]
    Rejected(Rejection),
    /// The file cannot be read further; this is the reader's last item.
    #[error("{0}")]
    Malformed(Malformed),
}

/// The two file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Either reader, for a caller that picks the format at run time.
pub enum Statements<R: std::io::Read> {
    Csv(Box<CsvStatements<R>>),
    Json(JsonStatements<R>),
}

/// Opens a statement file in either format. `today` bounds dates of birth (from the caller's
/// clock, so tests can fix it).
pub fn statements<R: std::io::Read>(
    format: Format,
    reader: R,
    today: Date,
) -> Result<Statements<R>, Malformed> {
    Ok(match format {
        Format::Csv => Statements::Csv(Box::new(CsvStatements::new(reader, today)?)),
        Format::Json => Statements::Json(JsonStatements::new(reader, today)?),
    })
}

impl<R: std::io::Read> Iterator for Statements<R> {
    type Item = Result<ParsedStatement, IntakeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Statements::Csv(r) => r.next(),
            Statements::Json(r) => r.next(),
        }
    }
}
