//! The CSV format: a header row naming the columns (`Field::COLUMNS`, any order, each once), then
//! one row per statement line with the practice, patient, guarantor and statement columns
//! repeated on every row of a statement. The rows of a statement are consecutive; a new
//! `statement_id` starts the next statement. Only the statement being grouped is in memory.

use super::json::{GuarantorIn, LineIn, PatientIn, StatementHeaderIn, StatementIn};
use super::validate::{self, Bad, MAX_LINES};
use super::{ExternalId, Field, IntakeError, Location, Malformed, ParsedStatement, Problem};
use csv::ByteRecord;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use time::Date;

/// Longest row read, in bytes (32 columns at their longest are well under half of it); a longer
/// one makes the file malformed, so one endless field cannot grow memory.
pub const MAX_ROW_BYTES: u64 = 64 * 1024;

/// The input, refusing to hand out more than `MAX_ROW_BYTES` (plus the csv crate's read-ahead)
/// between two rows; the reader resets `since_row` after each row.
pub struct Bounded<R> {
    inner: R,
    since_row: Arc<AtomicU64>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.since_row.load(Ordering::Relaxed) > MAX_ROW_BYTES {
            return Err(std::io::Error::other(format!(
                "a row is longer than {MAX_ROW_BYTES} bytes"
            )));
        }
        let n = self.inner.read(buf)?;
        self.since_row.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

const WIDTH: usize = Field::COLUMNS.len();

/// One row, its values in `Field::COLUMNS` order.
struct Row {
    line: u64,
    values: Vec<String>,
    problems: Vec<(Field, String)>,
}

impl Row {
    fn get(&self, f: Field) -> &str {
        // `Field::COLUMNS` lists the column fields in declaration order (a test checks).
        self.values.get(f as usize).map_or("", String::as_str)
    }

    fn id(&self) -> &str {
        self.get(Field::StatementId).trim()
    }
}

/// The rows of the statement being read.
struct Group {
    first: Row,
    /// Each kept row's CSV line, for placing problems (`Bad::line` indexes it).
    lines: Vec<u64>,
    sent: Vec<LineIn>,
    bad: Vec<Bad>,
}

/// Statements from a CSV file, one at a time.
pub struct CsvStatements<R: Read> {
    rows: csv::Reader<Bounded<R>>,
    since_row: Arc<AtomicU64>,
    /// Where each of `Field::COLUMNS` is in a record.
    index: [usize; WIDTH],
    today: Date,
    record: ByteRecord,
    pending: Option<Row>,
    /// The practice the file's first statement names; every statement must name the same.
    practice: Option<(String, u64)>,
    done: bool,
}

impl<R: Read> CsvStatements<R> {
    /// Reads and checks the header row.
    pub fn new(reader: R, today: Date) -> Result<Self, Malformed> {
        let since_row = Arc::new(AtomicU64::new(0));
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(Bounded {
                inner: reader,
                since_row: since_row.clone(),
            });
        let header = rows
            .byte_headers()
            .map_err(|e| Malformed::new(format!("line 1: the header could not be read: {e}")))?
            .clone();
        let index = header_index(&header)?;
        Ok(CsvStatements {
            rows,
            since_row,
            index,
            today,
            record: ByteRecord::new(),
            pending: None,
            practice: None,
            done: false,
        })
    }

