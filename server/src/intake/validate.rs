//! The checks every statement passes, whichever format it came in: each field parsed from its
//! text (exact cents, real dates, E.164 phones…), then the rules across fields (due date, service
//! dates, line and statement arithmetic). Problems are collected, not stopped at, so a rejection
//! lists all of them; reasons never repeat the value (it may be PHI).

use super::json::{GuarantorIn, LineIn, PatientIn, StatementIn};
use super::{
    ExternalId, Field, GuarantorRecord, Language, LineRecord, ParsedStatement, PatientRecord,
    Relationship, StatementRecord,
};
use crate::money::Money;
use crate::phi::Phi;
use time::{Date, Month};

/// Longest first, last, guarantor name, address line or city, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest line description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Longest external id (practice, patient, statement) or account number.
pub const MAX_EXTERNAL_ID_CHARS: usize = 64;
/// Lines per statement: at least one, at most this.
pub const MAX_LINES: usize = 200;
/// Largest amount of any one field: $1,000,000.00.
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000;
const MAX_EMAIL_CHARS: usize = 254;
const MAX_PROCEDURE_CODE_CHARS: usize = 16;

/// A problem before it is placed in the file: `line` is the index of the statement line it is
/// about (none for patient, guarantor and statement fields).
#[derive(Debug)]
pub(crate) struct Bad {
    pub line: Option<usize>,
    pub field: Field,
    pub reason: String,
}

impl Bad {
    pub fn new(line: Option<usize>, field: Field, reason: impl Into<String>) -> Self {
        Bad {
            line,
            field,
            reason: reason.into(),
        }
    }
}

/// Checks one statement as sent. `bad` may already hold problems the reader found (a CSV flag
/// that is not `true`/`false`…): the statement is returned only if, at the end, it holds none.
pub(crate) fn statement(
    practice: &str,
    s: StatementIn,
    today: Date,
    bad: &mut Vec<Bad>,
) -> Option<ParsedStatement> {
    let mut c = Check { bad, line: None };
    let practice = c.take(Field::Practice, external_id(practice).map(ExternalId));
    let patient = patient(&mut c, s.patient, today);
    let guarantor = guarantor(&mut c, s.guarantor);
    let external_id = c.take(
        Field::StatementId,
        external_id(&s.statement.id).map(ExternalId),
    );
    let statement_date = c.take(Field::StatementDate, date(&s.statement.statement_date));
    let due_date = c.take(Field::DueDate, date(&s.statement.due_date));
    if let (Some(sd), Some(dd)) = (statement_date, due_date) {
        if dd < sd {
            c.push(Field::DueDate, "is before the statement date");
        }
    }
    c.take(Field::Currency, currency(&s.statement.currency));
    let total = c.take(Field::StatementTotal, amount(&s.statement.total));
    if s.lines.is_empty() {
        c.push(Field::Lines, "a statement needs at least one line");
    } else if s.lines.len() > MAX_LINES {
        c.push(Field::Lines, format!("more than {MAX_LINES} lines"));
    }
    let dob = patient.as_ref().map(|p| *p.date_of_birth.expose());
    let mut lines = Vec::with_capacity(s.lines.len().min(MAX_LINES));
    for (i, l) in s.lines.into_iter().enumerate().take(MAX_LINES) {
        c.line = Some(i);
        lines.push(line(&mut c, l, statement_date, dob));
    }
    c.line = None;
    let lines: Option<Vec<LineRecord>> = lines.into_iter().collect();
    if let (Some(lines), Some(total)) = (&lines, total) {
        let sum = lines.iter().try_fold(Money::ZERO, |acc, l| {
            acc.checked_add(l.patient_responsibility)
        });
        if sum != Some(total) {
            c.push(
                Field::StatementTotal,
                "is not the sum of the lines' patient responsibility",
            );
        }
    }
    if !c.bad.is_empty() {
        return None;
    }
    Some(ParsedStatement {
        practice: practice?,
        patient: patient?,
        guarantor: guarantor?,
        statement: StatementRecord {
            external_id: external_id?,
            statement_date: statement_date?,
            due_date: due_date?,
            total: total?,
        },
        lines: lines?,
    })
}

struct Check<'a> {
    bad: &'a mut Vec<Bad>,
    line: Option<usize>,
}

impl Check<'_> {
    fn take<T>(&mut self, field: Field, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(reason) => {
                self.push(field, reason);
                None
            }
        }
    }

    fn push(&mut self, field: Field, reason: impl Into<String>) {
        self.bad.push(Bad::new(self.line, field, reason));
    }
}

