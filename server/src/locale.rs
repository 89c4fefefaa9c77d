//! The language the current request is served in (set by the session guard for the rest of the
//! request), and dates written the way that language writes them.

use patriotpay_app::Lang;

tokio::task_local! {
    static LANG: Lang;
    /// Where the language switch on the current page leads back to (see `lang_switch`).
    static HERE: String;
}

/// The current request's language; English outside a request (jobs, the command line).
pub fn current() -> Lang {
    LANG.try_with(|l| *l).unwrap_or_default()
}

/// The page the language switch returns to, with its query (no `lang`); empty outside a
/// request.
pub fn here() -> String {
    HERE.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `f` with `lang` as the current language and `here` as the switch's way back.
pub async fn scope<F: std::future::Future>(lang: Lang, here: String, f: F) -> F::Output {
    LANG.scope(lang, HERE.scope(here, f)).await
}

/// Spanish month abbreviations as US Spanish writes them (CLDR `es-US`, abbreviated).
const ES_MONTHS: [&str; 12] = [
    "ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic",
];

/// `Mar 14, 2026` in English, `14 mar 2026` in Spanish.
pub fn date(d: time::Date, lang: Lang) -> String {
    match lang {
        Lang::En => {
            const EN: &[time::format_description::FormatItem<'static>] =
                time::macros::format_description!("[month repr:short] [day padding:none], [year]");
            d.format(EN).unwrap_or_default()
        }
        Lang::Es => {
            let month = ES_MONTHS[usize::from(u8::from(d.month())) - 1];
            format!("{} {month} {}", d.day(), d.year())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_each_language_writes_them() {
        let d = time::macros::date!(2026 - 03 - 04);
        assert_eq!(date(d, Lang::En), "Mar 4, 2026");
        assert_eq!(date(d, Lang::Es), "4 mar 2026");
        let d = time::macros::date!(2026 - 09 - 30);
        assert_eq!(date(d, Lang::Es), "30 sept 2026");
    }

    #[tokio::test]
    async fn the_scope_sets_the_language() {
        assert_eq!(current(), Lang::En);
        let (lang, here) =
            scope(Lang::Es, "/statement".into(), async { (current(), here()) }).await;
        assert_eq!((lang, here.as_str()), (Lang::Es, "/statement"));
    }
}
