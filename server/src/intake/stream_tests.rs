//! Intake tests at scale: 20,000 statements streamed in both formats with the reader taking in
//! only what one statement needs, and fuzzed CSV (arbitrary bytes, near-valid rows).

use super::tests::{CSV_SAMPLE, JSON_SAMPLE, TODAY};
use super::*;
use proptest::prelude::*;
use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

/// A CSV of `n` three-line statements, made as it is read, counting the bytes handed out.
struct LazyCsv {
    n: usize,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    produced: Rc<Cell<u64>>,
}

impl LazyCsv {
    fn new(n: usize, produced: Rc<Cell<u64>>) -> Self {
        let header = CSV_SAMPLE.lines().next().unwrap_or_default();
        LazyCsv {
            n,
            next: 0,
            buf: format!("{header}\n").into_bytes(),
            pos: 0,
            produced,
        }
    }
}

impl Read for LazyCsv {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.next == self.n {
                return Ok(0);
            }
            let i = self.next;
            self.next += 1;
            self.buf.clear();
            self.pos = 0;
            for row in CSV_SAMPLE.lines().skip(1).take(3) {
                let row = row
                    .replace("S-2026-0001", &format!("S-{i}"))
                    .replace("P-1001", &format!("P-{}", i % 997));
                self.buf.extend_from_slice(row.as_bytes());
                self.buf.push(b'\n');
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced.set(self.produced.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn a_large_csv_streams_one_statement_at_a_time() {
    const N: usize = 20_000;
    let produced = Rc::new(Cell::new(0));
    let mut reader = CsvStatements::new(LazyCsv::new(N, produced.clone()), TODAY).expect("header");
    let first = reader.next().expect("one").expect("valid");
    assert_eq!(first.statement.external_id.as_str(), "S-0");
    // The file is about 20 MB; the reader has taken in only what one statement needs (and the
    // csv crate's buffer).
    assert!(
        produced.get() < 256 * 1024,
        "read {} bytes ahead",
        produced.get()
    );
    let mut count = 1;
    for item in reader {
        let s = item.expect("valid");
        assert_eq!(s.lines.len(), 3);
        assert_eq!(s.statement.external_id.as_str(), format!("S-{count}"));
        count += 1;
    }
    assert_eq!(count, N);
    assert!(produced.get() > 10_000_000);
}

/// A JSON document of `n` statements (the sample's first), made as it is read.
struct LazyJson {
    n: usize,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    produced: Rc<Cell<u64>>,
    element: String,
}

impl Read for LazyJson {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            match self.next {
                n if n == self.n => self.buf.extend_from_slice(b"]}\n"),
                n if n > self.n => return Ok(0),
                n => {
                    let sep = if n == 0 {
                        "{\"practice\": \"riverside-fm\", \"statements\": ["
                    } else {
                        ","
                    };
                    self.buf.extend_from_slice(sep.as_bytes());
                    self.buf.extend_from_slice(
                        self.element
                            .replace("S-2026-0001", &format!("S-{n}"))
                            .as_bytes(),
                    );
                }
            }
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced.set(self.produced.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn a_large_json_document_streams_one_statement_at_a_time() {
    const N: usize = 20_000;
    let doc: serde_json::Value = serde_json::from_str(JSON_SAMPLE).expect("sample");
    let produced = Rc::new(Cell::new(0));
    let lazy = LazyJson {
        n: N,
        next: 0,
        buf: vec![],
        pos: 0,
        produced: produced.clone(),
        element: doc["statements"][0].to_string(),
    };
    let mut reader = JsonStatements::new(lazy, TODAY).expect("envelope");
    reader.next().expect("one").expect("valid");
    assert!(
        produced.get() < 64 * 1024,
        "read {} bytes ahead",
        produced.get()
    );
    let mut count = 1;
    for item in reader {
        item.expect("valid");
        count += 1;
    }
    assert_eq!(count, N);
}

fn near_valid_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        4 => "[0-9]{1,8}(\\.[0-9]{0,3})?",
        2 => "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        2 => Just("S-1".to_owned()),
        2 => Just("true".to_owned()),
        1 => "\\+1[0-9]{10}",
        3 => any::<String>(),
        1 => "[\",\n\r ]{0,4}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let header = CSV_SAMPLE.lines().next().unwrap_or_default();
        for input in [bytes.clone(), [header.as_bytes(), b"\n", &bytes].concat()] {
            if let Ok(r) = CsvStatements::new(input.as_slice(), TODAY) {
                let mut ended = false;
                for item in r {
                    prop_assert!(!ended, "an item after a malformed-file error");
                    ended = matches!(item, Err(IntakeError::Malformed(_)));
                }
            }
        }
        if let Ok(r) = JsonStatements::new(bytes.as_slice(), TODAY) {
            for _ in r {}
        }
    }

    #[test]
    fn near_valid_rows_are_accepted_or_rejected(
        rows in proptest::collection::vec(
            proptest::collection::vec(near_valid_value(), 28..36), 1..8)
    ) {
        let base: Vec<String> = CSV_SAMPLE.lines().last().unwrap_or_default().split(',').map(str::to_owned).collect();
        let mut w = ::csv::WriterBuilder::new().flexible(true).from_writer(vec![]);
        w.write_record(CSV_SAMPLE.lines().next().unwrap_or_default().split(',')).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for row in &rows {
            // Most columns from the good row, some replaced, some rows short or long.
            let mixed: Vec<&str> = row.iter().enumerate().map(|(i, v)| {
                if i % 3 == 0 { v.as_str() } else { base.get(i).map_or(v.as_str(), String::as_str) }
            }).collect();
            w.write_record(&mixed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let bytes = w.into_inner().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let r = CsvStatements::new(bytes.as_slice(), TODAY).map_err(|m| TestCaseError::fail(m.to_string()))?;
        for item in r {
            match item {
                Ok(s) => prop_assert!(!s.lines.is_empty() && s.lines.len() <= MAX_LINES),
                Err(IntakeError::Rejected(rej)) => prop_assert!(!rej.problems.is_empty()),
                Err(IntakeError::Malformed(m)) => prop_assert!(false, "malformed: {}", m),
            }
        }
    }
}
