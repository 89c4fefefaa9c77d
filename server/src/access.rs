//! Access control: the roles, the actions, and the one policy function that decides every access.

use crate::group_commit::GroupWriter;
use crate::ids::{PatientId, TenantId};
use std::collections::BTreeSet;

/// Who someone is to the portal. Staff roles are scoped to practices by `Grant`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Patient,
    Guarantor,
    SupportAgent,
    PracticeAdmin,
    SecurityOfficer,
    PlatformAdmin,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Patient,
        Role::Guarantor,
        Role::SupportAgent,
        Role::PracticeAdmin,
        Role::SecurityOfficer,
        Role::PlatformAdmin,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Guarantor => "guarantor",
            Role::SupportAgent => "support-agent",
            Role::PracticeAdmin => "practice-admin",
            Role::SecurityOfficer => "security-officer",
            Role::PlatformAdmin => "platform-admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Staff roles must sign in with a second factor.
    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Patient | Role::Guarantor)
    }
}

/// Everything the portal lets anyone do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Balance and practice of a statement.
    ViewBalance,
    /// Line items, including service descriptions.
    ViewItemisedStatement,
    /// Amounts of line items without clinical descriptions (guarantor billing scope).
    ViewStatementAmounts,
    MakePayment,
    ViewReceipt,
    /// "Who viewed my record".
    ViewOwnAccessLog,
    InviteGuarantor,
    RevokeGuarantor,
    SearchPatients,
    /// Support's read-only view-as, with reason and ticket.
    ViewAsPatient,
    ResendPayLink,
    ImportStatements,
    ManageStaff,
    ManageSmsSettings,
    IssueRefund,
    ExportReports,
    ViewAuditLog,
    VerifyAuditChain,
    RunIncidentConsole,
    GrantBreakGlass,
    ManagePractices,
    /// Card brand and last four digits of a patient's payments (not a guarantor's to see).
    ViewCardDetails,
    /// Let staff viewing as a patient take a payment the patient dictates ("act on behalf").
    ConfigureActOnBehalf,
    /// A practice's undeliverable messages and the inbox of patients' replies (issue 13).
    ViewMessages,
    /// Mark a patient's reply as read.
    HandleMessages,
    /// Turn billing texts to one's own number on or off (the pay-link page's consent form).
    ChooseTexts,
}

impl Action {
    pub const ALL: [Action; 26] = [
        Action::ViewBalance,
        Action::ViewItemisedStatement,
        Action::ViewStatementAmounts,
        Action::MakePayment,
        Action::ViewReceipt,
        Action::ViewOwnAccessLog,
        Action::InviteGuarantor,
        Action::RevokeGuarantor,
        Action::SearchPatients,
        Action::ViewAsPatient,
        Action::ResendPayLink,
        Action::ImportStatements,
        Action::ManageStaff,
        Action::ManageSmsSettings,
        Action::IssueRefund,
        Action::ExportReports,
        Action::ViewAuditLog,
        Action::VerifyAuditChain,
        Action::RunIncidentConsole,
        Action::GrantBreakGlass,
        Action::ManagePractices,
        Action::ViewCardDetails,
        Action::ConfigureActOnBehalf,
        Action::ViewMessages,
        Action::HandleMessages,
        Action::ChooseTexts,
    ];
}

/// A role held in one practice (staff), or over named patients (patients and guarantors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    /// The practice this grant is for. Platform admins hold grants with `None`: every practice.
    pub tenant: Option<TenantId>,
    /// For patients: themselves; for guarantors: the dependants they were invited for.
    pub patients: BTreeSet<PatientId>,
    /// Break-glass grants end on their own (unix seconds).
    pub expires_at: Option<i64>,
}

/// The person acting, as far as the policy needs to know.
#[derive(Clone, Debug, Default)]
pub struct Principal {
    pub user: String,
    pub grants: Vec<Grant>,
    /// Staff signed in with their second factor this session.
    pub mfa: bool,
    /// Support staff viewing as a patient: everything is read-only…
    pub impersonating: bool,
    /// …except a payment, where the practice turned "act on behalf" on (the HTTP layer also
    /// requires the patient's verbal consent to be noted first).
    pub acting_on_behalf: bool,
    /// Proven only by holding a pay link and knowing the date of birth and ZIP, which a parent
    /// or partner may know too: detail restricted from guarantors is restricted here as well.
    pub link_holder: bool,
}

