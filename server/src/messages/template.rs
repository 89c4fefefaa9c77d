//! Practice-authored SMS templates: validation, rendering and GSM 03.38 segment counting.
//!
//! Templates use `{name}` placeholders from [`ALLOWED`]. There is no brace escaping: a
//! literal `{` or `}` in a template is an error (they are also GSM extension characters that
//! cost two septets, so nobody should need them in a payment text).

/// Placeholders a practice may use.
pub const ALLOWED: &[&str] = &["practice", "link", "opt_out", "help", "verify_url"];

/// Practice name substituted by [`check`] to size the message (25 characters, GSM-7).
pub const SAMPLE_PRACTICE: &str = "Riverside Family Medicine";
/// `{opt_out}` text substituted by [`check`].
pub const SAMPLE_OPT_OUT: &str = "Reply STOP to opt out.";
/// `{help}` text substituted by [`check`].
pub const SAMPLE_HELP: &str = "Reply HELP for help.";
/// Twilio refuses message bodies longer than this many characters (error 21617).
pub const MAX_BODY_CHARS: usize = 1600;

/// Words that, as a part of a placeholder name, point at patient health or financial data.
const PHI_WORDS: &[&str] = &[
    "name",
    "firstname",
    "lastname",
    "fullname",
    "patient",
    "dob",
    "birth",
    "birthday",
    "birthdate",
    "dateofbirth",
    "age",
    "amount",
    "balance",
    "total",
    "due",
    "owed",
    "paid",
    "charge",
    "charges",
    "account",
    "mrn",
    "ssn",
    "service",
    "procedure",
    "diagnosis",
    "dx",
    "icd",
    "cpt",
    "description",
    "insurance",
    "insurer",
    "policy",
    "member",
    "provider",
    "doctor",
    "physician",
    "appointment",
    "visit",
    "address",
    "phone",
    "email",
];

/// Public link shorteners. Carriers filter messages containing them, and they hide where a
/// payment link goes, which is exactly what phishing looks like.
const SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "rb.gy",
    "t.ly",
    "lnkd.in",
    "s.id",
];

/// How a message is encoded on the air interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet (with extension table).
    Gsm7,
    /// UCS-2 / UTF-16, used as soon as one character is outside GSM-7.
    Ucs2,
}

/// Result of a successful [`check`], measured on the template rendered with sample values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateCheck {
    pub segments: u32,
    pub encoding: Encoding,
    /// Characters (Unicode scalar values) of the rendered sample.
    pub chars: usize,
}

/// Why a template was refused. Messages are written for a practice administrator.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TemplateError {
    #[error("The template is empty.")]
    Empty,
    #[error(
        "The placeholder {{{0}}} is not allowed: patient health or financial details (such as names, dates of birth, amounts or services) may not appear in a text message. Patients see them after opening the secure link."
    )]
    PhiPlaceholder(String),
    #[error(
        "The placeholder {{{0}}} is not recognised. Use only {{practice}}, {{link}}, {{opt_out}}, {{help}} and {{verify_url}}."
    )]
    UnknownPlaceholder(String),
    #[error(
        "The placeholder starting at character {0} is not valid: a placeholder is a name made of letters, digits and underscores inside braces, like {{link}}."
    )]
    MalformedPlaceholder(usize),
    #[error("The brace at character {0} is opened but never closed.")]
    UnclosedBrace(usize),
    #[error("The brace at character {0} is closed but was never opened.")]
    UnopenedBrace(usize),
    #[error("The message must start with {{practice}} so patients can see who is texting them.")]
    MissingPracticeAtStart,
    #[error("The message must contain {{link}}, the patient's secure payment link.")]
    MissingLink,
    #[error(
        "The template contains a link shortener ({0}). Carriers block shortened links; use {{link}} instead."
    )]
    LinkShortener(String),
    #[error(
        "The message would be about {0} characters long; text messages may not exceed 1600 characters."
    )]
    TooLong(usize),
    #[error("No value was supplied for the placeholder {{{0}}}.")]
    MissingValue(String),
}

