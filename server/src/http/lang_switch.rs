//! The language switch on every page: `?lang=es` (or `en`) on any page remembers the choice in
//! the session and shows the same page again without the parameter. A link rather than a form,
//! so it works from every page, signed in or not, without a token: the most a forged one can do
//! is change the language, which the visitor changes back from any page.

use super::error::AppError;
use super::session::Sess;
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use patriotpay_app::urls::Url;
use patriotpay_app::Lang;

/// The language a GET asks for with `lang=`, if it is one the portal speaks.
pub fn asked(req: &Request) -> Option<Lang> {
    if req.method() != Method::GET {
        return None;
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.uri().query()?).ok()?;
    pairs
        .iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| Lang::parse(v))
}

/// Where the switch on the page answering `req` leads: the same page with its query for a GET;
/// for a form's answer (its address may take no GET), the home of the part of the portal it
/// belongs to.
pub fn return_to(req: &Request) -> String {
    if req.method() == Method::GET {
        return back(req.uri());
    }
    let path = req.uri().path();
    let home = if path.starts_with(Url::Staff.path().as_str()) {
        Url::Staff
    } else if path.starts_with(Url::Account.path().as_str()) || path == Url::SignIn.path() {
        Url::Account
    } else {
        Url::Summary
    };
    home.path()
}

/// Remembers `lang` and sends the visitor back to the page without the parameter.
pub async fn switch(session: &Sess, lang: Lang, uri: &Uri) -> Response {
    match session.choose_lang(lang).await {
        Ok(()) => Redirect::to(&back(uri)).into_response(),
        Err(e) => AppError::from(e).into_response(),
    }
}

/// The same page without `lang`: this site's path (never `//host`) and the rest of the query.
fn back(uri: &Uri) -> String {
    let path = uri.path();
    let path = if path.starts_with("//") || path.starts_with("/\\") || !path.starts_with('/') {
        "/"
    } else {
        path
    };
    let rest: Vec<(String, String)> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "lang")
        .collect();
    match serde_urlencoded::to_string(&rest) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back_of(uri: &str) -> String {
        back(&uri.parse().expect("uri"))
    }

    #[test]
    fn the_page_comes_back_without_the_parameter_and_never_leaves_the_site() {
        assert_eq!(back_of("/statement?lang=es"), "/statement");
        assert_eq!(
            back_of("/staff/audit?actor=user%3Ax&lang=en&page=2"),
            "/staff/audit?actor=user%3Ax&page=2"
        );
        assert_eq!(back_of("//evil.example?lang=es"), "/");
        assert_eq!(back_of("/\\evil.example?lang=es"), "/");
    }

    #[test]
    fn only_known_languages_on_a_get_switch() {
        let get = |q: &str| {
            Request::builder()
                .uri(format!("/summary?{q}"))
                .body(axum::body::Body::empty())
                .expect("request")
        };
        assert_eq!(asked(&get("lang=es")), Some(Lang::Es));
        assert_eq!(asked(&get("lang=fr")), None);
        assert_eq!(asked(&get("x=1")), None);
        let post = Request::builder()
            .method(Method::POST)
            .uri("/summary?lang=es")
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(asked(&post), None);
    }

    fn return_of(method: Method, uri: &str) -> String {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("request");
        return_to(&req)
    }

    /// A form's answer may sit at an address that takes no GET: the switch there leads to the
    /// home of that part of the portal, never to a 405.
    #[test]
    fn the_switch_on_a_forms_answer_leads_to_a_page_that_takes_a_get() {
        assert_eq!(
            return_of(Method::GET, "/staff/audit?action=alert.&lang=es"),
            "/staff/audit?action=alert."
        );
        assert_eq!(return_of(Method::POST, "/staff/break-glass"), "/staff");
        assert_eq!(return_of(Method::POST, "/account/pay"), "/account");
        assert_eq!(return_of(Method::POST, "/signin"), "/account");
        assert_eq!(return_of(Method::POST, "/verify"), "/summary");
    }
}
