//! Unit tests of `vm`.

use super::*;

#[test]
fn phi_is_redacted_in_debug() {
    let vm = AccountHomeVm {
        email: "dana@example.org".into(),
        can_invite: vec![("pt_1".into(), "Dana".into())],
        groups: vec![HouseholdGroupVm {
            patient_name: "Dana".into(),
            statements: vec![OpenStatementVm {
                id: "st_1".into(),
                patient_name: "Dana".into(),
                balance: "$10.00".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        guarantors: vec![GuarantorVm {
            grant_id: "7".into(),
            email: "gus@example.org".into(),
            patient_name: "Dana".into(),
            since: "Jan 2, 2026".into(),
        }],
        ..Default::default()
    };
    let shown = format!("{vm:?}");
    for phi in [
        "dana@example.org",
        "Dana",
        "gus@example.org",
        "pay.example/g/tok",
    ] {
        assert!(!shown.contains(phi), "{phi} in {shown}");
    }
    assert!(shown.starts_with("AccountHomeVm {"), "{shown}");
    assert!(shown.contains("email: [redacted]"), "{shown}");
    // What is not PHI still helps debugging.
    assert!(
        shown.contains("\"st_1\"") && shown.contains("$10.00"),
        "{shown}"
    );
    let line = format!(
        "{:?}",
        StatementLineVm {
            detail: Some(LineDetailVm {
                service_date: "2026-01-05".into(),
                description: "Office visit".into(),
            }),
            amounts: AmountsVm {
                charge: "$1.00".into(),
                ..Default::default()
            },
        }
    );
    assert_eq!(
        line,
        "StatementLineVm { detail: Some(LineDetailVm { service_date: [redacted], \
         description: [redacted] }), amounts: AmountsVm { charge: \"$1.00\", \
         insurance_paid: \"\", adjustment: \"\", responsibility: \"\" } }"
    );
}
