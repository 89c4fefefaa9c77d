//! Patient and guarantor accounts over HTTP, on SQLite and PostgreSQL, one module per feature:
//! patient accounts, guarantor invitations, the household page, one payment for several
//! statements, revocation, the member/staff role matrix, and CSRF on every new form.

mod accounts;
mod csrf;
mod invitations;
mod page;
mod pay;
mod recovery;
mod revocation;
mod role_matrix;
mod signup;
