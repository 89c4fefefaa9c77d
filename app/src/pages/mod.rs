//! Page components: each takes a view model and renders a whole HTML document server-side.
//! The pages live in one file per family; this module re-exports them at `pages::*`.

mod components;
mod layout;
mod notices;
mod payment;
mod statement;
mod verify;

pub(crate) use components::{
    csrf_input, described_by, dob_fieldset, error_summary, error_summary_links, field_message,
    invalid, other_practices, scroll_region, zip_field, DOB_NAMES,
};
pub(crate) use layout::document_portal;
pub use notices::{accessibility, error, home, notice, switch_session};
pub(crate) use payment::after_life;
pub use payment::{confirming, declined, receipt, sandbox_checkout};
pub use statement::{payment_line, payment_status, statement, summary};
pub(crate) use statement::{payments_list, statement_table};
pub use verify::{locked, verify_dob, verify_zip};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::*;

    #[test]
    fn test_mode_is_said_only_in_test_mode() {
        let on = PageMeta {
            test_mode: true,
            ..Default::default()
        };
        assert!(home(on).contains("class=\"test-mode-banner\""));
        assert!(!home(PageMeta::default()).contains("test-mode-banner"));
    }

    #[test]
    fn every_page_renders_only_catalog_keys_that_exist() {
        let pages = [
            home(PageMeta::default()),
            home(PageMeta {
                test_mode: true,
                ..Default::default()
            }),
            switch_session(PageMeta::default(), SwitchSessionVm::default()),
            switch_session(
                PageMeta::default(),
                SwitchSessionVm {
                    staff: true,
                    ..Default::default()
                },
            ),
            switch_session(
                PageMeta::default(),
                SwitchSessionVm {
                    can_continue: true,
                    ..Default::default()
                },
            ),
            verify_dob(PageMeta::default(), VerifyDobVm::default()),
            verify_zip(PageMeta::default(), VerifyZipVm::default()),
            locked(PageMeta::default(), LockedVm::default()),
            statement(PageMeta::default(), StatementVm::default()),
            statement(
                PageMeta::default(),
                StatementVm {
                    lines: vec![StatementLineVm::default()],
                    some_hidden: true,
                    ..Default::default()
                },
            ),
            receipt(PageMeta::default(), ReceiptVm::default()),
            confirming(PageMeta::default(), ConfirmingVm::default()),
            confirming(
                PageMeta::default(),
                ConfirmingVm {
                    still_waiting: true,
                    ..Default::default()
                },
            ),
            error(
                PageMeta::default(),
                ErrorVm {
                    status: 404,
                    request_id: "r".into(),
                },
            ),
            sandbox_checkout(
                PageMeta::default(),
                SandboxCheckoutVm {
                    open: true,
                    ..Default::default()
                },
                "/x".into(),
            ),
            sandbox_checkout(
                PageMeta::default(),
                SandboxCheckoutVm {
                    open: true,
                    setup: true,
                    ..Default::default()
                },
                "/x".into(),
            ),
        ];
        // A missing key renders as the key itself, which always contains a '-' and no space.
        for html in pages {
            for key in [
                "verify-",
                "statement-",
                "receipt-",
                "error-",
                "sandbox-",
                "pay-",
                "zip-",
                "home-",
            ] {
                let needle = format!(">{key}");
                assert!(
                    !html.contains(&needle),
                    "untranslated key starting {key} in {html}"
                );
            }
        }
    }
}
