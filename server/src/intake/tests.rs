//! Intake tests: the samples, each rule (table-driven, both formats), malformed files. Streaming
//! and fuzzing are in `stream_tests.rs`.

use super::*;
use crate::intake::validate::{amount, date};
use time::macros::date;

pub(super) const CSV_SAMPLE: &str = include_str!("../../../samples/statements.csv");
pub(super) const JSON_SAMPLE: &str = include_str!("../../../samples/statements.json");
pub(super) const TODAY: Date = date!(2026 - 12 - 01);

fn csv_items(text: &str) -> Vec<Result<ParsedStatement, IntakeError>> {
    match CsvStatements::new(text.as_bytes(), TODAY) {
        Ok(r) => r.collect(),
        Err(m) => vec![Err(IntakeError::Malformed(m))],
    }
}

fn json_items(text: &str) -> Vec<Result<ParsedStatement, IntakeError>> {
    match JsonStatements::new(text.as_bytes(), TODAY) {
        Ok(r) => r.collect(),
        Err(m) => vec![Err(IntakeError::Malformed(m))],
    }
}

fn all_ok(items: Vec<Result<ParsedStatement, IntakeError>>) -> Vec<ParsedStatement> {
    items
        .into_iter()
        .map(|i| match i {
            Ok(s) => s,
            Err(e) => panic!("unexpected: {e}"),
        })
        .collect()
}

fn rejected(item: &Result<ParsedStatement, IntakeError>) -> &Rejection {
    match item {
        Err(IntakeError::Rejected(r)) => r,
        Err(IntakeError::Malformed(m)) => panic!("malformed, not rejected: {m}"),
        Ok(_) => panic!("accepted, expected a rejection"),
    }
}

fn malformed(items: &[Result<ParsedStatement, IntakeError>]) -> &Malformed {
    match items.last() {
        Some(Err(IntakeError::Malformed(m))) => m,
        _ => panic!("expected the last item to be a malformed-file error"),
    }
}

#[test]
fn columns_follow_the_declaration_order() {
    for (i, f) in Field::COLUMNS.iter().enumerate() {
        assert_eq!(*f as usize, i, "{f:?}");
    }
}

#[test]
fn both_samples_parse_to_the_same_records() {
    let from_csv = all_ok(csv_items(CSV_SAMPLE));
    let from_json = all_ok(json_items(JSON_SAMPLE));
    assert_eq!(from_csv.len(), 4);
    assert_eq!(from_csv, from_json);

    let s = &from_csv[1];
    assert_eq!(s.practice.as_str(), "riverside-fm");
    assert_eq!(s.statement.external_id.as_str(), "S-2026-0002");
    assert_eq!(s.statement.total, Money::from_cents(10000));
    assert_eq!(s.patient.date_of_birth.expose(), &date!(2012 - 06 - 21));
    assert_eq!(s.patient.zip.expose(), "60622-1234");
    assert_eq!(s.patient.preferred_language, Language::Es);
    assert!(s.patient.minor);
    assert_eq!(
        s.patient
            .address_line2
            .as_ref()
            .map(|a| a.expose().as_str()),
        Some("Apt 3B")
    );
    assert!(s.patient.email.is_none());
    let g = s.guarantor.as_ref().expect("guarantor");
    assert_eq!(g.relationship, Relationship::Parent);
    assert_eq!(g.phone.expose(), "+13125550104");
    assert_eq!(s.lines.len(), 3);
    assert_eq!(s.lines[0].charge, Money::from_cents(9000));
    assert_eq!(s.lines[0].patient_responsibility, Money::from_cents(7500));
    assert!(s.lines[2].confidential && !s.lines[1].confidential);
    assert_eq!(from_csv[2].lines[0].procedure_code, None);
    assert_eq!(from_csv[3].statement.total, Money::ZERO);

    // Debug never shows PHI.
    let shown = format!("{from_csv:?}");
    for secret in [
        "Riley",
        "Okonkwo",
        "2012",
        "60622",
        "+1312",
        "Sports physical",
        "99393",
        "P-1002",
    ] {
        assert!(!shown.contains(secret), "{secret} in Debug");
    }
}