impl Principal {
    /// Whoever holds a patient's pay link and answered its questions: the patient's own record
    /// only, and no detail the policy restricts (see `link_holder`). Also used by readers off
    /// the request path (benchmarks, tests) that must still ask the policy.
    pub fn patient_of(user: String, tenant: &TenantId, patient: &PatientId) -> Principal {
        Principal {
            user,
            grants: vec![Grant {
                role: Role::Patient,
                tenant: Some(tenant.clone()),
                patients: [patient.clone()].into(),
                expires_at: None,
            }],
            mfa: false,
            impersonating: false,
            acting_on_behalf: false,
            link_holder: true,
        }
    }
}

/// What is being acted on.
#[derive(Clone, Debug)]
pub struct Resource<'a> {
    pub tenant: &'a TenantId,
    /// The patient concerned, when there is one.
    pub patient: Option<&'a PatientId>,
    /// A line flagged confidential, or a dependant who is now an adult: billing scope only.
    pub clinical_restricted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(&'static str),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        *self == Decision::Allow
    }
}

/// What each role may do in its own scope. Everything not listed is denied.
fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Patient => matches!(
            action,
            ViewBalance
                | ViewItemisedStatement
                | ViewStatementAmounts
                | MakePayment
                | ViewReceipt
                | ViewOwnAccessLog
                | InviteGuarantor
                | RevokeGuarantor
                | ViewCardDetails
                | ChooseTexts
        ),
        Role::Guarantor => matches!(
            action,
            ViewBalance | ViewStatementAmounts | ViewItemisedStatement | MakePayment | ViewReceipt
        ),
        Role::SupportAgent => matches!(
            action,
            SearchPatients
                | ViewAsPatient
                | ResendPayLink
                | ViewBalance
                | ViewItemisedStatement
                | ViewStatementAmounts
                | ViewReceipt
                | ViewCardDetails
                | ViewMessages
                | HandleMessages
        ),
        Role::PracticeAdmin => matches!(
            action,
            SearchPatients
                | ViewAsPatient
                | ResendPayLink
                | ViewBalance
                | ViewItemisedStatement
                | ViewStatementAmounts
                | ViewReceipt
                | ImportStatements
                | ManageStaff
                | ManageSmsSettings
                | IssueRefund
                | ExportReports
                | InviteGuarantor
                | RevokeGuarantor
                | ViewCardDetails
                | ConfigureActOnBehalf
                | ViewMessages
                | HandleMessages
        ),
        Role::SecurityOfficer => matches!(
            action,
            ViewAuditLog | VerifyAuditChain | RunIncidentConsole | GrantBreakGlass
        ),
        Role::PlatformAdmin => matches!(action, ManagePractices | ManageStaff),
        Role::Auditor => matches!(action, ViewAuditLog | VerifyAuditChain),
    }
}

/// Actions that change something; refused while viewing as a patient.
fn is_write(action: Action) -> bool {
    use Action::*;
    matches!(
        action,
        MakePayment
            | InviteGuarantor
            | RevokeGuarantor
            | ResendPayLink
            | ImportStatements
            | ManageStaff
            | ManageSmsSettings
            | IssueRefund
            | GrantBreakGlass
            | ManagePractices
            | RunIncidentConsole
            | ConfigureActOnBehalf
            | HandleMessages
            | ChooseTexts
    )
}

tokio::task_local! {
    /// Policy decisions made while serving the current request (see `http::policy_guard`).
    static DECISIONS: std::cell::Cell<u32>;
}

/// Runs `f` counting the policy decisions it makes.
pub async fn counting_decisions<F: std::future::Future>(f: F) -> (F::Output, u32) {
    DECISIONS
        .scope(std::cell::Cell::new(0), async move {
            let out = f.await;
            (out, DECISIONS.with(|c| c.get()))
        })
        .await
}