fn patient(c: &mut Check<'_>, p: PatientIn, today: Date) -> Option<PatientRecord> {
    let patient_id = c.take(Field::PatientId, external_id(&p.id));
    let first_name = c.take(Field::FirstName, text(&p.first_name, MAX_NAME_CHARS));
    let last_name = c.take(Field::LastName, text(&p.last_name, MAX_NAME_CHARS));
    let dob = c.take(Field::DateOfBirth, date(&p.date_of_birth));
    if let Some(d) = dob {
        if d >= today {
            c.push(Field::DateOfBirth, "is not in the past");
        } else if d.year() < 1900 {
            c.push(Field::DateOfBirth, "is before 1900");
        }
    }
    let line1 = c.take(Field::AddressLine1, text(&p.address_line1, MAX_NAME_CHARS));
    let line2 = c.take(
        Field::AddressLine2,
        optional(p.address_line2.as_deref(), |s| text(s, MAX_NAME_CHARS)),
    );
    let city = c.take(Field::City, text(&p.city, MAX_NAME_CHARS));
    let state = c.take(Field::State, state(&p.state));
    let zip = c.take(Field::Zip, zip(&p.zip));
    let phone = c.take(Field::MobilePhone, phone(&p.mobile_phone));
    let email = c.take(Field::Email, optional(p.email.as_deref(), email));
    let account = c.take(Field::AccountNumber, external_id(&p.account_number));
    let language = c.take(Field::PreferredLanguage, language(&p.preferred_language));
    Some(PatientRecord {
        external_id: Phi::new(patient_id?),
        first_name: Phi::new(first_name?),
        last_name: Phi::new(last_name?),
        date_of_birth: Phi::new(dob?),
        address_line1: Phi::new(line1?),
        address_line2: line2?.map(Phi::new),
        city: Phi::new(city?),
        state: state?,
        zip: Phi::new(zip?),
        mobile_phone: Phi::new(phone?),
        email: email?.map(Phi::new),
        account_number: Phi::new(account?),
        preferred_language: language?,
        minor: p.minor,
        confidential: p.confidential,
    })
}

/// `Some(None)` for no guarantor, `None` when the one sent is refused.
fn guarantor(c: &mut Check<'_>, g: Option<GuarantorIn>) -> Option<Option<GuarantorRecord>> {
    let Some(g) = g else { return Some(None) };
    let name = c.take(Field::GuarantorName, text(&g.name, MAX_NAME_CHARS));
    let phone = c.take(Field::GuarantorPhone, phone(&g.phone));
    let relationship = c.take(Field::GuarantorRelationship, relationship(&g.relationship));
    Some(Some(GuarantorRecord {
        name: Phi::new(name?),
        phone: Phi::new(phone?),
        relationship: relationship?,
    }))
}

fn line(
    c: &mut Check<'_>,
    l: LineIn,
    statement_date: Option<Date>,
    dob: Option<Date>,
) -> Option<LineRecord> {
    let service_date = c.take(Field::ServiceDate, date(&l.service_date));
    if let (Some(d), Some(sd)) = (service_date, statement_date) {
        if d > sd {
            c.push(Field::ServiceDate, "is after the statement date");
        }
    }
    if let (Some(d), Some(born)) = (service_date, dob) {
        if d < born {
            c.push(Field::ServiceDate, "is before the patient's date of birth");
        }
    }
    let code = c.take(
        Field::ProcedureCode,
        optional(l.procedure_code.as_deref(), procedure_code),
    );
    let description = c.take(
        Field::Description,
        text(&l.description, MAX_DESCRIPTION_CHARS),
    );
    let charge = c.take(Field::Charge, amount(&l.charge));
    let insurance = c.take(Field::InsurancePaid, amount(&l.insurance_paid));
    let adjustment = c.take(Field::Adjustment, amount(&l.adjustment));
    let patient = c.take(
        Field::PatientResponsibility,
        amount(&l.patient_responsibility),
    );
    if let (Some(ch), Some(ins), Some(adj), Some(pat)) = (charge, insurance, adjustment, patient) {
        // Each is at most $1M, so these never overflow; a negative result is a mismatch too.
        let expected = ch.checked_sub(ins).and_then(|m| m.checked_sub(adj));
        if expected != Some(pat) {
            c.push(
                Field::PatientResponsibility,
                "is not charge minus insurance paid minus adjustment",
            );
        }
    }
    Some(LineRecord {
        service_date: Phi::new(service_date?),
        procedure_code: code?.map(Phi::new),
        description: Phi::new(description?),
        charge: charge?,
        insurance_paid: insurance?,
        adjustment: adjustment?,
        patient_responsibility: patient?,
        confidential: l.confidential,
    })
}

/// An optional field: absent or blank is `None`, anything else must pass `check`.
fn optional(
    raw: Option<&str>,
    check: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<String>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => check(s).map(Some),
    }
}

/// Free text: trimmed, present, at most `max` characters, no control characters.
pub(crate) fn text(raw: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("is required".into());
    }
    if s.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("contains a control character (a line break or tab?)".into());
    }
    Ok(s.to_owned())
}

