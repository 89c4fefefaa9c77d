//! Identifier newtypes: opaque, random, prefixed by kind, so ids can't be mixed up or guessed.

use rand::RngCore;
use std::fmt;

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: the prefix and 128 random bits in hex.
            pub fn generate() -> Self {
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                Self(format!("{}_{}", $prefix, hex::encode(bytes)))
            }

            /// Accepts only the exact shape `generate` makes; anything else from outside is refused.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                (rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| Self(s.to_owned()))
            }

            /// Wraps a value read back from our own database.
            pub fn from_db(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        // Rows decode ids straight into the newtype; values in our own database were made by
        // `generate`.
        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(
                value: sqlx::any::AnyValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(Self(<String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(TenantId, "ten");
id_type!(PatientId, "pat");
id_type!(StatementId, "stm");
id_type!(LineId, "lin");
id_type!(LinkId, "lnk");
id_type!(CheckoutId, "chk");
id_type!(PaymentId, "pay");
id_type!(UserId, "usr");
id_type!(InvitationId, "inv");
id_type!(RefundId, "rfd");
id_type!(DisputeId, "dsp");
id_type!(CardSetupId, "cst");
id_type!(PlanId, "pln");
id_type!(UnlockId, "ulk");
id_type!(AlertNoteId, "aln");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_generated_shape() {
        let id = PatientId::generate();
        assert_eq!(PatientId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(
            StatementId::parse(id.as_str()),
            None,
            "prefix must match the kind"
        );
        assert_eq!(PatientId::parse("pat_../../etc"), None);
        assert_eq!(PatientId::parse(&id.as_str().to_uppercase()), None);
    }
}
