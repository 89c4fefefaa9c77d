//! Account pages for patients and guarantors: create an account, sign in, the account home
//! (every statement the holder may pay, paid together in one form), a statement, the receipt,
//! and the guarantor invitation steps (verify, locked, accept). One file per family; this module
//! re-exports them at `account::*`.

mod cards;
mod household;
mod invitation;
mod not_me;
mod plans;
mod record_views;
mod sharing;
mod signup;
mod statement;

pub use cards::cards;
pub use household::home;
pub use invitation::{invite_accept, invite_locked, invite_verify};
pub use not_me::{not_me, NotMeVm};
pub use plans::plans;
pub use record_views::record_views;
pub(crate) use sharing::invite_error_box;
pub use signup::{confirm_code, create, forgot_password, reset_password, signin};
pub use statement::{receipt, statement};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Tr;
    use crate::vm::*;

    pub(super) fn open(id: &str, practice: &str) -> OpenStatementVm {
        OpenStatementVm {
            id: id.into(),
            practice_name: practice.into(),
            statement_date: "2026-03-01".into(),
            due_date: "2026-04-01".into(),
            balance: "$182.40".into(),
            amount: "182.40".into(),
            ..Default::default()
        }
    }

    pub(super) fn household() -> AccountHomeVm {
        AccountHomeVm {
            csrf: "tok".into(),
            email: "<script>alert(1)</script>@example.com".into(),
            total_due: "$207.40".into(),
            groups: vec![
                HouseholdGroupVm {
                    patient_name: "Dana".into(),
                    relation: Relation::Own,
                    statements: vec![OpenStatementVm {
                        checked: true,
                        ..open("st0001", "Riverside Family Medicine")
                    }],
                },
                HouseholdGroupVm {
                    patient_name: "Sam".into(),
                    relation: Relation::Dependant,
                    statements: vec![OpenStatementVm {
                        amount: "\"><b>x</b>".into(),
                        error: Some("Too much".into()),
                        ..open("st0002", "Lakeside Pediatrics")
                    }],
                },
            ],
            can_invite: vec![("pt01".into(), "Dana".into())],
            guarantors: vec![GuarantorVm {
                grant_id: "gr01".into(),
                email: "pat@example.com".into(),
                patient_name: "Dana".into(),
                since: "2026-01-02".into(),
            }],
            invitations: vec![InvitationVm {
                id: "in01".into(),
                patient_name: "Dana".into(),
                expires: "2026-03-15".into(),
            }],
            invite_error: Some("Enter an email address".into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_account_page_renders_only_catalog_keys_that_exist() {
        let pages = [
            create(PageMeta::default(), AccountFormVm::default()),
            signin(PageMeta::default(), SignInVm::default()),
            forgot_password(PageMeta::default(), ForgotPasswordVm::default()),
            reset_password(PageMeta::default(), ResetPasswordVm::default()),
            not_me(
                PageMeta::default(),
                NotMeVm::Ask {
                    csrf: "c".into(),
                    token: "t".into(),
                },
            ),
            not_me(PageMeta::default(), NotMeVm::Done),
            not_me(PageMeta::default(), NotMeVm::Gone),
            home(PageMeta::default(), household()),
            home(PageMeta::default(), AccountHomeVm::default()),
            statement(
                PageMeta::default(),
                AccountStatementVm {
                    lines: vec![StatementLineVm::default()],
                    some_hidden: true,
                    payments: vec![PaymentVm::default()],
                    ..Default::default()
                },
            ),
            receipt(
                PageMeta::default(),
                AccountReceiptVm {
                    items: vec![ReceiptItemVm::default()],
                    ..Default::default()
                },
            ),
            invite_verify(PageMeta::default(), InviteVerifyVm::default()),
            invite_locked(PageMeta::default(), None),
            invite_locked(PageMeta::default(), Some("1".into())),
            invite_accept(PageMeta::default(), InviteAcceptVm::default()),
            invite_accept(
                PageMeta::default(),
                InviteAcceptVm {
                    signed_in_email: Some("a@example.com".into()),
                    ..Default::default()
                },
            ),
            crate::pages::home(PageMeta::default()),
            crate::pages::receipt(
                PageMeta::default(),
                ReceiptVm {
                    offer_account: true,
                    ..Default::default()
                },
            ),
            crate::staff::home(
                PageMeta::default(),
                StaffHomeVm {
                    can_search: true,
                    invite_error: Some("Enter an email address".into()),
                    results: Some(vec![StaffPatientRow {
                        can_invite: true,
                        can_revoke: true,
                        guarantors: vec![GuarantorVm::default()],
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
            ),
        ];
        // A missing key renders as the key itself, which always contains a '-' and no space; text
        // and aria-label are where translated strings go.
        for html in pages {
            for key in [
                "account-",
                "signin-",
                "invite-",
                "receipt-",
                "home-",
                "staff-",
                "pay-",
                "summary-",
                "statement-",
                "verify-",
                "zip-",
            ] {
                for needle in [format!(">{key}"), format!("aria-label=\"{key}")] {
                    assert!(
                        !html.contains(&needle),
                        "untranslated key starting {key} in {html}"
                    );
                }
            }
            assert!(!html.contains("<!>"), "{html}");
        }
    }

    #[test]
    fn keys_the_server_flashes_exist() {
        let tr = Tr::new(crate::Lang::En);
        for key in [
            "account-email-invalid",
            "account-guarantor-revoked",
            "account-invitation-revoked",
            "account-pay-cancelled",
            "account-pay-check",
            "account-pay-declined",
            "account-pay-insufficient",
            "account-pay-none",
            "account-pay-one-practice",
            "account-pay-too-many",
            "invite-accepted",
            "invite-gone",
            "invite-verify-failed",
            "signin-failed",
            "staff-guarantor-revoked",
            "account-created-signin",
            "account-confirmed",
            "account-confirm-failed",
            "account-password-policy",
            "account-code-resent",
            "account-patient-exists",
            "account-password-reset",
            "account-card-saved",
            "account-card-not-saved",
            "account-card-removed",
            "account-card-not-yours",
            "account-cards-unavailable",
        ] {
            assert!(tr.has(key), "{key} is missing from en.ftl");
        }
    }
}