/// The one policy function. Every handler asks it; nothing else decides access.
pub fn decide(who: &Principal, action: Action, on: &Resource<'_>, now: i64) -> Decision {
    let _ = DECISIONS.try_with(|c| c.set(c.get() + 1));
    if who.impersonating
        && is_write(action)
        && !(who.acting_on_behalf && action == Action::MakePayment)
    {
        return Decision::Deny("view-as is read-only");
    }
    let mut reason = "no grant for this action";
    for g in &who.grants {
        if g.expires_at.is_some_and(|t| now >= t) {
            reason = "grant expired";
            continue;
        }
        if !role_allows(g.role, action) {
            continue;
        }
        if g.role.is_staff() && !who.mfa {
            reason = "second factor required";
            continue;
        }
        match &g.tenant {
            Some(t) if t != on.tenant => {
                reason = "another practice";
                continue;
            }
            None if g.role != Role::PlatformAdmin => continue,
            _ => {}
        }
        if matches!(g.role, Role::Patient | Role::Guarantor) {
            let Some(p) = on.patient else {
                reason = "no patient named";
                continue;
            };
            if !g.patients.contains(p) {
                reason = "another patient";
                continue;
            }
            if (g.role == Role::Guarantor || who.link_holder)
                && action == Action::ViewItemisedStatement
                && on.clinical_restricted
            {
                reason = "clinical detail hidden from guarantors and pay-link holders";
                continue;
            }
        }
        return Decision::Allow;
    }
    Decision::Deny(reason)
}

/// Proof that the policy allowed one action on one practice's data (and, where named, one
/// patient's), and that the audit event for it was written. Functions that read PHI take one;
/// only `permit` makes them, so a handler that does not ask the policy cannot read PHI.
#[derive(Debug)]
#[must_use]
pub struct Permit {
    action: Action,
    tenant: TenantId,
    patient: Option<PatientId>,
}

impl Permit {
    pub fn action(&self) -> Action {
        self.action
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn patient(&self) -> Option<&PatientId> {
        self.patient.as_ref()
    }

    /// True when this permit is for `tenant` and (if it names one) for `patient`: readers check
    /// this before they decrypt, so a permit for one patient never opens another's record.
    pub fn covers(&self, tenant: &TenantId, patient: &PatientId) -> bool {
        &self.tenant == tenant && self.patient.as_ref().is_none_or(|p| p == patient)
    }

    /// True when the permit is for exactly this patient of this practice.
    pub fn covers_patient(&self, tenant: &TenantId, patient: &PatientId) -> bool {
        &self.tenant == tenant && self.patient.as_ref() == Some(patient)
    }
}

/// One question to the policy, with what the audit trail records about it.
#[derive(Clone, Debug)]
pub struct Ask<'a> {
    pub who: &'a Principal,
    pub actor: &'a crate::audit::Actor,
    pub action: Action,
    pub on: Resource<'a>,
    /// The audit event's stable dotted name (`statement.itemised.view`).
    pub event: &'static str,
    /// The opaque id of what is viewed or changed (never PHI).
    pub resource: Option<&'a str>,
    pub now: i64,
}

/// Why no permit was given.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("denied: {0}")]
    Denied(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Asks the policy and writes the audit event, allowed or denied, in one call, inside the
/// caller's transaction (so the event commits with the change it records). A view with no
/// transaction of its own uses `permit_view`.
pub async fn permit<'e, E>(exec: E, ask: Ask<'_>) -> Result<Permit, Refused>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let decision = decide(ask.who, ask.action, &ask.on, ask.now);
    crate::audit::record(exec, event_of(&ask, &decision)).await?;
    conclude(ask, decision)
}

/// `permit` for a view: the event goes to the group-commit writer, and the permit is given once
/// the event is durable (one commit shared with the other views waiting then).
pub async fn permit_view(log: &GroupWriter, ask: Ask<'_>) -> Result<Permit, Refused> {
    let decision = decide(ask.who, ask.action, &ask.on, ask.now);
    log.record(event_of(&ask, &decision)).await?;
    conclude(ask, decision)
}

fn event_of<'a>(ask: &'a Ask<'_>, decision: &Decision) -> crate::audit::Event<'a> {
    crate::audit::Event {
        actor: ask.actor,
        tenant: Some(ask.on.tenant),
        patient: ask.on.patient,
        action: ask.event,
        resource: ask.resource,
        outcome: match decision {
            Decision::Allow => crate::audit::Outcome::Success,
            Decision::Deny(_) => crate::audit::Outcome::Denied,
        },
    }
}