/// 1 to 64 of `A-Z a-z 0-9 . _ : -`, after trimming.
pub(crate) fn external_id(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("is required".into());
    }
    if s.len() > MAX_EXTERNAL_ID_CHARS {
        return Err(format!("is longer than {MAX_EXTERNAL_ID_CHARS} characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err("may hold only letters, digits and . _ : -".into());
    }
    Ok(s.to_owned())
}

/// `YYYY-MM-DD`, a real calendar date.
pub(crate) fn date(raw: &str) -> Result<Date, String> {
    let b = raw.trim().as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if b.is_empty() {
        return Err("is required".into());
    }
    if !shaped {
        return Err("is not a date as YYYY-MM-DD".into());
    }
    let num =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let month = u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok());
    match (i32::try_from(y), month, u8::try_from(d)) {
        (Ok(y), Some(m), Ok(d)) => {
            Date::from_calendar_date(y, m, d).map_err(|_| "is not a real calendar date".into())
        }
        _ => Err("is not a real calendar date".into()),
    }
}

/// Dollars as a decimal string, exactly: `12`, `12.5`, `12.50`; no sign, `$`, commas or
/// exponent; at most two decimals; at most $1,000,000.00. Never a float.
pub(crate) fn amount(raw: &str) -> Result<Money, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("is required".into());
    }
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err("is not an amount like 12.50 (digits, at most two decimals, no sign)".into());
    }
    if frac.len() > 2 {
        return Err("has more than two decimals".into());
    }
    // Leading zeros are fine, but bound the length before arithmetic.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 7 {
        return Err("is more than 1,000,000.00".into());
    }
    let w: i64 = whole.bytes().fold(0, |n, b| n * 10 + i64::from(b - b'0'));
    let f: i64 = frac.bytes().fold(0, |n, b| n * 10 + i64::from(b - b'0'));
    let cents = w * 100 + if frac.len() == 1 { f * 10 } else { f };
    if cents > MAX_AMOUNT_CENTS {
        return Err("is more than 1,000,000.00".into());
    }
    Ok(Money::from_cents(cents))
}

/// Strict E.164 for the US: `+1`, then ten digits whose area code does not start with 0 or 1.
pub(crate) fn phone(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("is required".into());
    }
    let ok = s.len() == 12
        && s.starts_with("+1")
        && s[2..].bytes().all(|b| b.is_ascii_digit())
        && !matches!(s.as_bytes()[2], b'0' | b'1');
    if !ok {
        return Err("is not a US number in E.164 (+1 and ten digits, e.g. +13125550100)".into());
    }
    Ok(s.to_owned())
}

/// `12345` or `12345-6789`.
pub(crate) fn zip(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    let ok = match b.len() {
        5 => digits(b),
        10 => digits(&b[..5]) && b[5] == b'-' && digits(&b[6..]),
        _ => false,
    };
    if s.is_empty() {
        return Err("is required".into());
    }
    if !ok {
        return Err("is not a ZIP code (12345 or 12345-6789)".into());
    }
    Ok(s.to_owned())
}

/// USPS codes: the states, DC, the territories and the military post codes.
const STATES: [&str; 59] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP", "AA", "AE", "AP",
];

/// A two-letter USPS code, either case (kept upper case).
pub(crate) fn state(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_uppercase();
    if s.is_empty() {
        return Err("is required".into());
    }
    if !STATES.contains(&s.as_str()) {
        return Err("is not a two-letter US state or territory code".into());
    }
    Ok(s)
}

/// The shape of an address, nothing more: `local@domain.tld`, no spaces, at most 254.
pub(crate) fn email(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let ok = s.len() <= MAX_EMAIL_CHARS
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if !ok {
        return Err("is not an email address".into());
    }
    Ok(s.to_owned())
}

fn one_of<T: Copy>(raw: &str, known: &[(&str, T)], what: &str) -> Result<T, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("is required".into());
    }
    known
        .iter()
        .find(|(code, _)| *code == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let codes: Vec<&str> = known.iter().map(|(c, _)| *c).collect();
            format!("is not a known {what} ({})", codes.join(", "))
        })
}

pub(crate) fn language(raw: &str) -> Result<Language, String> {
    one_of(raw, &Language::ALL, "language")
}

pub(crate) fn relationship(raw: &str) -> Result<Relationship, String> {
    one_of(raw, &Relationship::ALL, "relationship")
}

fn currency(raw: &str) -> Result<(), String> {
    match raw.trim() {
        "USD" => Ok(()),
        "" => Err("is required".into()),
        _ => Err("must be USD".into()),
    }
}

/// A CPT/HCPCS code with optional modifiers: up to 16 of `A-Z a-z 0-9 . -`.
fn procedure_code(s: &str) -> Result<String, String> {
    if s.len() > MAX_PROCEDURE_CODE_CHARS
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(format!(
            "is not a procedure code (up to {MAX_PROCEDURE_CODE_CHARS} letters, digits, . or -)"
        ));
    }
    Ok(s.to_owned())
}

/// `true` or `false` (CSV flags; JSON has booleans).
pub(crate) fn flag(raw: &str) -> Result<bool, String> {
    match raw.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        "" => Err("is required (true or false)".into()),
        _ => Err("is not true or false".into()),
    }
}