#[test]
fn either_format_through_one_entry_and_every_column_documented() {
    let csv = statements(Format::Csv, CSV_SAMPLE.as_bytes(), TODAY).expect("csv");
    let json = statements(Format::Json, JSON_SAMPLE.as_bytes(), TODAY).expect("json");
    assert_eq!(all_ok(csv.collect()), all_ok(json.collect()));
    let readme = include_str!("../../../README.md");
    for f in Field::COLUMNS {
        assert!(
            readme.contains(&format!("`{}`", f.column())),
            "{f:?} not in the README"
        );
    }
}

#[test]
fn readers_can_move_to_a_blocking_thread() {
    fn send<T: Send>() {}
    send::<CsvStatements<std::fs::File>>();
    send::<JsonStatements<std::fs::File>>();
    send::<Statements<std::fs::File>>();
}

#[test]
fn records_map_onto_what_billing_stores() {
    let s = &all_ok(csv_items(CSV_SAMPLE))[0];
    let p = s.billing_patient();
    assert_eq!(p.dob.expose(), "1984-03-14");
    assert_eq!(p.phone.expose(), "+13125550101");
    assert_eq!(p.account_number.expose(), "RFM-100231");
    let st = s.billing_statement();
    assert_eq!(
        (st.statement_date.as_str(), st.due_date.as_str()),
        ("2026-11-01", "2026-12-01")
    );
    assert_eq!(st.lines.len(), 3);
    assert_eq!(st.lines[1].service_date.expose(), "2026-09-02");
    assert_eq!(st.lines[1].insurance_paid, Money::from_cents(6200));
}

#[test]
fn amounts_are_exact_cents() {
    for (raw, cents) in [
        ("12", 1200),
        ("12.5", 1250),
        ("12.50", 1250),
        (" 0 ", 0),
        ("0.01", 1),
        ("007.10", 710),
        ("1000000", 100_000_000),
        ("1000000.00", 100_000_000),
    ] {
        assert_eq!(amount(raw), Ok(Money::from_cents(cents)), "{raw}");
    }
    for raw in [
        "",
        "-1",
        "-0.00",
        "+1",
        "1.",
        ".5",
        "1.005",
        "1e2",
        "$1",
        "1,000",
        "1000000.01",
        "99999999999999999999",
        "12 .50",
        "NaN",
        "٣",
    ] {
        assert!(amount(raw).is_err(), "{raw}");
    }
}

#[test]
fn dates_are_real_calendar_dates() {
    assert_eq!(date("2024-02-29"), Ok(date!(2024 - 02 - 29)));
    for raw in [
        "2023-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-1-01",
        "+2026-01-01",
        "20260101",
        "2026/01/01",
    ] {
        assert!(date(raw).is_err(), "{raw}");
    }
}

/// The one-line sample statement (S-2026-0004) with one column replaced.
fn csv_with(field: Field, value: &str) -> String {
    let mut rdr = ::csv::ReaderBuilder::new().from_reader(CSV_SAMPLE.as_bytes());
    let header = rdr.headers().expect("header").clone();
    let mut row = rdr.records().last().expect("rows").expect("row");
    let i = header
        .iter()
        .position(|h| h == field.column())
        .expect("column");
    let mut values: Vec<String> = row.iter().map(str::to_owned).collect();
    values[i] = value.to_owned();
    row = ::csv::StringRecord::from(values);
    let mut w = ::csv::Writer::from_writer(vec![]);
    w.write_record(&header).expect("write");
    w.write_record(&row).expect("write");
    String::from_utf8(w.into_inner().expect("flush")).expect("utf-8")
}