    fn read_row(&mut self) -> Result<Option<Row>, Malformed> {
        match self.rows.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => self.since_row.store(0, Ordering::Relaxed),
            Err(e) => return Err(Malformed::new(format!("the file could not be read: {e}"))),
        }
        let line = self.record.position().map_or(0, |p| p.line());
        let mut problems = Vec::new();
        if self.record.len() != WIDTH {
            problems.push((
                Field::Record,
                format!("has {} fields; the header has {WIDTH}", self.record.len()),
            ));
        }
        let values = Field::COLUMNS
            .iter()
            .zip(self.index)
            .map(|(&field, i)| match self.record.get(i) {
                None => String::new(),
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(s) => s.to_owned(),
                    Err(_) => {
                        problems.push((field, "is not UTF-8 text".into()));
                        String::new()
                    }
                },
            })
            .collect();
        Ok(Some(Row {
            line,
            values,
            problems,
        }))
    }

    fn add(&mut self, g: &mut Group, row: Row) {
        let k = g.lines.len();
        if k > MAX_LINES {
            // One line too many is kept, so the statement is refused for its length; the rest
            // are read past, holding nothing.
            return;
        }
        let row_bad = |field, reason| Bad::new(Some(k), field, reason);
        for (field, reason) in &row.problems {
            g.bad.push(row_bad(*field, reason.clone()));
        }
        if k > 0 {
            for &field in Field::COLUMNS.iter().filter(|f| !f.is_line_field()) {
                if row.get(field).trim() != g.first.get(field).trim() {
                    g.bad.push(row_bad(
                        field,
                        format!(
                            "differs from the first row of this statement (line {})",
                            g.first.line
                        ),
                    ));
                }
            }
        }
        let confidential = match validate::flag(row.get(Field::LineConfidential)) {
            Ok(b) => b,
            Err(reason) => {
                g.bad.push(row_bad(Field::LineConfidential, reason));
                false
            }
        };
        let opt = |f| Some(row.get(f).to_owned()).filter(|s| !s.trim().is_empty());
        g.sent.push(LineIn {
            service_date: row.get(Field::ServiceDate).to_owned(),
            procedure_code: opt(Field::ProcedureCode),
            description: row.get(Field::Description).to_owned(),
            charge: row.get(Field::Charge).to_owned(),
            insurance_paid: row.get(Field::InsurancePaid).to_owned(),
            adjustment: row.get(Field::Adjustment).to_owned(),
            patient_responsibility: row.get(Field::PatientResponsibility).to_owned(),
            confidential,
        });
        g.lines.push(row.line);
    }

    /// The grouped rows checked as one statement.
    fn finish(&mut self, mut g: Group) -> Result<ParsedStatement, IntakeError> {
        let first = &g.first;
        let flag = |bad: &mut Vec<Bad>, f| match validate::flag(first.get(f)) {
            Ok(b) => b,
            Err(reason) => {
                bad.push(Bad::new(None, f, reason));
                false
            }
        };
        let minor = flag(&mut g.bad, Field::Minor);
        let confidential = flag(&mut g.bad, Field::Confidential);
        let practice = first.get(Field::Practice).trim().to_owned();
        match &self.practice {
            Some((p, line)) if *p != practice => g.bad.push(Bad::new(
                None,
                Field::Practice,
                format!("differs from the practice of the file's first statement (line {line})"),
            )),
            Some(_) => {}
            None => {
                if validate::external_id(&practice).is_ok() {
                    self.practice = Some((practice.clone(), first.line));
                }
            }
        }
        let opt = |f| Some(first.get(f).to_owned()).filter(|s| !s.trim().is_empty());
        let guarantor = [
            Field::GuarantorName,
            Field::GuarantorPhone,
            Field::GuarantorRelationship,
        ]
        .iter()
        .any(|&f| !first.get(f).trim().is_empty())
        .then(|| GuarantorIn {
            name: first.get(Field::GuarantorName).to_owned(),
            phone: first.get(Field::GuarantorPhone).to_owned(),
            relationship: first.get(Field::GuarantorRelationship).to_owned(),
        });
        let sent = StatementIn {
            patient: PatientIn {
                id: first.get(Field::PatientId).to_owned(),
                first_name: first.get(Field::FirstName).to_owned(),
                last_name: first.get(Field::LastName).to_owned(),
                date_of_birth: first.get(Field::DateOfBirth).to_owned(),
                address_line1: first.get(Field::AddressLine1).to_owned(),
                address_line2: opt(Field::AddressLine2),
                city: first.get(Field::City).to_owned(),
                state: first.get(Field::State).to_owned(),
                zip: first.get(Field::Zip).to_owned(),
                mobile_phone: first.get(Field::MobilePhone).to_owned(),
                email: opt(Field::Email),
                account_number: first.get(Field::AccountNumber).to_owned(),
                preferred_language: first.get(Field::PreferredLanguage).to_owned(),
                minor,
                confidential,
            },
            guarantor,
            statement: StatementHeaderIn {
                id: first.get(Field::StatementId).to_owned(),
                statement_date: first.get(Field::StatementDate).to_owned(),
                due_date: first.get(Field::DueDate).to_owned(),
                currency: first.get(Field::Currency).to_owned(),
                total: first.get(Field::StatementTotal).to_owned(),
            },
            lines: std::mem::take(&mut g.sent),
        };
        let statement_id = ExternalId::parse(first.id());
        let mut bad = std::mem::take(&mut g.bad);
        let parsed = validate::statement(&practice, sent, self.today, &mut bad);
        match parsed {
            Some(p) => Ok(p),
            None => {
                let first_line = g.first.line;
                let lines = g.lines;
                let at = |k: Option<usize>| Location::Csv {
                    line: k.and_then(|k| lines.get(k).copied()).unwrap_or(first_line),
                };
                let mut r = super::json::rejection(statement_id, bad, at);
                // Rows in file order, then by column, reads best in a report.
                r.problems.sort_by_key(|p: &Problem| match p.at {
                    Location::Csv { line } => line,
                    Location::Json { .. } => 0,
                });
                Err(IntakeError::Rejected(r))
            }
        }
    }
}