enum Token<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Split a template into literal text and placeholder names, collecting every brace error
/// (the tokens are meaningless when there are errors). Positions are 1-based characters.
fn tokenize(template: &str) -> (Vec<Token<'_>>, Vec<TemplateError>) {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    let mut text_start = 0;
    let mut open: Option<(usize, usize)> = None; // (byte index, char position) of `{`
    for (char_pos, (byte, c)) in template.char_indices().enumerate() {
        let char_pos = char_pos + 1;
        match (c, open) {
            ('{', None) => {
                tokens.push(Token::Text(&template[text_start..byte]));
                open = Some((byte, char_pos));
            }
            ('{', Some((_, pos))) => {
                errors.push(TemplateError::UnclosedBrace(pos));
                open = Some((byte, char_pos));
            }
            ('}', None) => {
                errors.push(TemplateError::UnopenedBrace(char_pos));
                text_start = byte + 1;
            }
            ('}', Some((start, pos))) => {
                let name = &template[start + 1..byte];
                let valid = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if valid {
                    tokens.push(Token::Placeholder(name));
                } else {
                    errors.push(TemplateError::MalformedPlaceholder(pos));
                }
                open = None;
                text_start = byte + 1;
            }
            _ => {}
        }
    }
    match open {
        Some((_, pos)) => errors.push(TemplateError::UnclosedBrace(pos)),
        None => tokens.push(Token::Text(&template[text_start..])),
    }
    (tokens, errors)
}

/// Why a placeholder name is refused, or `None` if it is allowed.
fn placeholder_error(name: &str) -> Option<TemplateError> {
    if ALLOWED.contains(&name) {
        return None;
    }
    Some(if looks_like_phi(name) {
        TemplateError::PhiPlaceholder(name.to_string())
    } else {
        TemplateError::UnknownPlaceholder(name.to_string())
    })
}

fn looks_like_phi(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // `{practice_name}` is a mistaken brand placeholder, not patient data.
    if lower.starts_with("practice") || lower.starts_with("clinic") {
        return false;
    }
    let squashed: String = lower.chars().filter(|c| *c != '_').collect();
    let parts_hit = lower.split('_').any(|part| PHI_WORDS.contains(&part));
    // Substring match catches camelCase like `patientName`; short words only as whole parts
    // so that e.g. `index` is not taken for `dx`.
    let substring_hit = PHI_WORDS
        .iter()
        .any(|w| w.len() >= 4 && squashed.contains(w));
    parts_hit || substring_hit || PHI_WORDS.contains(&squashed.as_str())
}

/// Shorteners that appear as a host: not glued to a longer host name on either side.
fn shorteners_in(template: &str) -> Vec<String> {
    let lower = template.to_lowercase();
    let bytes = lower.as_bytes();
    let host_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let mut found = Vec::new();
    for host in SHORTENERS {
        let hit = lower.match_indices(host).any(|(at, _)| {
            let before_ok = at == 0 || !host_char(bytes[at - 1]);
            let end = at + host.len();
            // A following `.x` would make this only part of a longer host (`bit.ly.example`).
            let after_ok = match bytes.get(end) {
                None => true,
                Some(b'.') => !bytes.get(end + 1).is_some_and(|b| host_char(*b)),
                Some(b) => !host_char(*b),
            };
            before_ok && after_ok
        });
        if hit {
            found.push((*host).to_string());
        }
    }
    found
}

/// Validate a practice template and measure it with sample values: [`SAMPLE_PRACTICE`] for
/// `{practice}`, `sample_link_len` characters for `{link}` and `{verify_url}`,
/// [`SAMPLE_OPT_OUT`] and [`SAMPLE_HELP`] for the reply instructions.
pub fn check(template: &str, sample_link_len: usize) -> Result<TemplateCheck, Vec<TemplateError>> {
    if template.trim().is_empty() {
        return Err(vec![TemplateError::Empty]);
    }
    let (tokens, errors) = tokenize(template);
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut errors = Vec::new();
    let mut names = Vec::new();
    for token in &tokens {
        if let Token::Placeholder(name) = token {
            names.push(*name);
            if let Some(err) = placeholder_error(name) {
                if !errors.contains(&err) {
                    errors.push(err);
                }
            }
        }
    }
    if !template.starts_with("{practice}") {
        errors.push(TemplateError::MissingPracticeAtStart);
    }
    if !names.contains(&"link") {
        errors.push(TemplateError::MissingLink);
    }
    errors.extend(
        shorteners_in(template)
            .into_iter()
            .map(TemplateError::LinkShortener),
    );

    let sample_link = "x".repeat(sample_link_len);
    let values = [
        ("practice", SAMPLE_PRACTICE),
        ("link", sample_link.as_str()),
        ("verify_url", sample_link.as_str()),
        ("opt_out", SAMPLE_OPT_OUT),
        ("help", SAMPLE_HELP),
    ];
    let rendered = substitute(&tokens, &values);
    let chars = rendered.as_ref().map_or(0, |r| r.chars().count());
    if chars > MAX_BODY_CHARS {
        errors.push(TemplateError::TooLong(chars));
    }
    match rendered {
        Ok(text) if errors.is_empty() => {
            let (encoding, segments) = segments(&text);
            Ok(TemplateCheck {
                segments,
                encoding,
                chars,
            })
        }
        // Every placeholder was already reported above; nothing new to add.
        _ => Err(errors),
    }
}

