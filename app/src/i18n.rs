//! Message catalog: every user-facing string, looked up by key from Fluent files.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::sync::OnceLock;
use unic_langid::{langid, LanguageIdentifier};

/// An interface language, which is also a language a patient may prefer (ISO 639-1 codes as
/// practices send them and as stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Es,
}

impl Lang {
    pub const ALL: [(&'static str, Lang); 2] = [("en", Lang::En), ("es", Lang::Es)];

    /// The code as stored and sent (`en`, `es`); also the BCP 47 tag of `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The BCP 47 tag used in `<html lang>`.
    pub fn tag(self) -> &'static str {
        self.code()
    }

    /// The language of a code as stored (`en`, `es`).
    pub fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.iter().find(|(c, _)| *c == code).map(|(_, l)| *l)
    }

    /// The language's name in itself, as the switch offers it.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Es => "Español",
        }
    }

    /// The other language the switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Es,
            Lang::Es => Lang::En,
        }
    }

    fn id(self) -> LanguageIdentifier {
        // US English and US Spanish: the portal's patients are in the United States.
        match self {
            Lang::En => langid!("en-US"),
            Lang::Es => langid!("es-US"),
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../locales/en.ftl"),
            Lang::Es => include_str!("../locales/es.ftl"),
        }
    }
}

struct Catalog {
    en: FluentBundle<FluentResource>,
    es: FluentBundle<FluentResource>,
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
        es: build(Lang::Es),
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
            Lang::Es => &catalog().es,
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
    fn catalogs_parse_without_errors() {
        for (code, lang) in Lang::ALL {
            let parsed = FluentResource::try_new(lang.source().to_owned());
            assert!(
                parsed.is_ok(),
                "{code}.ftl has syntax errors: {:?}",
                parsed.err().map(|e| e.1)
            );
        }
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

    /// Every message of a catalog: its id and the variables it uses.
    fn messages(lang: Lang) -> std::collections::BTreeMap<String, Vec<String>> {
        use fluent_syntax::ast::{Entry, Expression, InlineExpression, PatternElement};
        fn vars(elements: &[PatternElement<&str>], out: &mut Vec<String>) {
            for e in elements {
                if let PatternElement::Placeable { expression } = e {
                    match expression {
                        Expression::Inline(InlineExpression::VariableReference { id }) => {
                            out.push(id.name.to_owned())
                        }
                        Expression::Select { selector, variants } => {
                            if let InlineExpression::VariableReference { id } = selector {
                                out.push(id.name.to_owned());
                            }
                            for v in variants {
                                vars(&v.value.elements, out);
                            }
                        }
                        Expression::Inline(_) => {}
                    }
                }
            }
        }
        let ast = fluent_syntax::parser::parse(lang.source()).expect("catalog parses");
        let mut out = std::collections::BTreeMap::new();
        for entry in ast.body {
            if let Entry::Message(m) = entry {
                let mut v = vec![];
                if let Some(p) = &m.value {
                    vars(&p.elements, &mut v);
                }
                v.sort();
                v.dedup();
                out.insert(m.id.name.to_owned(), v);
            }
        }
        out
    }

    #[test]
    fn spanish_has_every_english_message_with_the_same_arguments() {
        let en = messages(Lang::En);
        let es = messages(Lang::Es);
        let missing: Vec<&String> = en.keys().filter(|k| !es.contains_key(*k)).collect();
        let extra: Vec<&String> = es.keys().filter(|k| !en.contains_key(*k)).collect();
        assert!(missing.is_empty(), "missing from es.ftl: {missing:?}");
        assert!(extra.is_empty(), "in es.ftl only: {extra:?}");
        for (key, vars) in &en {
            assert_eq!(Some(vars), es.get(key), "{key}: arguments differ");
        }
    }

    #[test]
    fn spanish_is_served_in_spanish() {
        let es = Tr::new(Lang::Es);
        assert_ne!(es.t("verify-title"), Tr::new(Lang::En).t("verify-title"));
        assert!(!es.t("verify-title").is_empty());
        assert_eq!(Lang::parse("es"), Some(Lang::Es));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::Es.other(), Lang::En);
    }
}