/// Each rule, one bad value at a time: (field, bad value, the field the rejection names).
const BAD_VALUES: &[(Field, &str, Field)] = &[
    (Field::Practice, "riverside fm", Field::Practice),
    (Field::PatientId, " ", Field::PatientId),
    (Field::PatientId, "P/1001", Field::PatientId),
    (Field::FirstName, "", Field::FirstName),
    (Field::LastName, "Quintero\u{7}", Field::LastName),
    (Field::DateOfBirth, "1984-02-30", Field::DateOfBirth),
    (Field::DateOfBirth, "03/14/1984", Field::DateOfBirth),
    (Field::DateOfBirth, "2026-12-01", Field::DateOfBirth),
    (Field::DateOfBirth, "1899-12-31", Field::DateOfBirth),
    (Field::AddressLine1, "", Field::AddressLine1),
    (Field::City, "  ", Field::City),
    (Field::State, "ZZ", Field::State),
    (Field::State, "Illinois", Field::State),
    (Field::Zip, "6061", Field::Zip),
    (Field::Zip, "60614-12", Field::Zip),
    (Field::Zip, "ABCDE", Field::Zip),
    (Field::MobilePhone, "(312) 555-0101", Field::MobilePhone),
    (Field::MobilePhone, "3125550101", Field::MobilePhone),
    (Field::MobilePhone, "+10125550101", Field::MobilePhone),
    (Field::MobilePhone, "+131255501011", Field::MobilePhone),
    (Field::Email, "avery.example.com", Field::Email),
    (Field::Email, "avery@example", Field::Email),
    (Field::Email, "a b@example.com", Field::Email),
    (Field::AccountNumber, "RFM 100231", Field::AccountNumber),
    (Field::PreferredLanguage, "fr", Field::PreferredLanguage),
    (Field::PreferredLanguage, "", Field::PreferredLanguage),
    (Field::Minor, "yes", Field::Minor),
    (Field::Confidential, "", Field::Confidential),
    (
        Field::GuarantorName,
        "Chris Quintero",
        Field::GuarantorPhone,
    ),
    (Field::GuarantorRelationship, "cousin", Field::GuarantorName),
    (Field::StatementId, "S 4", Field::StatementId),
    (Field::StatementDate, "2026-11-31", Field::StatementDate),
    (Field::DueDate, "2026-11-14", Field::DueDate),
    (Field::Currency, "usd", Field::Currency),
    (Field::Currency, "EUR", Field::Currency),
    (Field::StatementTotal, "1.00", Field::StatementTotal),
    (Field::StatementTotal, "", Field::StatementTotal),
    (Field::ServiceDate, "2026-11-16", Field::ServiceDate),
    (Field::ServiceDate, "1984-03-13", Field::ServiceDate),
    (Field::ProcedureCode, "90686 25", Field::ProcedureCode),
    (Field::Description, "", Field::Description),
    (Field::Charge, "-45.00", Field::Charge),
    (Field::Charge, "45.001", Field::Charge),
    (Field::Charge, "4.5e1", Field::Charge),
    (Field::Charge, "$45.00", Field::Charge),
    (Field::Charge, "1000000.01", Field::Charge),
    (Field::Charge, "46.00", Field::PatientResponsibility),
    (Field::InsurancePaid, "44.00", Field::PatientResponsibility),
    (Field::InsurancePaid, "", Field::InsurancePaid),
    (Field::Adjustment, "1", Field::PatientResponsibility),
    (
        Field::PatientResponsibility,
        "0.01",
        Field::PatientResponsibility,
    ),
    (Field::LineConfidential, "TRUE", Field::LineConfidential),
];

#[test]
fn each_bad_value_rejects_its_csv_row() {
    let good = csv_items(&csv_with(Field::Charge, "45.00"));
    assert!(matches!(good.as_slice(), [Ok(_)]), "the base row is good");
    for &(field, value, named) in BAD_VALUES {
        let items = csv_items(&csv_with(field, value));
        assert_eq!(items.len(), 1, "{field:?}={value:?}");
        let r = rejected(&items[0]);
        assert_eq!(
            r.statement_id.as_ref().map(ExternalId::as_str),
            ExternalId::parse(&csv_with_id(field, value))
                .as_ref()
                .map(ExternalId::as_str)
        );
        assert!(
            r.problems
                .iter()
                .any(|p| p.field == named && p.at == Location::Csv { line: 2 }),
            "{field:?}={value:?}: {r}"
        );
        if value.trim().len() >= 4 {
            assert!(
                !r.to_string().contains(value.trim()),
                "{field:?}: value quoted in {r}"
            );
        }
    }
}

fn csv_with_id(field: Field, value: &str) -> String {
    if field == Field::StatementId {
        value.into()
    } else {
        "S-2026-0004".into()
    }
}