/// Substitute `values` into `template`. Values are inserted literally; braces inside a value
/// are not expanded. If a name appears twice in `values`, the first one is used.
pub fn render(template: &str, values: &[(&str, &str)]) -> Result<String, TemplateError> {
    let (tokens, errors) = tokenize(template);
    if let Some(first) = errors.into_iter().next() {
        return Err(first);
    }
    for token in &tokens {
        if let Token::Placeholder(name) = token {
            if let Some(err) = placeholder_error(name) {
                return Err(err);
            }
        }
    }
    substitute(&tokens, values)
}

fn substitute(tokens: &[Token<'_>], values: &[(&str, &str)]) -> Result<String, TemplateError> {
    let mut out = String::new();
    for token in tokens {
        match token {
            Token::Text(text) => out.push_str(text),
            Token::Placeholder(name) => {
                let value = values
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| TemplateError::MissingValue((*name).to_string()))?;
                out.push_str(value);
            }
        }
    }
    Ok(out)
}

/// GSM 03.38 default alphabet (one septet each). `Ç` is 0x09 as the standard has it.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + char: two septets each).
const GSM7_EXTENSION: &str = "\u{000C}^{}\\[~]|€";

const GSM7_SINGLE: u32 = 160;
const GSM7_PART: u32 = 153;
const UCS2_SINGLE: u32 = 70;
const UCS2_PART: u32 = 67;

/// Encoding and number of SMS segments `text` needs (0 for empty text).
///
/// Multi-part messages are packed the way handsets and Twilio do it: an extension character
/// (escape + char) or a UTF-16 surrogate pair is never split across two parts, so a part may
/// carry one unit less than its nominal size.
pub fn segments(text: &str) -> (Encoding, u32) {
    let gsm: Option<Vec<u32>> = text
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .collect();
    match gsm {
        Some(units) => (Encoding::Gsm7, pack(&units, GSM7_SINGLE, GSM7_PART)),
        None => {
            let units: Vec<u32> = text.chars().map(|c| c.len_utf16() as u32).collect();
            (Encoding::Ucs2, pack(&units, UCS2_SINGLE, UCS2_PART))
        }
    }
}

