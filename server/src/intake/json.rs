//! The JSON format: the document's types (plain serde structs, ready for an OpenAPI schema) and
//! a streaming reader over `{"practice": "...", "statements": [ ... ]}`.
//!
//! The reader walks the envelope itself and hands each element of `statements` to serde_json
//! separately, so only one statement is ever in memory and a statement of the wrong shape is one
//! rejection, not the end of the file. (A `DeserializeSeed` over the sequence would push elements
//! into a callback; pulling them lets both formats share one iterator interface without a
//! thread.) `practice` must come before `statements`, so each statement knows its practice when
//! it is yielded.

use super::validate::{self, Bad};
use super::{Field, IntakeError, Location, Malformed, ParsedStatement, Problem, Rejection};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use time::Date;
use utoipa::ToSchema;

/// A whole import document, as the API takes a batch. Files are read with `JsonStatements`,
/// which never holds the whole array.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "A batch of statements for one practice (the API takes up to 1,000).")]
pub struct ImportDocument {
    /// The practice's external id (same rules as every external id).
    pub practice: String,
    /// The statements, in any number (the API bounds a batch).
    pub statements: Vec<StatementIn>,
}

/// One element of `statements`, as sent. No `Debug`: it holds PHI in plain strings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(description = "One statement: its patient, guarantor, header and lines.")]
pub struct StatementIn {
    pub patient: PatientIn,
    /// The person who pays, if not the patient; `null` or absent for none.
    #[serde(default)]
    pub guarantor: Option<GuarantorIn>,
    pub statement: StatementHeaderIn,
    /// 1 to 200 lines.
    pub lines: Vec<LineIn>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientIn {
    /// The practice's id for the patient: 1–64 of `A-Z a-z 0-9 . _ : -`.
    pub id: String,
    /// 1–100 characters.
    pub first_name: String,
    /// 1–100 characters.
    pub last_name: String,
    /// `YYYY-MM-DD`, in the past, not before 1900.
    pub date_of_birth: String,
    /// 1–100 characters.
    pub address_line1: String,
    /// Up to 100 characters; `null`, absent or blank for none.
    #[serde(default)]
    pub address_line2: Option<String>,
    /// 1–100 characters.
    pub city: String,
    /// Two-letter USPS code.
    pub state: String,
    /// `12345` or `12345-6789`.
    pub zip: String,
    /// E.164: `+1` and ten digits.
    pub mobile_phone: String,
    /// Optional; `null`, absent or blank for none.
    #[serde(default)]
    pub email: Option<String>,
    /// The account number on the practice's paper statement: same rules as an external id.
    pub account_number: String,
    /// `en` or `es`.
    pub preferred_language: String,
    /// The patient is a minor.
    pub minor: bool,
    /// The practice marks the patient's record confidential.
    pub confidential: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuarantorIn {
    /// Full name, 1–100 characters.
    pub name: String,
    /// E.164: `+1` and ten digits.
    pub phone: String,
    /// `parent`, `legal_guardian`, `spouse`, `adult_child` or `other`.
    pub relationship: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementHeaderIn {
    /// The practice's id for the statement (re-sending it updates it).
    pub id: String,
    /// `YYYY-MM-DD`.
    pub statement_date: String,
    /// `YYYY-MM-DD`, on or after the statement date.
    pub due_date: String,
    /// Always `USD`.
    pub currency: String,
    /// Dollars as a string (`"75.50"`): the sum of the lines' patient responsibility.
    pub total: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    /// `YYYY-MM-DD`, not after the statement date.
    pub service_date: String,
    /// CPT/HCPCS code, optional.
    #[serde(default)]
    pub procedure_code: Option<String>,
    /// Plain words, 1–200 characters.
    pub description: String,
    /// Dollars as a string: `"185"`, `"185.5"`, `"185.50"`; 0 to 1,000,000.00.
    pub charge: String,
    /// Dollars as a string.
    pub insurance_paid: String,
    /// Dollars as a string.
    pub adjustment: String,
    /// Dollars as a string: exactly charge − insurance paid − adjustment.
    pub patient_responsibility: String,
    /// The practice marks this line confidential (a guarantor never sees its description).
    pub confidential: bool,
}

/// Largest single statement element read, in bytes (200 full lines fit several times over);
/// beyond it the file is malformed, so a hostile element cannot grow memory.
pub const MAX_STATEMENT_BYTES: u64 = 1024 * 1024;

enum State {
    First,
    Next,
    Done,
}

/// Statements from a JSON document, one at a time.
pub struct JsonStatements<R: Read> {
    input: BufReader<R>,
    practice: String,
    today: Date,
    index: usize,
    state: State,
}

impl<R: Read> JsonStatements<R> {
    /// Reads the envelope up to the first statement: `{`, `"practice": "..."`, `"statements": [`.
    pub fn new(reader: R, today: Date) -> Result<Self, Malformed> {
        let mut input = BufReader::new(reader);
        skip_bom(&mut input)?;
        expect(&mut input, b'{', "the document must be a JSON object")?;
        let mut practice = None;
        loop {
            if peek_ws(&mut input)? != Some(b'"') {
                return Err(Malformed::new(
                    "expected \"practice\" and then \"statements\" in the document",
                ));
            }
            let key = string(&mut input)?;
            expect(&mut input, b':', "expected : after a key")?;
            match key.as_str() {
                "practice" if practice.is_none() => {
                    if peek_ws(&mut input)? != Some(b'"') {
                        return Err(Malformed::new("\"practice\" must be a string"));
                    }
                    practice = Some(string(&mut input)?);
                    expect(
                        &mut input,
                        b',',
                        "expected \"statements\" after \"practice\"",
                    )?;
                }
                "statements" => {
                    let Some(practice) = practice else {
                        return Err(Malformed::new(
                            "\"practice\" must come before \"statements\"",
                        ));
                    };
                    expect(&mut input, b'[', "\"statements\" must be an array")?;
                    return Ok(JsonStatements {
                        input,
                        practice,
                        today,
                        index: 0,
                        state: State::First,
                    });
                }
                _ => {
                    return Err(Malformed::new(format!(
                    "unexpected key in the document (only \"practice\" then \"statements\"): {}",
                    truncate(&key)
                )))
                }
            }
        }
    }

    fn element(&mut self) -> Result<ParsedStatement, IntakeError> {
        let i = self.index;
        self.index += 1;
        if peek_ws(&mut self.input).map_err(IntakeError::Malformed)? != Some(b'{') {
            return Err(IntakeError::Malformed(Malformed::new(format!(
                "statements[{i}] is not a JSON object"
            ))));
        }
        let mut limited = (&mut self.input).take(MAX_STATEMENT_BYTES);
        let mut de = serde_json::Deserializer::from_reader(&mut limited);
        let value = match serde_json::Value::deserialize(&mut de) {
            Ok(v) => v,
            Err(_) if limited.limit() == 0 => {
                return Err(IntakeError::Malformed(Malformed::new(format!(
                    "statements[{i}] is larger than {MAX_STATEMENT_BYTES} bytes"
                ))))
            }
            Err(e) => {
                return Err(IntakeError::Malformed(Malformed::new(format!(
                "statements[{i}] is not valid JSON: {e} (counted from the start of that statement)"
            ))))
            }
        };
        let statement_id = value
            .pointer("/statement/id")
            .and_then(|v| v.as_str())
            .and_then(super::ExternalId::parse);
        let at = |line| Location::Json { statement: i, line };
        let sent = match StatementIn::deserialize(value) {
            Ok(s) => s,
            Err(e) => {
                return Err(IntakeError::Rejected(Rejection {
                    statement_id,
                    problems: vec![Problem {
                        at: at(None),
                        field: Field::Record,
                        reason: shape_reason(&e.to_string()),
                    }],
                }))
            }
        };
        let mut bad = Vec::new();
        match validate::statement(&self.practice, sent, self.today, &mut bad) {
            Some(parsed) => Ok(parsed),
            None => Err(IntakeError::Rejected(rejection(statement_id, bad, at))),
        }
    }

    /// After `]`: only `}` and white space may follow.
    fn finish(&mut self) -> Option<Result<ParsedStatement, IntakeError>> {
        let end = expect(&mut self.input, b'}', "expected } after the statements").and_then(|()| {
            match peek_ws(&mut self.input)? {
                None => Ok(()),
                Some(_) => Err(Malformed::new("text after the end of the document")),
            }
        });
        end.err().map(|m| Err(IntakeError::Malformed(m)))
    }
}

impl<R: Read> Iterator for JsonStatements<R> {
    type Item = Result<ParsedStatement, IntakeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let step = match self.state {
            State::Done => return None,
            State::First => match peek_ws(&mut self.input) {
                Ok(Some(b']')) => Ok(false),
                Ok(_) => Ok(true),
                Err(m) => Err(m),
            },
            State::Next => match peek_ws(&mut self.input) {
                Ok(Some(b']')) => Ok(false),
                Ok(Some(b',')) => {
                    self.input.consume(1);
                    Ok(true)
                }
                Ok(_) => Err(Malformed::new(format!(
                    "expected , or ] after statements[{}]",
                    self.index.saturating_sub(1)
                ))),
                Err(m) => Err(m),
            },
        };
        match step {
            Ok(true) => {
                let item = self.element();
                self.state = match item {
                    Err(IntakeError::Malformed(_)) => State::Done,
                    _ => State::Next,
                };
                Some(item)
            }
            Ok(false) => {
                self.input.consume(1);
                self.state = State::Done;
                self.finish()
            }
            Err(m) => {
                self.state = State::Done;
                Some(Err(IntakeError::Malformed(m)))
            }
        }
    }
}

/// Places the validator's problems in the file (at most `MAX_PROBLEMS`).
pub(crate) fn rejection(
    statement_id: Option<super::ExternalId>,
    bad: Vec<Bad>,
    at: impl Fn(Option<usize>) -> Location,
) -> Rejection {
    let more = bad.len().saturating_sub(super::MAX_PROBLEMS);
    let mut problems: Vec<Problem> = bad
        .into_iter()
        .take(super::MAX_PROBLEMS)
        .map(|b| Problem {
            at: at(b.line),
            field: b.field,
            reason: b.reason,
        })
        .collect();
    if more > 0 {
        if let Some(last) = problems.last_mut() {
            last.reason = format!("{} (and {more} more problems)", last.reason);
        }
    }
    Rejection {
        statement_id,
        problems,
    }
}

/// serde's words for a statement of the wrong shape, without the value it quotes for a wrong
/// type (it may be PHI): missing and unknown field names are kept.
fn shape_reason(msg: &str) -> String {
    if msg.starts_with("missing field") || msg.starts_with("unknown field") {
        let short = msg.split(", expected").next().unwrap_or(msg);
        return truncate(short);
    }
    match msg.rsplit_once(", expected ") {
        Some((_, expected)) => truncate(&format!("a field has the wrong JSON type (expected {expected}; amounts and dates are strings, flags true or false)")),
        None => "the statement is not shaped as documented".into(),
    }
}

fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(160).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

fn skip_bom<R: Read>(input: &mut BufReader<R>) -> Result<(), Malformed> {
    let buf = input.fill_buf().map_err(read_error)?;
    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
        input.consume(3);
    }
    Ok(())
}

/// The next byte that is not JSON white space, left unread; `None` at the end.
fn peek_ws<R: Read>(input: &mut BufReader<R>) -> Result<Option<u8>, Malformed> {
    loop {
        let buf = input.fill_buf().map_err(read_error)?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            input.consume(1);
        } else {
            return Ok(Some(b));
        }
    }
}

fn expect<R: Read>(input: &mut BufReader<R>, want: u8, why: &str) -> Result<(), Malformed> {
    match peek_ws(input)? {
        Some(b) if b == want => {
            input.consume(1);
            Ok(())
        }
        None => Err(Malformed::new(format!("{why} (the file ends early)"))),
        Some(_) => Err(Malformed::new(why)),
    }
}

/// A JSON string at the cursor (already seen to start with `"`). serde_json reads exactly up
/// to its closing quote, so the cursor stays right after it.
fn string<R: Read>(input: &mut BufReader<R>) -> Result<String, Malformed> {
    let mut limited = input.take(64 * 1024);
    let mut de = serde_json::Deserializer::from_reader(&mut limited);
    String::deserialize(&mut de)
        .map_err(|e| Malformed::new(format!("a key or value is not a valid JSON string: {e}")))
}

fn read_error(e: std::io::Error) -> Malformed {
    Malformed::new(format!("the file could not be read: {e}"))
}
