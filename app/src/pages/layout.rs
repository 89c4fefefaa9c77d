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

pub(super) fn document(
    meta: &PageMeta,
    chrome: Chrome,
    title: String,
    refresh: Option<String>,
    body: AnyView,
) -> String {
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
            let signout = meta.signout_csrf.clone().map(|csrf| {
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
            view! {
                {test_mode}
                <header class="site-header">
                    <a class="brand" href=Url::Home.path()>{brand.clone()}</a>
                    {practice.map(|p| view! { <span class="practice">{p}</span> })}
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
                {refresh.map(|r| view! { <meta http-equiv="refresh" content=r/> })}
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

/// A whole page in the portal's frame.
pub(crate) fn document_portal(meta: &PageMeta, title: String, body: AnyView) -> String {
    document(meta, Chrome::Portal, title, None, body)
}
