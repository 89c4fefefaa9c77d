//! Unit tests of `http`.

use super::*;

#[tokio::test]
async fn a_handler_that_skips_the_policy_is_refused() {
    use tower::ServiceExt;
    let tenant = crate::ids::TenantId::generate();
    let asks = move || {
        let tenant = tenant.clone();
        async move {
            let on = crate::access::Resource {
                tenant: &tenant,
                patient: None,
                clinical_restricted: false,
            };
            let _ = crate::access::decide(
                &Default::default(),
                crate::access::Action::ViewAuditLog,
                &on,
                0,
            );
            "checked"
        }
    };
    let (summary, statement, healthz) = (
        Url::Summary.template(),
        Url::Statement.template(),
        Url::Healthz.template(),
    );
    let app = Router::new()
        .route(summary, get(|| async { "forgot to ask" }))
        .route(statement, get(asks))
        .route(healthz, get(|| async { "public" }))
        .layer(middleware::from_fn(move |req, next| {
            policy_guard(Arc::new([summary, statement].into()), req, next)
        }));
    let call = |path: &'static str| {
        let app = app.clone();
        async move {
            let req = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request");
            app.oneshot(req).await.expect("response").status()
        }
    };
    assert_eq!(call(summary).await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(call(statement).await, StatusCode::OK);
    assert_eq!(
        call(healthz).await,
        StatusCode::OK,
        "unprotected routes need no decision"
    );
}