fn conclude(ask: Ask<'_>, decision: Decision) -> Result<Permit, Refused> {
    match decision {
        Decision::Allow => Ok(Permit {
            action: ask.action,
            tenant: ask.on.tenant.clone(),
            patient: ask.on.patient.cloned(),
        }),
        Decision::Deny(why) => Err(Refused::Denied(why)),
    }
}

/// `permit` for a change: the event is written inside a new write transaction, which comes back
/// with the permit so the change commits with it (dropped, both roll back: nothing happened).
/// A refusal's event is committed at once.
pub async fn permit_in(
    db: &crate::db::Db,
    ask: Ask<'_>,
) -> Result<(Permit, crate::db::WriteTx), Refused> {
    let mut tx = db.begin_write().await?;
    match permit(&mut *tx, ask).await {
        Ok(p) => Ok((p, tx)),
        Err(Refused::Denied(why)) => {
            tx.commit().await?;
            Err(Refused::Denied(why))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    struct World {
        home: TenantId,
        other: TenantId,
        me: PatientId,
        dependant: PatientId,
        stranger: PatientId,
    }

    fn world() -> World {
        World {
            home: TenantId::generate(),
            other: TenantId::generate(),
            me: PatientId::generate(),
            dependant: PatientId::generate(),
            stranger: PatientId::generate(),
        }
    }

    fn principal(w: &World, role: Role) -> Principal {
        let patients = match role {
            Role::Patient => [w.me.clone()].into(),
            Role::Guarantor => [w.dependant.clone()].into(),
            _ => BTreeSet::new(),
        };
        let tenant = (role != Role::PlatformAdmin).then(|| w.home.clone());
        Principal {
            user: format!("u-{}", role.as_str()),
            grants: vec![Grant {
                role,
                tenant,
                patients,
                expires_at: None,
            }],
            mfa: role.is_staff(),
            impersonating: false,
            acting_on_behalf: false,
            link_holder: false,
        }
    }

    /// The whole matrix: every role × every action, on the role's own patient in its own
    /// practice. `Y` allowed, `.` denied. Changing a permission means changing this table.
    const MATRIX: &[(Role, &str)] = &[
        //                     VB VI SA MP VR OL IG RG SP VP RL IS MS SM RF EX AL VC IC BG PR CD AB VM HM CT
        (
            Role::Patient,
            "Y  Y  Y  Y  Y  Y  Y  Y  .  .  .  .  .  .  .  .  .  .  .  .  .  Y  .  .  .  Y",
        ),
        (
            Role::Guarantor,
            "Y  Y  Y  Y  Y  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .",
        ),
        (
            Role::SupportAgent,
            "Y  Y  Y  .  Y  .  .  .  Y  Y  Y  .  .  .  .  .  .  .  .  .  .  Y  .  Y  Y  .",
        ),
        (
            Role::PracticeAdmin,
            "Y  Y  Y  .  Y  .  Y  Y  Y  Y  Y  Y  Y  Y  Y  Y  .  .  .  .  .  Y  Y  Y  Y  .",
        ),
        (
            Role::SecurityOfficer,
            ".  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  Y  Y  Y  Y  .  .  .  .  .  .",
        ),
        (
            Role::PlatformAdmin,
            ".  .  .  .  .  .  .  .  .  .  .  .  Y  .  .  .  .  .  .  .  Y  .  .  .  .  .",
        ),
        (
            Role::Auditor,
            ".  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  Y  Y  .  .  .  .  .  .  .  .",
        ),
    ];

    fn subject(w: &World, role: Role) -> &PatientId {
        if role == Role::Guarantor {
            &w.dependant
        } else {
            &w.me
        }
    }

    #[test]
    fn every_role_against_every_action() {
        let w = world();
        assert_eq!(MATRIX.len(), Role::ALL.len());
        for (role, row) in MATRIX {
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cells.len(), Action::ALL.len(), "row for {role:?}");
            let who = principal(&w, *role);
            for (action, cell) in Action::ALL.iter().zip(cells) {
                let on = Resource {
                    tenant: &w.home,
                    patient: Some(subject(&w, *role)),
                    clinical_restricted: false,
                };
                let got = decide(&who, *action, &on, 0).allowed();
                assert_eq!(got, cell == "Y", "{role:?} {action:?}");
                // Tenant isolation: nothing at all in another practice (platform admins excepted).
                let elsewhere = Resource {
                    tenant: &w.other,
                    patient: Some(subject(&w, *role)),
                    clinical_restricted: false,
                };
                let expected = cell == "Y" && *role == Role::PlatformAdmin;
                assert_eq!(
                    decide(&who, *action, &elsewhere, 0).allowed(),
                    expected,
                    "{role:?} {action:?} cross-tenant"
                );
                // Patients and guarantors: nothing about anyone else.
                if matches!(role, Role::Patient | Role::Guarantor) {
                    let stranger = Resource {
                        tenant: &w.home,
                        patient: Some(&w.stranger),
                        clinical_restricted: false,
                    };
                    assert!(
                        !decide(&who, *action, &stranger, 0).allowed(),
                        "{role:?} {action:?} cross-patient"
                    );
                }
            }
        }
    }

    #[test]
    fn staff_need_their_second_factor() {
        let w = world();
        for role in Role::ALL.into_iter().filter(|r| r.is_staff()) {
            let mut who = principal(&w, role);
            who.mfa = false;
            let on = Resource {
                tenant: &w.home,
                patient: Some(&w.me),
                clinical_restricted: false,
            };
            for action in Action::ALL {
                assert!(
                    !decide(&who, action, &on, 0).allowed(),
                    "{role:?} {action:?} without MFA"
                );
            }
        }
    }

    #[test]
    fn view_as_is_read_only_and_break_glass_expires() {
        let w = world();
        let mut agent = principal(&w, Role::SupportAgent);
        agent.impersonating = true;
        let on = Resource {
            tenant: &w.home,
            patient: Some(&w.me),
            clinical_restricted: false,
        };
        assert!(decide(&agent, ViewItemisedStatement, &on, 0).allowed());
        assert_eq!(
            decide(&agent, ResendPayLink, &on, 0),
            Decision::Deny("view-as is read-only")
        );
        // Viewing as the patient: their grant, read-only; act on behalf lets a payment only.
        let mut viewed = principal(&w, Role::Patient);
        viewed.impersonating = true;
        assert!(decide(&viewed, ViewBalance, &on, 0).allowed());
        for write in [MakePayment, InviteGuarantor, RevokeGuarantor] {
            assert_eq!(
                decide(&viewed, write, &on, 0),
                Decision::Deny("view-as is read-only")
            );
        }
        viewed.acting_on_behalf = true;
        assert!(decide(&viewed, MakePayment, &on, 0).allowed());
        assert!(!decide(&viewed, InviteGuarantor, &on, 0).allowed());

        let mut officer = principal(&w, Role::SecurityOfficer);
        officer.grants.push(Grant {
            role: Role::PracticeAdmin,
            tenant: Some(w.home.clone()),
            patients: BTreeSet::new(),
            expires_at: Some(100),
        });
        assert!(decide(&officer, IssueRefund, &on, 99).allowed());
        assert_eq!(
            decide(&officer, IssueRefund, &on, 100),
            Decision::Deny("grant expired")
        );
    }

    #[test]
    fn guarantors_see_amounts_not_restricted_clinical_detail() {
        let w = world();
        let g = principal(&w, Role::Guarantor);
        let restricted = Resource {
            tenant: &w.home,
            patient: Some(&w.dependant),
            clinical_restricted: true,
        };
        assert!(decide(&g, ViewStatementAmounts, &restricted, 0).allowed());
        assert!(!decide(&g, ViewItemisedStatement, &restricted, 0).allowed());
        let p = principal(&w, Role::Patient);
        let own = Resource {
            tenant: &w.home,
            patient: Some(&w.me),
            clinical_restricted: true,
        };
        assert!(
            decide(&p, ViewItemisedStatement, &own, 0).allowed(),
            "signed-in patients always see their own"
        );
        let holder = Principal::patient_of("link:l".into(), &w.home, &w.me);
        assert_eq!(
            decide(&holder, ViewItemisedStatement, &own, 0),
            Decision::Deny("clinical detail hidden from guarantors and pay-link holders"),
            "a pay link may be read by a parent: a confidential line is not shown"
        );
        assert!(decide(&holder, ViewStatementAmounts, &own, 0).allowed());
        let unrestricted = Resource {
            clinical_restricted: false,
            ..own
        };
        assert!(decide(&holder, ViewItemisedStatement, &unrestricted, 0).allowed());
    }
}
