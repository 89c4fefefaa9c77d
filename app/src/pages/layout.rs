//! The HTML document every page sits in: head, header (portal or sandbox), main, footer.

use super::csrf_input;
use crate::i18n::Tr;
use crate::urls::Url;
use crate::vm::PageMeta;
use leptos::prelude::*;

/// Which frame a page sits in: the portal's own, or the sandbox processor's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Chrome {
    Portal,
    Sandbox,
}

pub(super) fn document(meta: &PageMeta, chrome: Chrome, title: String, body: AnyView) -> String {
    let tr = Tr::new(meta.lang);
    let brand = tr.t("brand");
    let full_title = match chrome {
        Chrome::Portal => format!("{title} – {brand}"),
        Chrome::Sandbox => title,
    };
    let header = match chrome {
        Chrome::Portal => {
            let practice = meta
                .practice_name
                .as_ref()
                .map(|p| tr.ta("practice-header", &[("practice", p)]));
            // Under view-as the banner ends the view; the patient's own sign-out is not offered.
            let signout = meta
                .signout_csrf
                .clone()
                .filter(|_| meta.view_as.is_none())
                .map(|csrf| {
                    view! {
                        <form method="post" action=Url::SignOut.path() class="signout">
                            {csrf_input(csrf)}
                            <button type="submit" class="link-button">{tr.t("sign-out")}</button>
                        </form>
                    }
                });
            let test_mode = meta.test_mode.then(|| {
                // An <aside> landmark, so the notice is not content outside every landmark.
                view! {
                    <aside class="test-mode-banner" aria-label=tr.t("test-mode-label")>
                        <p>{tr.t("test-mode-banner")}</p>
                    </aside>
                }
            });
            let view_as = meta.view_as.as_ref().map(|b| view_as_banner(&tr, b));
            // The other language, named in itself; the server keeps the choice in the session.
            let other = meta.lang.other();
            let sep = if meta.here.contains('?') { '&' } else { '?' };
            let switch = view! {
                <a class="lang-switch" href=format!("{}{sep}lang={}", meta.here, other.code())
                    hreflang=other.code() lang=other.code()>{other.own_name()}</a>
            };
            view! {
                {test_mode}
                {view_as}
                <header class="site-header">
                    <a class="brand" href=Url::Home.path()>{brand.clone()}</a>
                    {practice.map(|p| view! { <span class="practice">{p}</span> })}
                    {switch}
                    {signout}
                </header>
            }
            .into_any()
        }
        Chrome::Sandbox => view! {
            <header class="sandbox-header">
                <p class="sandbox-banner">{tr.t("sandbox-banner")}</p>
            </header>
        }
        .into_any(),
    };
    let footer = (chrome == Chrome::Portal).then(|| {
        view! {
            <footer class="site-footer">
                <p>{tr.t("footer-secure")}</p>
                <p>{tr.t("footer-privacy")}</p>
                <p><a href=Url::Accessibility.path()>{tr.t("footer-accessibility")}</a></p>
            </footer>
        }
    });
    let page = view! {
        <html lang=meta.lang.tag()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{full_title}</title>
                <link rel="stylesheet" href=Url::Stylesheet.path()/>
                <link rel="icon" href=Url::Favicon.path() type="image/svg+xml"/>
            </head>
            <body>
                <a class="skip-link" href="#main">{tr.t("skip-to-content")}</a>
                {header}
                <main id="main" class="container">{body}</main>
                {footer}
            </body>
        </html>
    };
    // `<!>` is Leptos's placeholder for an empty optional; with no hydration it is noise, and
    // text content can't contain it (escaped), so removing it touches markup only.
    format!("<!DOCTYPE html>{}", page.to_html().replace("<!>", ""))
}

/// The banner on every page while staff view as a patient: who, whom, time left, read-only or
/// act-on-behalf, and the forms that end the view and note the patient's verbal consent.
fn view_as_banner(tr: &Tr, b: &crate::vm::ViewAsBannerVm) -> AnyView {
    use crate::vm::ViewAsConsent;
    let minutes = b.minutes_left.to_string();
    let who = tr.ta(
        "viewas-banner",
        &[
            ("staff", b.staff_name.as_str()),
            ("patient", b.patient_name.as_str()),
            ("minutes", minutes.as_str()),
        ],
    );
    let mode = match b.consent {
        None => tr.t("viewas-read-only"),
        Some(ViewAsConsent::NotNoted) => tr.t("viewas-act-consent-needed"),
        Some(ViewAsConsent::Noted) => tr.t("viewas-act-consent-noted"),
    };
    let consent_form = (b.consent == Some(ViewAsConsent::NotNoted)).then(|| {
        view! {
            <form method="post" action=Url::StaffViewAsConsent.path()>
                {csrf_input(b.csrf.clone())}
                <button type="submit">{tr.t("viewas-note-consent")}</button>
            </form>
        }
    });
    view! {
        <aside class="view-as-banner" aria-label=tr.t("viewas-label") role="status">
            <p><strong>{who}</strong></p>
            <p>{mode}</p>
            {consent_form}
            <form method="post" action=Url::StaffViewAsStop.path()>
                {csrf_input(b.csrf.clone())}
                <button type="submit">{tr.t("viewas-stop")}</button>
            </form>
        </aside>
    }
    .into_any()
}

/// A whole page in the portal's frame.
pub(crate) fn document_portal(meta: &PageMeta, title: String, body: AnyView) -> String {
    document(meta, Chrome::Portal, title, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::{ViewAsBannerVm, ViewAsConsent};

    fn page(consent: Option<ViewAsConsent>) -> String {
        let meta = PageMeta {
            signout_csrf: Some("tok".into()),
            view_as: Some(ViewAsBannerVm {
                staff_name: "Ana Diaz".into(),
                patient_name: "Avery Quintero".into(),
                minutes_left: 12,
                csrf: "tok".into(),
                consent,
            }),
            ..Default::default()
        };
        document_portal(&meta, "T".into(), view! { <p>"body"</p> }.into_any())
    }

    #[test]
    fn the_view_as_banner_names_both_and_replaces_the_sign_out() {
        let tr = Tr::default();
        let html = page(None);
        assert!(html.contains("Ana Diaz, you are viewing as Avery Quintero. 12 min left."));
        assert!(html.contains(&tr.t("viewas-read-only")));
        assert!(html.contains(&format!("action=\"{}\"", Url::StaffViewAsStop)));
        assert!(!html.contains(&format!("action=\"{}\"", Url::SignOut)));
        assert!(!html.contains(&format!("action=\"{}\"", Url::StaffViewAsConsent)));
        let asks = page(Some(ViewAsConsent::NotNoted));
        assert!(asks.contains(&format!("action=\"{}\"", Url::StaffViewAsConsent)));
        let noted = page(Some(ViewAsConsent::Noted));
        assert!(!noted.contains(&format!("action=\"{}\"", Url::StaffViewAsConsent)));
        assert!(noted.contains("recorded as taken by you"));
        let plain = document_portal(
            &PageMeta {
                signout_csrf: Some("tok".into()),
                ..Default::default()
            },
            "T".into(),
            view! { <p>"body"</p> }.into_any(),
        );
        assert!(!plain.contains("view-as-banner"));
        assert!(plain.contains(&format!("action=\"{}\"", Url::SignOut)));
    }
}
