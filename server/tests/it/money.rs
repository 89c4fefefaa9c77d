//! Money safety: amounts that do not match, processor races and forgotten checkouts (issue 9).
