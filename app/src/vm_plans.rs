//! View models of the member's payment-plans page. Texts arrive translated; a plan shows its
//! practice and amounts, a statement the patient's first name, its date and balance.

/// One instalment of a plan.
#[derive(Clone, Debug, Default)]
pub struct InstalmentVm {
    pub seq: i64,
    pub due: String,
    pub amount: String,
    /// Where it stands, in words ("Paid", "Scheduled", "Needs you").
    pub status: String,
    /// Why the member must pay it on the page, when they must.
    pub action: Option<String>,
}

/// One plan.
#[derive(Clone, Debug, Default)]
pub struct PlanVm {
    pub id: String,
    pub practice_name: String,
    pub status: String,
    /// Still running (active or suspended): it may be cancelled and its cap changed.
    pub open: bool,
    pub total: String,
    pub paid: String,
    /// "Visa ending 4242".
    pub card: String,
    pub every: String,
    /// The cap in plain dollars, for the cap form's value.
    pub cap: String,
    /// The notice of the next charge, once given ("$50.00 will be charged to … on …").
    pub upcoming: Option<String>,
    pub instalments: Vec<InstalmentVm>,
}

/// A statement that may go into a new plan.
#[derive(Clone, Debug, Default)]
pub struct PlanStatementVm {
    pub id: String,
    pub patient_name: String,
    pub practice_name: String,
    pub statement_date: String,
    pub balance: String,
}

/// The plans page.
#[derive(Clone, Debug, Default)]
pub struct PlansVm {
    pub csrf: String,
    pub plans: Vec<PlanVm>,
    /// Statements with a balance, not in a plan, that the member may pay.
    pub statements: Vec<PlanStatementVm>,
    /// Saved cards as (processor id, "Visa ending 4242").
    pub cards: Vec<(String, String)>,
    /// The instalment counts offered.
    pub counts: Vec<u32>,
    /// (value, label) of each schedule offered.
    pub schedules: Vec<(String, String)>,
    /// The practice's rules, in words ("Each instalment at least $25.00 …").
    pub rules: Option<String>,
    pub notice: Option<String>,
    pub failure: Option<String>,
}
