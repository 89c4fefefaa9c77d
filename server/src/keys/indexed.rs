//! The tables with blind-index columns, and how each column's input is read from a row's
//! decrypted values: what `keys rotate-index` recomputes.

use super::*;

/// A table with blind-index columns and how `keys rotate-index` makes their values again under
/// a new index key.
#[derive(Clone, Copy)]
pub struct IndexedTable {
    pub table: &'static str,
    /// Whose index key: the row's practice, or the platform's.
    pub scope: Scope,
    /// The blind-index columns (each `Source::Sealed` input function returns one input per
    /// column, in this order).
    pub columns: &'static [&'static str],
    pub source: IndexSource,
    /// Which of the table's rows carry these columns (SQL over the table's own columns):
    /// `"1 = 1"` for all.
    pub rows: &'static str,
}

/// From a row's decrypted columns, each index column's (domain, normalised input).
pub type IndexInputs = fn(&[&str]) -> Option<Vec<(&'static str, String)>>;

/// Where a blind-index column's new values come from.
#[derive(Clone, Copy)]
pub enum IndexSource {
    /// Recomputed from the row's own ciphertexts (text ids): the (SQL column, column bound into
    /// the ciphertext) pairs to open, and from their plaintexts, in that order, each index
    /// column's (domain, normalised input), or `None` if the row is not as expected.
    Sealed {
        reads: &'static [(&'static str, &'static str)],
        inputs: IndexInputs,
    },
    /// A copy of another table's index column (sign-in failures are keyed by the email index an
    /// account has, or would have): re-keyed through that column's old → new values. A copy
    /// naming no account cannot be recomputed (no email is kept) and is deleted at the switch.
    CopyOf {
        table: &'static str,
        column: &'static str,
    },
}

fn patient_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [phone, last_name, dob, account] => {
            Some(crate::billing::patient_index_inputs(phone, last_name, dob, account).to_vec())
        }
        _ => None,
    }
}

fn external_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [external] => Some(vec![crate::intake::store::external_index_input(external)]),
        _ => None,
    }
}

/// A message's recipient: a number (E.164, as patients' phones are indexed) or an email address
/// (as accounts' are).
fn recipient_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [to] if to.starts_with('+') => Some(vec![(
            crate::messages::BIDX_PHONE,
            crate::billing::normalize_phone(to),
        )]),
        [to] => Some(vec![crate::accounts::email_index_input(to)]),
        _ => None,
    }
}

fn phone_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [phone] => Some(vec![(
            crate::messages::BIDX_PHONE,
            crate::billing::normalize_phone(phone),
        )]),
        _ => None,
    }
}

fn email_inputs(p: &[&str]) -> Option<Vec<(&'static str, String)>> {
    match p {
        [email] => Some(vec![crate::accounts::email_index_input(email)]),
        _ => None,
    }
}

/// Every blind-index column of the database (a test checks the migrations have no other).
pub const INDEXED: &[IndexedTable] = &[
    IndexedTable {
        table: "patients",
        scope: Scope::Practice,
        columns: &["phone_bidx", "name_dob_bidx", "account_bidx"],
        source: IndexSource::Sealed {
            reads: &[
                ("phone_ct", "phone"),
                ("last_name_ct", "last_name"),
                ("dob_ct", "dob"),
                ("account_number_ct", "account_number"),
            ],
            inputs: patient_inputs,
        },
        rows: "1 = 1",
    },
    // An imported patient's record number in the practice's billing system (statement import
    // matches patients on it); patients made otherwise have none.
    IndexedTable {
        table: "patients",
        scope: Scope::Practice,
        columns: &["external_bidx"],
        source: IndexSource::Sealed {
            reads: &[("external_id_ct", "external_id")],
            inputs: external_inputs,
        },
        rows: "patients.external_id_ct IS NOT NULL",
    },
    // Messages, found by recipient (a patient's messages in the console, a number's texts).
    IndexedTable {
        table: "outbox",
        scope: Scope::Practice,
        columns: &["recipient_bidx"],
        source: IndexSource::Sealed {
            reads: &[("recipient_ct", "recipient")],
            inputs: recipient_inputs,
        },
        rows: "1 = 1",
    },
    // Replies, found by the number they came from.
    IndexedTable {
        table: "inbound_messages",
        scope: Scope::Practice,
        columns: &["from_bidx"],
        source: IndexSource::Sealed {
            reads: &[("from_ct", "from")],
            inputs: phone_inputs,
        },
        rows: "1 = 1",
    },
    // The consent ledger: an opt-out must still be found after the key changes.
    IndexedTable {
        table: "sms_consents",
        scope: Scope::Practice,
        columns: &["phone_bidx"],
        source: IndexSource::Sealed {
            reads: &[("phone_ct", "phone")],
            inputs: phone_inputs,
        },
        rows: "1 = 1",
    },
    IndexedTable {
        table: "users",
        scope: Scope::Platform,
        columns: &["email_index"],
        source: IndexSource::Sealed {
            reads: &[("email_ct", "email")],
            inputs: email_inputs,
        },
        rows: "1 = 1",
    },
    IndexedTable {
        table: "login_failures",
        scope: Scope::Platform,
        columns: &["email_index"],
        source: IndexSource::CopyOf {
            table: "users",
            column: "email_index",
        },
        rows: "1 = 1",
    },
];
