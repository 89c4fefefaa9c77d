//! A practice's own settings for its billing texts (issue 13): its wording of the pay-link and
//! reminder texts in English and Spanish (checked when saved: brand first, the link, no PHI
//! placeholder, no link shortener, at most 1,600 characters), its reminder cadence, and whether
//! every text ends with the "is this text really from my practice?" page. What is not set uses
//! the built-in wording (`texts`).

use super::template::{self, TemplateCheck, TemplateError};
use super::texts::{self, BillingText};
use crate::ids::TenantId;
use crate::intake::Language;
use crate::phi::Phi;

/// The texts a practice may word: (template name, language).
pub const EDITABLE: [(&str, Language); 4] = [
    (texts::PAY_LINK, Language::En),
    (texts::PAY_LINK, Language::Es),
    (texts::REMINDER, Language::En),
    (texts::REMINDER, Language::Es),
];

/// Characters a pay link takes in a text (`https://` + host + `/p/` + 43-character token), for
/// sizing a wording at save time.
const SAMPLE_LINK_CHARS: usize = 72;

/// Most reminder steps a cadence may have, and the latest day one may fall on.
pub const MAX_REMINDER_STEPS: usize = 6;
pub const MAX_REMINDER_DAY: u32 = 120;

/// How one practice's texts are made, loaded once for a batch of them.
pub struct Wording {
    practice: String,
    custom: Vec<(String, Language, String)>,
    check_url: String,
    footer: bool,
}

impl Wording {
    /// The practice's settings, or `None` when there is no such practice.
    pub async fn load(
        conn: &mut sqlx::AnyConnection,
        tenant: &TenantId,
        public_url: &str,
    ) -> Result<Option<Wording>, sqlx::Error> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT name, check_link_footer FROM tenants WHERE id = $1")
                .bind(tenant.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        let Some((practice, footer)) = row else {
            return Ok(None);
        };
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT template, language, body FROM message_templates WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *conn)
        .await?;
        let custom = rows
            .into_iter()
            .filter_map(|(t, l, body)| Some((t, Language::parse(&l)?, body)))
            .collect();
        Ok(Some(Wording {
            practice,
            custom,
            check_url: check_url(public_url),
            footer: footer == 1,
        }))
    }

    pub fn practice(&self) -> &str {
        &self.practice
    }

    /// The wording of `template` in `lang`: the practice's, else the built-in one.
    fn wording(&self, template: &str, lang: Language) -> &str {
        self.custom
            .iter()
            .find(|(t, l, _)| t == template && *l == lang)
            .map_or_else(|| texts::builtin(template, lang), |(_, _, b)| b.as_str())
    }

    /// Billing text `template` (`texts::PAY_LINK` or `texts::REMINDER`) carrying `link`.
    pub fn text(&self, template: &str, lang: Language, link: &str, first: bool) -> Phi<String> {
        BillingText {
            wording: self.wording(template, lang),
            lang,
            practice: &self.practice,
            link,
            first,
            check_url: &self.check_url,
            footer: self.footer,
        }
        .render()
    }
}

/// The "is this text really from my practice?" page on the portal's own domain.
fn check_url(public_url: &str) -> String {
    format!("{}/check-link", public_url.trim_end_matches('/'))
}

/// Checks a practice's wording of a text as the save form does.
pub fn check(body: &str) -> Result<TemplateCheck, Vec<TemplateError>> {
    template::check(body.trim(), SAMPLE_LINK_CHARS)
}

/// One editable text as the settings page shows it.
pub struct Editable {
    pub template: &'static str,
    pub language: Language,
    pub body: String,
    /// The practice's own wording (else the built-in one is shown).
    pub custom: bool,
    pub check: Option<TemplateCheck>,
}

/// A practice's settings for its texts.
pub struct Settings {
    pub reminder_days: Vec<u32>,
    pub remind_on_due_date: bool,
    pub check_link_footer: bool,
    pub texts: Vec<Editable>,
}

/// The settings of `tenant` (`None`: no such practice).
pub async fn settings(
    conn: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    public_url: &str,
) -> Result<Option<Settings>, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT reminder_days, remind_on_due_date FROM tenants WHERE id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let Some((days, on_due)) = row else {
        return Ok(None);
    };
    let Some(wording) = Wording::load(conn, tenant, public_url).await? else {
        return Ok(None);
    };
    let texts = EDITABLE
        .iter()
        .map(|(template, language)| {
            let body = wording.wording(template, *language).to_owned();
            Editable {
                template,
                language: *language,
                custom: wording
                    .custom
                    .iter()
                    .any(|(t, l, _)| t == template && l == language),
                check: check(&body).ok(),
                body,
            }
        })
        .collect();
    Ok(Some(Settings {
        reminder_days: parse_days(&days).unwrap_or_default(),
        remind_on_due_date: on_due == 1,
        check_link_footer: wording.footer,
        texts,
    }))
}

/// Which editable text a form names: `Some((template, language))`.
pub fn editable(template: &str, language: &str) -> Option<(&'static str, Language)> {
    let language = Language::parse(language)?;
    EDITABLE
        .iter()
        .find(|(t, l)| *t == template && *l == language)
        .copied()
}

