//! Money: exact integer cents, parsed from what a patient types and formatted for display.

use std::fmt;

/// An amount in US cents. Never a float; arithmetic is checked by the callers that need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a typed amount was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    Empty,
    Format,
    Negative,
    Zero,
    OverBalance,
    NothingDue,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_cents(cents: i64) -> Self {
        Money(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Parses a dollar amount as typed: `25`, `25.5`, `25.50`, `$1,025.50`, surrounding spaces.
    /// More than two decimals, exponents, signs other than a leading minus, or anything
    /// non-numeric is a format error; no rounding ever happens.
    pub fn parse_dollars(input: &str) -> Result<Money, AmountError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, s),
        };
        let s = s.strip_prefix('$').unwrap_or(s).trim_start();
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        let whole = parse_grouped(whole).ok_or(AmountError::Format)?;
        let frac_cents = match frac {
            None => 0,
            Some(f) if f.is_empty() || f.len() > 2 || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(AmountError::Format)
            }
            Some(f) => {
                let v: i64 = f.parse().map_err(|_| AmountError::Format)?;
                if f.len() == 1 {
                    v * 10
                } else {
                    v
                }
            }
        };
        let cents = whole
            .checked_mul(100)
            .and_then(|c| c.checked_add(frac_cents))
            .ok_or(AmountError::Format)?;
        if negative && cents > 0 {
            return Err(AmountError::Negative);
        }
        Ok(Money(cents))
    }

    /// Parses and checks a payment amount against the balance due: more than zero, at most
    /// the balance.
    pub fn parse_payment(input: &str, balance: Money) -> Result<Money, AmountError> {
        if !balance.is_positive() {
            return Err(AmountError::NothingDue);
        }
        let amount = Money::parse_dollars(input)?;
        if amount.0 == 0 {
            return Err(AmountError::Zero);
        }
        if amount > balance {
            return Err(AmountError::OverBalance);
        }
        Ok(amount)
    }

    /// `182.40`: the plain form used to pre-fill an input.
    pub fn plain(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

/// Digits with optional thousands commas in the usual places (`1,025`); `None` otherwise.
fn parse_grouped(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    if s.contains(',') {
        let mut groups = s.split(',');
        let first = groups.next()?;
        if first.is_empty() || first.len() > 3 {
            return None;
        }
        if !groups.clone().all(|g| g.len() == 3) {
            return None;
        }
    }
    let digits: String = s.chars().filter(|c| *c != ',').collect();
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

// Amounts are stored as integer cents; rows decode them straight into `Money`.
impl sqlx::Type<sqlx::Any> for Money {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Any>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Money {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Money::from_cents(
            <i64 as sqlx::Decode<'r, sqlx::Any>>::decode(value)?,
        ))
    }
}

impl fmt::Display for Money {
    /// `$1,025.50`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let dollars = (abs / 100).to_string();
        let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
        for (i, ch) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "{sign}${grouped}.{:02}", abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_cents() {
        assert_eq!(Money::parse_dollars("25"), Ok(Money(2500)));
        assert_eq!(Money::parse_dollars(" 25.5 "), Ok(Money(2550)));
        assert_eq!(Money::parse_dollars("$1,025.05"), Ok(Money(102505)));
        assert_eq!(Money::parse_dollars("0.01"), Ok(Money(1)));
        assert_eq!(Money::parse_dollars("0"), Ok(Money(0)));
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "abc", "1.234", "1e3", "1.", ".", "12,34", "1,0000", "NaN", "１２", "1 000", "+5", "$",
        ] {
            assert_eq!(Money::parse_dollars(bad), Err(AmountError::Format), "{bad}");
        }
        assert_eq!(Money::parse_dollars(""), Err(AmountError::Empty));
        assert_eq!(Money::parse_dollars("-5"), Err(AmountError::Negative));
        assert_eq!(Money::parse_dollars("-$0.01"), Err(AmountError::Negative));
        assert_eq!(
            Money::parse_dollars("99999999999999999"),
            Err(AmountError::Format)
        );
    }

    #[test]
    fn payment_is_bounded_by_balance() {
        let bal = Money(18240);
        assert_eq!(Money::parse_payment("182.40", bal), Ok(bal));
        assert_eq!(
            Money::parse_payment("182.41", bal),
            Err(AmountError::OverBalance)
        );
        assert_eq!(Money::parse_payment("0.00", bal), Err(AmountError::Zero));
        assert_eq!(Money::parse_payment("-1", bal), Err(AmountError::Negative));
        assert_eq!(
            Money::parse_payment("1", Money::ZERO),
            Err(AmountError::NothingDue)
        );
    }

    #[test]
    fn formats() {
        assert_eq!(Money(102505).to_string(), "$1,025.05");
        assert_eq!(Money(5).to_string(), "$0.05");
        assert_eq!(Money(123456789).to_string(), "$1,234,567.89");
        assert_eq!(Money(-250).to_string(), "-$2.50");
        assert_eq!(Money(18240).plain(), "182.40");
    }
}

/// What a patient types into the amount box comes from the internet: no input panics, every
/// amount the portal displays parses back to itself, and what parses is exact cents.
#[cfg(test)]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    /// Every amount `parse_dollars` can accept: up to twelve whole-dollar digits.
    const MAX_CENTS: i64 = 99_999_999_999_999;

    proptest! {
        #[test]
        fn any_input_is_answered_without_panic(input in ".{0,64}", balance in any::<i64>()) {
            let _ = Money::parse_dollars(&input);
            let _ = Money::parse_payment(&input, Money(balance));
        }

        #[test]
        fn numeric_looking_input_is_answered_without_panic(input in "[-$ ]{0,3}[0-9,]{0,20}(\\.[0-9]{0,4})?") {
            if let Ok(m) = Money::parse_dollars(&input) {
                prop_assert!(m.cents() >= 0);
            }
        }

        #[test]
        fn display_and_plain_parse_back(cents in 0..=MAX_CENTS) {
            let m = Money(cents);
            prop_assert_eq!(Money::parse_dollars(&m.to_string()), Ok(m));
            prop_assert_eq!(Money::parse_dollars(&m.plain()), Ok(m));
            prop_assert_eq!(Money::parse_dollars(&format!("  {}  ", m.plain())), Ok(m));
        }

        #[test]
        fn negative_amounts_are_refused(cents in 1..=MAX_CENTS) {
            prop_assert_eq!(
                Money::parse_dollars(&Money(-cents).to_string()),
                Err(AmountError::Negative)
            );
        }

        #[test]
        fn a_payment_is_positive_and_within_the_balance(input in ".{0,24}", balance in any::<i64>()) {
            if let Ok(m) = Money::parse_payment(&input, Money(balance)) {
                prop_assert!(m.is_positive() && m <= Money(balance));
            }
        }

        #[test]
        fn whole_dollars_and_cents_are_exact(dollars in 0..=999_999_999_999i64, cents in 0..100i64) {
            let typed = format!("{dollars}.{cents:02}");
            prop_assert_eq!(Money::parse_dollars(&typed), Ok(Money(dollars * 100 + cents)));
        }
    }
}