#[test]
fn long_values_are_refused() {
    for (field, max) in [
        (Field::FirstName, MAX_NAME_CHARS),
        (Field::AddressLine2, MAX_NAME_CHARS),
        (Field::Description, MAX_DESCRIPTION_CHARS),
        (Field::PatientId, MAX_EXTERNAL_ID_CHARS),
    ] {
        let fill = if field == Field::PatientId { "A" } else { "é" };
        let ok = csv_items(&csv_with(field, &fill.repeat(max)));
        assert!(matches!(ok.as_slice(), [Ok(_)]), "{field:?} at {max}");
        let long = csv_items(&csv_with(field, &"A".repeat(max + 1)));
        let r = rejected(&long[0]);
        assert_eq!(r.problems[0].field, field);
        assert!(r.problems[0].reason.contains("longer than"), "{r}");
    }
}

#[test]
fn each_bad_value_rejects_its_json_statement() {
    let doc: serde_json::Value = serde_json::from_str(JSON_SAMPLE).expect("sample");
    for &(field, value, named) in BAD_VALUES {
        // Guarantor mutations need the other guarantor fields, which the one-line statement lacks
        // in JSON; statement 1 (index) has a guarantor, so use the whole sample and find index 3.
        let mut d = doc.clone();
        let st = &mut d["statements"][3];
        let target = match field {
            Field::Practice => &mut d["practice"],
            f if f.is_line_field() => &mut st["lines"][0][f.json_path()],
            Field::GuarantorName | Field::GuarantorPhone | Field::GuarantorRelationship => {
                st["guarantor"] = serde_json::json!({"name": "", "phone": "", "relationship": ""});
                let key = field.json_path().trim_start_matches("guarantor.");
                st["guarantor"]["name"] = "Chris Quintero".into();
                st["guarantor"]["phone"] = "+13125550105".into();
                st["guarantor"]["relationship"] = "parent".into();
                if field == Field::GuarantorName {
                    st["guarantor"]["phone"] = "".into();
                    st["guarantor"]["relationship"] = "".into();
                } else {
                    st["guarantor"]["name"] = "".into();
                }
                &mut st["guarantor"][key]
            }
            f => {
                let (obj, key) = f.json_path().split_once('.').expect("path");
                &mut st[obj][key]
            }
        };
        *target = match field {
            Field::Minor | Field::Confidential | Field::LineConfidential => {
                serde_json::Value::from(value)
            }
            _ => value.into(),
        };
        let items = json_items(&d.to_string());
        assert_eq!(items.len(), 4, "{field:?}={value:?}");
        assert!(items[..3].iter().all(Result::is_ok) || field == Field::Practice);
        let r = rejected(&items[3]);
        let expect_at = Location::Json {
            statement: 3,
            line: named.is_line_field().then_some(0),
        };
        let flag = matches!(
            field,
            Field::Minor | Field::Confidential | Field::LineConfidential
        );
        assert!(
            r.problems
                .iter()
                .any(|p| (p.field == named && p.at == expect_at)
                    || (flag && p.field == Field::Record)),
            "{field:?}={value:?}: {r}"
        );
    }
}

#[test]
fn json_shape_errors_are_rejections_naming_the_statement() {
    let doc: serde_json::Value = serde_json::from_str(JSON_SAMPLE).expect("sample");
    type Case = (&'static str, fn(&mut serde_json::Value), &'static str);
    let cases: [Case; 5] = [
        (
            "a number amount",
            |s| s["lines"][0]["charge"] = 45.into(),
            "wrong JSON type",
        ),
        (
            "a name as a number",
            |s| s["patient"]["first_name"] = 12345678.into(),
            "wrong JSON type",
        ),
        (
            "an unknown field",
            |s| s["patient"]["nickname"] = "Ave".into(),
            "unknown field `nickname`",
        ),
        (
            "a missing field",
            |s| {
                s["statement"]
                    .as_object_mut()
                    .expect("object")
                    .remove("currency");
            },
            "missing field `currency`",
        ),
        (
            "no lines",
            |s| s["lines"] = serde_json::json!([]),
            "at least one line",
        ),
    ];
    for (what, change, reason) in cases {
        let mut d = doc.clone();
        change(&mut d["statements"][1]);
        let items = json_items(&d.to_string());
        assert_eq!(items.len(), 4, "{what}");
        let r = rejected(&items[1]);
        assert_eq!(
            r.statement_id.as_ref().map(ExternalId::as_str),
            Some("S-2026-0002"),
            "{what}"
        );
        assert!(r.to_string().contains(reason), "{what}: {r}");
        assert!(
            r.to_string()
                .starts_with("statement S-2026-0002 rejected: statements[1]"),
            "{r}"
        );
        assert!(!r.to_string().contains("12345678"), "{r}");
        assert!(
            items[0].is_ok() && items[2].is_ok() && items[3].is_ok(),
            "{what}"
        );
    }
}