impl<R: Read> Iterator for CsvStatements<R> {
    type Item = Result<ParsedStatement, IntakeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match self.pending.take() {
            Some(row) => Ok(Some(row)),
            None => self.read_row(),
        };
        let first = match next {
            Ok(Some(row)) => row,
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(m) => {
                self.done = true;
                return Some(Err(IntakeError::Malformed(m)));
            }
        };
        let mut group = Group {
            lines: Vec::new(),
            sent: Vec::new(),
            bad: Vec::new(),
            first: Row {
                line: first.line,
                values: first.values.clone(),
                problems: Vec::new(),
            },
        };
        self.add(&mut group, first);
        loop {
            match self.read_row() {
                Ok(None) => break,
                // A row without a statement id cannot start a statement of its own: it joins
                // (and so spoils) the one being read, which is never split around it.
                Ok(Some(row)) if row.id() == group.first.id() || row.id().is_empty() => {
                    self.add(&mut group, row)
                }
                Ok(Some(row)) => {
                    self.pending = Some(row);
                    break;
                }
                Err(m) => {
                    // The statement being read may be cut short: none of it is yielded.
                    self.done = true;
                    return Some(Err(IntakeError::Malformed(m)));
                }
            }
        }
        Some(self.finish(group))
    }
}

/// Where each column is; every column must be there, once, and no other.
fn header_index(header: &ByteRecord) -> Result<[usize; WIDTH], Malformed> {
    if header.is_empty() || (header.len() == 1 && header.get(0).is_some_and(<[u8]>::is_empty)) {
        return Err(Malformed::new("line 1: the file has no header row"));
    }
    let mut index = [usize::MAX; WIDTH];
    for (i, raw) in header.iter().enumerate() {
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let name = String::from_utf8_lossy(raw);
        let name = name.trim();
        let Some(k) = Field::COLUMNS.iter().position(|f| f.column() == name) else {
            let shown: String = name.chars().take(64).collect();
            return Err(Malformed::new(format!(
                "line 1: unknown column \"{shown}\" (the columns are listed in the README)"
            )));
        };
        if index[k] != usize::MAX {
            return Err(Malformed::new(format!(
                "line 1: column \"{name}\" appears twice"
            )));
        }
        index[k] = i;
    }
    let missing: Vec<&str> = Field::COLUMNS
        .iter()
        .zip(index)
        .filter(|(_, i)| *i == usize::MAX)
        .map(|(f, _)| f.column())
        .collect();
    if !missing.is_empty() {
        return Err(Malformed::new(format!(
            "line 1: missing columns: {}",
            missing.join(", ")
        )));
    }
    Ok(index)
}
