//! The staff import report as CSV: one row per problem of each rejected statement (statement,
//! place, field, reason), taken apart from the summary's rejection lines, which the intake
//! words as `statement ID rejected: PLACE, FIELD: REASON; …` (CSV) or
//! `statement ID rejected: statements[i].lines[j].FIELD: REASON; …` (JSON). They hold no value
//! from the file, so neither does the report.

/// A cell, quoted; one a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is prefixed
/// with `'` so it is read as text.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// (place, field, reason) of one problem.
fn problem(p: &str) -> (String, String, String) {
    // CSV: "line 6, charge: reason".
    if let Some(rest) = p.strip_prefix("line ") {
        if let Some((line, rest)) = rest.split_once(", ") {
            if let Some((field, reason)) = rest.split_once(": ") {
                return (format!("line {line}"), field.to_owned(), reason.to_owned());
            }
        }
    }
    // JSON: "statements[1].lines[0].charge: reason" or "statements[1]: reason".
    if p.starts_with("statements[") {
        if let Some((path, reason)) = p.split_once(": ") {
            let (place, field) = match path.rsplit_once('.') {
                Some((place, field)) if !field.ends_with(']') => (place, field),
                _ => (path, ""),
            };
            return (place.to_owned(), field.to_owned(), reason.to_owned());
        }
    }
    (String::new(), String::new(), p.to_owned())
}

/// The report of `rejections` (header first).
pub fn csv(rejections: &[String]) -> String {
    let mut out = String::from("statement,place,field,reason\r\n");
    for r in rejections {
        let (statement, problems) = match r.split_once(" rejected: ") {
            Some((head, rest)) => (head.strip_prefix("statement").unwrap_or(head).trim(), rest),
            None => ("", r.as_str()),
        };
        for p in problems.split("; ") {
            let (place, field, reason) = problem(p);
            let row = [statement, &place, &field, &reason].map(cell).join(",");
            out.push_str(&row);
            out.push_str("\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_rejections_become_rows() {
        let out = csv(&[
            "statement S-1 rejected: line 6, charge: not an amount; line 7, zip: not a ZIP code"
                .into(),
            "statement rejected: statements[2].lines[0].charge: required".into(),
            "statement S-3 rejected: statements[3]: missing key".into(),
            "statement S-4 rejected: re-sent below what was paid".into(),
        ]);
        let rows: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(rows[0], "statement,place,field,reason");
        assert_eq!(rows[1], r#""S-1","line 6","charge","not an amount""#);
        assert_eq!(rows[2], r#""S-1","line 7","zip","not a ZIP code""#);
        assert_eq!(
            rows[3],
            r#""","statements[2].lines[0]","charge","required""#
        );
        assert_eq!(rows[4], r#""S-3","statements[3]","","missing key""#);
        assert_eq!(rows[5], r#""S-4","","","re-sent below what was paid""#);
    }

    #[test]
    fn cells_are_quoted_and_never_formulas() {
        assert_eq!(cell(r#"a "b", c"#), r#""a ""b"", c""#);
        assert_eq!(cell("=1+1"), r#""'=1+1""#);
        assert_eq!(cell("-x"), r#""'-x""#);
    }
}
