//! View models of the member's saved-cards page (kept apart from `vm` so it stays small). No
//! PHI: a card is shown by brand, last four digits and expiry.

/// One saved card as the page shows it.
#[derive(Clone, Debug, Default)]
pub struct SavedCardVm {
    /// The processor's opaque payment-method id (the remove form's value).
    pub id: String,
    pub brand: String,
    pub last4: String,
    /// `MM/YYYY`.
    pub expiry: String,
}

/// The saved-cards page.
#[derive(Clone, Debug, Default)]
pub struct CardsVm {
    pub csrf: String,
    pub cards: Vec<SavedCardVm>,
    /// A message carried over from the last step (saved, removed, not saved).
    pub notice: Option<String>,
    /// A refusal from the last step (a card that is not theirs, the processor unreachable).
    pub failure: Option<String>,
}

/// `MM/YYYY` for a card's expiry.
pub fn expiry(month: u8, year: i32) -> String {
    format!("{month:02}/{year:04}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiry_is_two_digit_month_and_full_year() {
        assert_eq!(super::expiry(3, 2034), "03/2034");
        assert_eq!(super::expiry(12, 2030), "12/2030");
    }
}
