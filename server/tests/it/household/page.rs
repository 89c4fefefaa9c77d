//! The household page: a guarantor sees each person's amounts, not clinical detail where the
//! policy hides it.

use crate::common::{guarantor_of_4_and_5, not_found_body, t, ta, text, Backend, TestApp};
use patriotpay::ids::StatementId;

both_backends!(guarantor_sees_amounts_but_not_clinical_detail);

async fn guarantor_sees_amounts_but_not_clinical_detail(backend: Backend) {
    let app = TestApp::start(backend).await;
    let g = guarantor_of_4_and_5(&app, "guardian@example.org").await;
    let (s1, s4, s5) = (
        app.statement_of(1).await,
        app.statement_of(4).await,
        app.statement_of(5).await,
    );
    let home = text(&g.page("/account").await);
    for name in ["Sam", "Morgan"] {
        assert!(
            home.contains(&ta("account-dependant-statements", &[("name", name)])),
            "{name} listed"
        );
    }
    for s in [&s4, &s5] {
        assert!(
            home.contains(&format!("href=\"/account/statements/{s}\"")),
            "{s} linked"
        );
    }
    assert!(
        home.contains(&ta("account-statement-balance", &[("balance", "$35.00")])),
        "each balance shown"
    );
    assert!(home.contains("$70.00"), "total of both");
    assert!(
        !home.contains("Okonkwo") && !home.contains("Avery"),
        "first names of the household only"
    );

    // Patient 5 is an adult: amounts, no descriptions.
    let st5 = text(&g.page(&format!("/account/statements/{s5}")).await);
    for amount in ["$210.00", "$160.00", "$15.00", "$35.00"] {
        assert!(
            st5.contains(amount),
            "adult dependant: amount {amount} shown"
        );
    }
    assert!(
        !st5.contains("Urgent care visit"),
        "adult dependant: description hidden"
    );
    assert!(st5.contains(&t("statement-hidden-detail")) && st5.contains(&t("account-hidden-note")));
    assert!(
        !st5.contains("Oct 20, 2026"),
        "adult dependant: no date of service either (the date alone can disclose a visit)"
    );
    // Patient 4 is a minor: descriptions shown except the confidential line.
    let st4 = text(&g.page(&format!("/account/statements/{s4}")).await);
    assert!(
        st4.contains("Well-child visit"),
        "minor: ordinary line shown"
    );
    assert!(
        !st4.contains("Behavioral health screening"),
        "minor: confidential line hidden"
    );
    assert!(
        st4.contains("$40.00") && st4.contains(&t("statement-hidden-detail")),
        "the confidential line keeps its amounts"
    );
    assert_eq!(
        st4.matches("Oct 12, 2026").count(),
        1,
        "the ordinary line's date only, not the confidential line's: {st4}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE action = 'statement.amounts.view'")
            .await,
        2,
        "both views audited as amounts-only"
    );

    // Outside the household: the same 404 as an id that does not exist.
    let outside = not_found_body(
        g.get(&format!("/account/statements/{s1}")).await,
        "patient 1's statement",
    )
    .await;
    let made_up = not_found_body(
        g.get(&format!("/account/statements/{}", StatementId::generate()))
            .await,
        "a made-up statement id",
    )
    .await;
    let _ = not_found_body(g.get("/account/statements/not-an-id").await, "a bad id").await;
    assert_eq!(outside, made_up, "someone else's statement looks like none");
    assert!(!outside.contains("Avery") && !outside.contains("$112.00"));
    app.finish().await;
}