#[test]
fn a_line_problem_names_the_line_in_both_formats() {
    let csv = CSV_SAMPLE.replacen("Rapid strep test,42.00", "Rapid strep test,43.00", 1);
    let items = csv_items(&csv);
    assert_eq!(items.len(), 4);
    let r = rejected(&items[1]);
    assert_eq!(r.problems.len(), 1, "{r}");
    assert_eq!(r.problems[0].at, Location::Csv { line: 6 });
    assert_eq!(r.to_string(), "statement S-2026-0002 rejected: line 6, patient_responsibility: is not charge minus insurance paid minus adjustment");
    // Nothing of the rejected statement comes out; its neighbours do.
    assert!(items[0].is_ok() && items[2].is_ok() && items[3].is_ok());

    let json = JSON_SAMPLE.replacen("\"42.00\"", "\"43.00\"", 1);
    let items = json_items(&json);
    let r = rejected(&items[1]);
    assert_eq!(r.to_string(), "statement S-2026-0002 rejected: statements[1].lines[1].patient_responsibility: is not charge minus insurance paid minus adjustment");
}

#[test]
fn repeated_columns_must_agree_within_a_statement() {
    let csv = CSV_SAMPLE.replacen(
        "Riley,Okonkwo-Hart,2012-06-21,200 Sample Street,Apt 3B,Chicago,IL,60622-1234,+13125550102,,RFM-101402,es,true,false,Chris Okonkwo-Hart,+13125550104,parent,S-2026-0002,2026-11-01,2026-12-01,USD,100.00,2026-10-28,87880",
        "Riley,Okonkwo-Hart,2012-06-21,200 Sample Street,Apt 3B,Chicago,IL,60622-1234,+13125550102,,RFM-101402,es,true,false,Chris Okonkwo-Hart,+13125550104,parent,S-2026-0002,2026-11-02,2026-12-01,USD,100.00,2026-10-28,87880",
        1,
    );
    let items = csv_items(&csv);
    let r = rejected(&items[1]);
    assert_eq!(r.problems.len(), 1, "{r}");
    assert_eq!(r.problems[0].field, Field::StatementDate);
    assert_eq!(r.problems[0].at, Location::Csv { line: 6 });
    assert!(r.problems[0].reason.contains("(line 5)"), "{r}");
}

#[test]
fn csv_row_structure_and_practice() {
    let mut lines: Vec<String> = CSV_SAMPLE.lines().map(str::to_owned).collect();
    // A short row in the middle of statement 1 spoils that statement, which is not split.
    lines[2] = "riverside-fm,P-1001".into();
    // Another practice in the file.
    lines[7] = lines[7].replacen("riverside-fm", "other-practice", 1);
    lines[8] = lines[8].replacen("riverside-fm", "other-practice", 1);
    let items = csv_items(&(lines.join("\n") + "\n"));
    assert_eq!(items.len(), 4, "{items:?}");
    let r = rejected(&items[0]);
    assert!(
        r.problems
            .iter()
            .any(|p| p.field == Field::Record && p.at == Location::Csv { line: 3 }),
        "{r}"
    );
    assert!(items[1].is_ok());
    let r = rejected(&items[2]);
    assert!(
        r.problems
            .iter()
            .any(|p| p.field == Field::Practice && p.reason.contains("line 2")),
        "{r}"
    );
    assert!(items[3].is_ok());
}