/// A practice's wording that passed the save check: only this can be saved.
pub struct Accepted {
    body: String,
    check: TemplateCheck,
}

/// Checks a typed wording for saving: `Accepted`, or why not (for a practice administrator).
pub fn accept(body: &str) -> Result<Accepted, Vec<TemplateError>> {
    let body = body.trim();
    let check = check(body)?;
    Ok(Accepted {
        body: body.to_owned(),
        check,
    })
}

/// Saves a practice's accepted wording of one text, in the caller's transaction.
pub async fn save_text(
    tx: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    (template, language): (&'static str, Language),
    wording: &Accepted,
    by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    reset_text(tx, tenant, (template, language)).await?;
    sqlx::query(
        "INSERT INTO message_templates (tenant_id, template, language, body, segments,
             updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.as_str())
    .bind(template)
    .bind(language.code())
    .bind(&wording.body)
    .bind(i64::from(wording.check.segments))
    .bind(by)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Goes back to the built-in wording of one text.
pub async fn reset_text(
    tx: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    (template, language): (&'static str, Language),
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "DELETE FROM message_templates WHERE tenant_id = $1 AND template = $2 AND language = $3",
    )
    .bind(tenant.as_str())
    .bind(template)
    .bind(language.code())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// A cadence as typed ("7, 14"): days after a statement's first text, each 1 to
/// `MAX_REMINDER_DAY`, at most `MAX_REMINDER_STEPS`, given in order without repeats. Empty is
/// allowed (no reminders but the due date's, if on).
pub fn parse_days(typed: &str) -> Result<Vec<u32>, &'static str> {
    let mut days = vec![];
    for part in typed.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let day: u32 = part
            .parse()
            .map_err(|_| "reminder days are whole numbers separated by commas")?;
        if day == 0 || day > MAX_REMINDER_DAY {
            return Err("each reminder day is 1 to 120");
        }
        if days.last().is_some_and(|last| *last >= day) {
            return Err("give the reminder days in order, each once");
        }
        days.push(day);
    }
    if days.len() > MAX_REMINDER_STEPS {
        return Err("at most 6 reminder days");
    }
    Ok(days)
}

/// Sets a practice's reminder cadence, in the caller's transaction.
pub async fn set_cadence(
    tx: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    days: &[u32],
    on_due_date: bool,
) -> Result<(), sqlx::Error> {
    let typed = days
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    sqlx::query("UPDATE tenants SET reminder_days = $1, remind_on_due_date = $2 WHERE id = $3")
        .bind(typed)
        .bind(i64::from(on_due_date))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Turns the check-page footer of a practice's texts on or off, in the caller's transaction.
pub async fn set_footer(
    tx: &mut sqlx::AnyConnection,
    tenant: &TenantId,
    on: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET check_link_footer = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadences_are_read_strictly() {
        assert_eq!(parse_days("7, 14"), Ok(vec![7, 14]));
        assert_eq!(parse_days(" 3,10 ,30 "), Ok(vec![3, 10, 30]));
        assert_eq!(parse_days(""), Ok(vec![]));
        assert!(parse_days("14, 7").is_err(), "out of order");
        assert!(parse_days("7, 7").is_err(), "repeated");
        assert!(parse_days("0").is_err());
        assert!(parse_days("121").is_err());
        assert!(parse_days("seven").is_err());
        assert!(parse_days("1,2,3,4,5,6,7").is_err(), "too many steps");
    }

    #[test]
    fn a_practice_wording_keeps_the_opt_out_and_adds_the_footer() {
        let w = Wording {
            practice: "Riverside Family Medicine".into(),
            custom: vec![(
                texts::PAY_LINK.into(),
                Language::En,
                "{practice}: New bill. Pay at {link}".into(),
            )],
            check_url: check_url("https://pay.example/"),
            footer: true,
        };
        let first = w.text(
            texts::PAY_LINK,
            Language::En,
            "https://pay.example/p/t",
            true,
        );
        let text = first.expose();
        assert!(
            text.starts_with("Riverside Family Medicine: New bill."),
            "{text}"
        );
        assert!(
            text.contains("Reply STOP to opt out"),
            "first contact: {text}"
        );
        assert!(
            text.ends_with("Check at https://pay.example/check-link"),
            "footer: {text}"
        );
        let later = w.text(
            texts::PAY_LINK,
            Language::En,
            "https://pay.example/p/t",
            false,
        );
        assert!(!later.expose().contains("STOP"));
        // Spanish has no practice wording here: the built-in one, with the Spanish footer.
        let es = w.text(
            texts::PAY_LINK,
            Language::Es,
            "https://pay.example/p/t",
            false,
        );
        assert!(es.expose().contains("Su estado de cuenta"));
        assert!(es
            .expose()
            .contains("Compruébelo en https://pay.example/check-link"));
    }

    #[test]
    fn the_save_check_refuses_phi_and_shorteners() {
        assert!(check("{practice}: Hi {first_name}, pay at {link}").is_err());
        assert!(check("{practice}: pay at https://bit.ly/x {link}").is_err());
        assert!(check("Pay at {link}").is_err(), "brand first");
        let ok = check("{practice}: Your bill is ready: {link}").expect("fine");
        assert_eq!(ok.segments, 1);
    }
}