/// Count parts for indivisible characters of `units` size each.
fn pack(units: &[u32], single: u32, part: u32) -> u32 {
    let total: u32 = units.iter().sum();
    if total == 0 {
        return 0;
    }
    if total <= single {
        return 1;
    }
    let mut parts = 1;
    let mut used = 0;
    for &u in units {
        if used + u > part {
            parts += 1;
            used = 0;
        }
        used += u;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "{practice}: you have a new statement. Pay securely at {link} {opt_out}";

    #[test]
    fn good_template_passes_with_measurements() {
        let check = check(GOOD, 40).unwrap();
        let expected_len = GOOD.len() - "{practice}{link}{opt_out}".len()
            + SAMPLE_PRACTICE.len()
            + 40
            + SAMPLE_OPT_OUT.len();
        assert_eq!(check.chars, expected_len);
        assert_eq!(check.encoding, Encoding::Gsm7);
        assert_eq!(check.segments, 1);
        // A long link pushes the same template to two parts.
        assert_eq!(super::check(GOOD, 100).unwrap().segments, 2);
    }

    #[test]
    fn all_allowed_placeholders_are_accepted() {
        let t = "{practice} {link} {opt_out} {help} {verify_url}";
        assert!(check(t, 20).is_ok());
    }

    #[test]
    fn phi_placeholders_are_named_specially() {
        for name in [
            "name",
            "first_name",
            "last_name",
            "patient",
            "patientName",
            "dob",
            "birth",
            "birthday",
            "date_of_birth",
            "amount",
            "balance",
            "total",
            "amount_due",
            "due",
            "service",
            "service_date",
            "procedure",
            "diagnosis",
            "dx",
            "icd",
            "cpt",
            "description",
            "insurance",
        ] {
            let errs = check(&format!("{{practice}} {{link}} {{{name}}}"), 20).unwrap_err();
            assert_eq!(
                errs,
                vec![TemplateError::PhiPlaceholder(name.into())],
                "{name}"
            );
            let msg = errs[0].to_string();
            assert!(msg.contains("patient health or financial details"), "{msg}");
        }
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        for name in ["url", "index", "practice_name", "LINK"] {
            let errs = check(&format!("{{practice}} {{link}} {{{name}}}"), 20).unwrap_err();
            assert_eq!(errs, vec![TemplateError::UnknownPlaceholder(name.into())]);
        }
        let errs = check("{practice} {link} {foo}", 20).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "The placeholder {foo} is not recognised. Use only {practice}, {link}, {opt_out}, \
             {help} and {verify_url}."
        );
    }

    #[test]
    fn brace_errors() {
        assert_eq!(
            check("{practice} {link} {help", 20).unwrap_err(),
            vec![TemplateError::UnclosedBrace(19)]
        );
        assert_eq!(
            check("{practice} {link} help}", 20).unwrap_err(),
            vec![TemplateError::UnopenedBrace(23)]
        );
        assert_eq!(
            check("{practice} {{link}}", 20).unwrap_err(),
            vec![
                TemplateError::UnclosedBrace(12),
                TemplateError::UnopenedBrace(19)
            ]
        );
        assert_eq!(
            check("{practice} {} {link}", 20).unwrap_err(),
            vec![TemplateError::MalformedPlaceholder(12)]
        );
        assert_eq!(
            check("{practice} { link } {link}", 20).unwrap_err(),
            vec![TemplateError::MalformedPlaceholder(12)]
        );
    }

    #[test]
    fn practice_must_come_first_and_link_is_required() {
        assert_eq!(
            check(" {practice} {link}", 20).unwrap_err(),
            vec![TemplateError::MissingPracticeAtStart]
        );
        assert_eq!(
            check("Hi from {practice} {link}", 20).unwrap_err(),
            vec![TemplateError::MissingPracticeAtStart]
        );
        assert_eq!(
            check("{practice}: pay at {verify_url}", 20).unwrap_err(),
            vec![TemplateError::MissingLink]
        );
        assert_eq!(check("   ", 20).unwrap_err(), vec![TemplateError::Empty]);
    }

    #[test]
    fn link_shorteners_are_refused_as_hosts() {
        for s in SHORTENERS {
            let t = format!("{{practice}} {{link}} or https://{s}/abc");
            assert_eq!(
                check(&t, 20).unwrap_err(),
                vec![TemplateError::LinkShortener((*s).to_string())],
                "{s}"
            );
        }
        for t in [
            "{practice} {link} see BIT.LY/x",
            "{practice} {link} see www.bit.ly",
            "{practice} {link} see bit.ly.",
            "{practice} {link} (tinyurl.com)",
        ] {
            assert!(
                matches!(
                    &check(t, 20).unwrap_err()[..],
                    [TemplateError::LinkShortener(_)]
                ),
                "{t}"
            );
        }
        // Hosts that merely contain a shortener's letters.
        for t in [
            "{practice} {link} visit https://habit.ly/x",
            "{practice} {link} visit sometext.com",
            "{practice} {link} visit bit.ly.example.org",
            "{practice} {link} visit my-t.co",
        ] {
            assert!(check(t, 20).is_ok(), "{t}");
        }
    }

    #[test]
    fn too_long_is_refused() {
        let errs = check("{practice} {link}", 1600).unwrap_err();
        assert_eq!(
            errs,
            vec![TemplateError::TooLong(SAMPLE_PRACTICE.len() + 1601)]
        );
    }

    #[test]
    fn several_errors_are_reported_together() {
        let errs = check("Hello {dob} {bogus}", 20).unwrap_err();
        assert_eq!(
            errs,
            vec![
                TemplateError::PhiPlaceholder("dob".into()),
                TemplateError::UnknownPlaceholder("bogus".into()),
                TemplateError::MissingPracticeAtStart,
                TemplateError::MissingLink,
            ]
        );
    }

    #[test]
    fn render_substitutes_literally() {
        let out = render(
            "{practice}: pay at {link}",
            &[
                ("practice", "Dr {link} & Co"),
                ("link", "https://p.example/a"),
            ],
        )
        .unwrap();
        assert_eq!(out, "Dr {link} & Co: pay at https://p.example/a");
    }

    #[test]
    fn render_errors() {
        assert_eq!(
            render(
                "{practice} {amount}",
                &[("practice", "P"), ("amount", "$5")]
            ),
            Err(TemplateError::PhiPlaceholder("amount".into()))
        );
        assert_eq!(
            render("{practice} {foo}", &[("practice", "P"), ("foo", "x")]),
            Err(TemplateError::UnknownPlaceholder("foo".into()))
        );
        assert_eq!(
            render("{practice} {link}", &[("practice", "P")]),
            Err(TemplateError::MissingValue("link".into()))
        );
        assert_eq!(
            render("{practice", &[("practice", "P")]),
            Err(TemplateError::UnclosedBrace(1))
        );
        assert_eq!(render("no placeholders", &[]), Ok("no placeholders".into()));
    }

    #[test]
    fn gsm7_tables_match_the_standard() {
        // 128 basic code points minus the escape (0x1B); 10 extension characters.
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
        assert!(!GSM7_BASIC.contains('\u{1B}'));
        // Lower-case ç and the typographic apostrophe are not GSM-7.
        assert_eq!(segments("ç").0, Encoding::Ucs2);
        assert_eq!(segments("Ç").0, Encoding::Gsm7);
    }

    #[test]
    fn gsm7_boundaries() {
        assert_eq!(segments(""), (Encoding::Gsm7, 0));
        assert_eq!(segments(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(segments(&"a".repeat(161)), (Encoding::Gsm7, 2));
        assert_eq!(segments(&"a".repeat(306)), (Encoding::Gsm7, 2));
        assert_eq!(segments(&"a".repeat(307)), (Encoding::Gsm7, 3));
        // Basic-set accented and Greek letters stay GSM-7.
        assert_eq!(segments("é à Ñ ü Δ Ω £ ¥ § ¿ ¡"), (Encoding::Gsm7, 1));
    }

    #[test]
    fn gsm7_extension_chars_count_two() {
        for c in ['€', '{', '}', '[', ']', '~', '^', '\\', '|'] {
            let at_limit = format!("{}{c}", "a".repeat(158));
            assert_eq!(segments(&at_limit), (Encoding::Gsm7, 1), "{c}");
            let over = format!("{}{c}", "a".repeat(159));
            assert_eq!(segments(&over), (Encoding::Gsm7, 2), "{c}");
        }
        // An escape pair is not split: 152 septets + € does not fit the 153-septet part.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(segments(&text), (Encoding::Gsm7, 2));
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(segments(&text), (Encoding::Gsm7, 3));
    }

    #[test]
    fn ucs2_boundaries_and_emoji() {
        assert_eq!(segments(&"ç".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(segments(&"ç".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(segments(&"ç".repeat(134)), (Encoding::Ucs2, 2));
        assert_eq!(segments(&"ç".repeat(135)), (Encoding::Ucs2, 3));
        // One non-GSM character switches the whole message to UCS-2.
        assert_eq!(
            segments(&format!("{}’", "a".repeat(69))),
            (Encoding::Ucs2, 1)
        );
        assert_eq!(
            segments(&format!("{}’", "a".repeat(70))),
            (Encoding::Ucs2, 2)
        );
        // Emoji take two UTF-16 units.
        assert_eq!(segments(&"😀".repeat(35)), (Encoding::Ucs2, 1));
        assert_eq!(
            segments(&format!("{}😀", "a".repeat(69))),
            (Encoding::Ucs2, 2)
        );
        // A surrogate pair is not split: 66 units + emoji moves the emoji to part two.
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(10));
        assert_eq!(segments(&text), (Encoding::Ucs2, 2));
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(segments(&text), (Encoding::Ucs2, 3));
    }
}
