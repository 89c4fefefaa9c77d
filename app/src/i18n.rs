//! Message catalog: every user-facing string, looked up by key from Fluent files.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::sync::OnceLock;
use unic_langid::{langid, LanguageIdentifier};

/// A supported interface language. Spanish is added as another variant plus its `.ftl` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
}

impl Lang {
    /// The BCP 47 tag used in `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
        }
    }

    fn id(self) -> LanguageIdentifier {
        match self {
            Lang::En => langid!("en-US"),
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../locales/en.ftl"),
        }
    }
}

struct Catalog {
    en: FluentBundle<FluentResource>,
}

fn build(lang: Lang) -> FluentBundle<FluentResource> {
    let mut bundle = FluentBundle::new_concurrent(vec![lang.id()]);
    // Isolation marks would wrap every argument in invisible characters; our scripts are LTR only.
    bundle.set_use_isolating(false);
    // A broken catalog is a build defect caught by the unit tests below, so parse errors keep
    // whatever parsed rather than failing at run time.
    let resource = match FluentResource::try_new(lang.source().to_owned()) {
        Ok(r) => r,
        Err((r, _)) => r,
    };
    let _ = bundle.add_resource(resource);
    bundle
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog {
        en: build(Lang::En),
    })
}

/// A translator for one language; cheap to copy into every component.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Self {
        Self { lang }
    }

    fn bundle(&self) -> &'static FluentBundle<FluentResource> {
        match self.lang {
            Lang::En => &catalog().en,
        }
    }

    /// The message for `key`; a missing key renders as the key itself so it is visible in review.
    pub fn t(&self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message for `key` with named string arguments.
    pub fn ta(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, FluentValue::from(v.to_string()));
        }
        self.format(key, Some(&fa))
    }

    fn format(&self, key: &str, args: Option<&FluentArgs>) -> String {
        let bundle = self.bundle();
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            return key.to_owned();
        };
        let mut errors = vec![];
        bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned()
    }

    /// True when the catalog has `key`; used by tests to prove no key is missing.
    pub fn has(&self, key: &str) -> bool {
        self.bundle().has_message(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_catalog_parses_without_errors() {
        let parsed = FluentResource::try_new(Lang::En.source().to_owned());
        assert!(
            parsed.is_ok(),
            "en.ftl has syntax errors: {:?}",
            parsed.err().map(|e| e.1)
        );
    }

    #[test]
    fn arguments_are_substituted() {
        let tr = Tr::new(Lang::En);
        assert_eq!(
            tr.ta(
                "receipt-card-value",
                &[("brand", "Visa"), ("last4", "4242")]
            ),
            "Visa ending 4242"
        );
        assert_eq!(tr.t("no-such-key"), "no-such-key");
    }
}
