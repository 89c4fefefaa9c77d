//! An adult patient's own guarantors on the account home: current grants, pending invitations,
//! and the invite form (the invitation is emailed to the invitee; its link is never shown).

use crate::forms::{InviteForm, RevokeGrantForm, RevokeInvitationForm};
use crate::i18n::Tr;
use crate::pages::csrf_input;
use crate::urls::Url;
use crate::vm::*;
use leptos::prelude::*;

/// Why a guarantor invitation was not sent (account home and staff home).
pub(crate) fn invite_error_box(message: String) -> AnyView {
    view! { <p class="error-message invite-error" role="alert">{message}</p> }.into_any()
}

/// The guarantors, pending invitations and invite form for the holder's own records.
pub(super) fn guarantors_section(tr: Tr, vm: &AccountHomeVm) -> Option<AnyView> {
    if vm.can_invite.is_empty() && vm.guarantors.is_empty() && vm.invitations.is_empty() {
        return None;
    }
    let guarantors = (!vm.guarantors.is_empty()).then(|| {
        let items = vm
            .guarantors
            .iter()
            .map(|g| {
                let who = [
                    ("email", g.email.as_str()),
                    ("patient", g.patient_name.as_str()),
                    ("since", g.since.as_str()),
                ];
                view! {
                    <li>
                        <span>{tr.ta("account-guarantor-line", &who)}</span>
                        <form method="post" action=Url::AccountGuarantorRevoke.path() class="inline-form" novalidate>
                            {csrf_input(vm.csrf.clone())}
                            <input type="hidden" name=RevokeGrantForm::GRANT value=g.grant_id.clone()/>
                            <button type="submit" class="button secondary"
                                aria-label=tr.ta("account-guarantor-revoke-label", &who)>
                                {tr.t("account-guarantor-revoke")}
                            </button>
                        </form>
                    </li>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("account-guarantors-current")}</h3>
            <ul class="grants">{items}</ul>
        }
    });
    let invitations = (!vm.invitations.is_empty()).then(|| {
        let items = vm
            .invitations
            .iter()
            .map(|i| {
                let which = [
                    ("patient", i.patient_name.as_str()),
                    ("expires", i.expires.as_str()),
                ];
                view! {
                    <li>
                        <span>{tr.ta("account-invitation-line", &which)}</span>
                        <form method="post" action=Url::AccountInvitationRevoke.path() class="inline-form" novalidate>
                            {csrf_input(vm.csrf.clone())}
                            <input type="hidden" name=RevokeInvitationForm::INVITATION value=i.id.clone()/>
                            <button type="submit" class="button secondary"
                                aria-label=tr.ta("account-invitation-cancel-label", &which)>
                                {tr.t("account-invitation-cancel")}
                            </button>
                        </form>
                    </li>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("account-invitations-title")}</h3>
            <ul class="grants">{items}</ul>
        }
    });
    let invite = (!vm.can_invite.is_empty()).then(|| {
        let options = vm
            .can_invite
            .iter()
            .map(|(id, name)| view! { <option value=id.clone()>{name.clone()}</option> })
            .collect::<Vec<_>>();
        view! {
            <h3>{tr.t("account-invite-title")}</h3>
            <form method="post" action=Url::AccountGuarantorInvite.path() novalidate>
                {csrf_input(vm.csrf.clone())}
                <div class="field">
                    <label for="invite-patient">{tr.t("account-invite-patient")}</label>
                    <select id="invite-patient" name=InviteForm::PATIENT>{options}</select>
                </div>
                <div class="field">
                    <label for="invite-email">{tr.t("invite-email-label")}</label>
                    <input id="invite-email" name=InviteForm::EMAIL type="email" autocomplete="off"
                        spellcheck="false" size="30" required/>
                </div>
                <button type="submit" class="button">{tr.t("account-invite-submit")}</button>
            </form>
        }
    });
    Some(
        view! {
            <section class="guarantors" aria-labelledby="guarantors-heading">
                <h2 id="guarantors-heading">{tr.t("account-guarantors-title")}</h2>
                <p>{tr.t("account-guarantors-lead")}</p>
                {guarantors}
                {invitations}
                {invite}
            </section>
        }
        .into_any(),
    )
}