#[test]
fn too_many_lines_is_one_rejection() {
    let row = CSV_SAMPLE.lines().last().expect("row");
    let mut text = CSV_SAMPLE.lines().next().expect("header").to_owned() + "\n";
    for _ in 0..(MAX_LINES + 50) {
        text.push_str(row);
        text.push('\n');
    }
    let items = csv_items(&text);
    assert_eq!(items.len(), 1);
    let r = rejected(&items[0]);
    assert!(r.problems.iter().any(|p| p.field == Field::Lines), "{r}");
    assert!(r.problems.len() <= MAX_PROBLEMS);
}

#[test]
fn malformed_files_are_one_error() {
    let header = CSV_SAMPLE.lines().next().expect("header");
    for (text, says) in [
        ("", "no header"),
        ("\n", "no header"),
        (
            &header.replace("zip", "postcode") as &str,
            "unknown column \"postcode\"",
        ),
        (&header.replace(",zip", "") as &str, "missing columns: zip"),
        (&format!("{header},zip") as &str, "\"zip\" appears twice"),
    ] {
        let items = csv_items(text);
        assert_eq!(items.len(), 1);
        assert!(
            malformed(&items).reason.contains(says),
            "{}",
            malformed(&items)
        );
    }
    // Columns in another order, and a byte-order mark, are fine.
    let mut rdr = ::csv::Reader::from_reader(CSV_SAMPLE.as_bytes());
    let mut w = ::csv::Writer::from_writer(vec![]);
    let h = rdr.headers().expect("h").clone();
    w.write_record(h.iter().rev()).expect("w");
    for r in rdr.records() {
        w.write_record(r.expect("r").iter().rev()).expect("w");
    }
    let reversed = String::from_utf8(w.into_inner().expect("w")).expect("utf-8");
    assert_eq!(
        all_ok(csv_items(&format!("\u{feff}{reversed}"))),
        all_ok(csv_items(CSV_SAMPLE))
    );

    let cut = &JSON_SAMPLE[..JSON_SAMPLE.find("S-2026-0002").expect("id")];
    for (text, says, good_before) in [
        ("", "must be a JSON object", 0),
        ("[]", "must be a JSON object", 0),
        (
            r#"{"statements": [], "practice": "x"}"#,
            "must come before",
            0,
        ),
        (
            r#"{"practice": 7, "statements": []}"#,
            "must be a string",
            0,
        ),
        (r#"{"practice": "x", "extra": 1}"#, "unexpected key", 0),
        (
            r#"{"practice": "x", "statements": {}}"#,
            "must be an array",
            0,
        ),
        (
            r#"{"practice": "x", "statements": [7]}"#,
            "is not a JSON object",
            0,
        ),
        (
            r#"{"practice": "x", "statements": []} x"#,
            "after the end",
            0,
        ),
        (r#"{"practice": "x", "statements": []"#, "ends early", 0),
        (cut, "statements[1] is not valid JSON", 1),
    ] {
        let items = json_items(text);
        assert_eq!(items.len(), good_before + 1, "{text}");
        assert!(items[..good_before].iter().all(Result::is_ok));
        assert!(
            malformed(&items).reason.contains(says),
            "{text}: {}",
            malformed(&items)
        );
    }
    let empty = json_items(r#" {"practice":"x","statements":[ ]} "#);
    assert!(empty.is_empty());
}

#[test]
fn an_endless_csv_row_stops_the_file() {
    let row = CSV_SAMPLE.lines().last().expect("row");
    let long = row.replacen(
        "Flu vaccine",
        &"x".repeat(2 * csv::MAX_ROW_BYTES as usize),
        1,
    );
    let text = format!("{CSV_SAMPLE}{long}\n{row}\n");
    let items = csv_items(&text);
    // The long row joins the last statement, which is never yielded.
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(
        malformed(&items).reason.contains("longer than"),
        "{}",
        malformed(&items)
    );
}

#[test]
fn an_oversized_json_statement_stops_the_file() {
    let huge = "x".repeat(json::MAX_STATEMENT_BYTES as usize);
    let text = JSON_SAMPLE.replacen("\"Avery\"", &format!("\"{huge}\""), 1);
    let items = json_items(&text);
    assert_eq!(items.len(), 1);
    assert!(malformed(&items).reason.contains("larger than"));
}
