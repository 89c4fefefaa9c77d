//! The `Phi<T>` wrapper: protected health information that never prints itself.

use std::fmt;

/// Holds a PHI value. `Debug` and `Display` redact, so a stray `{:?}` in a log line or an
/// error leaks nothing; reading the value takes an explicit `expose()`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Phi<T>(T);

impl<T> Phi<T> {
    pub fn new(value: T) -> Self {
        Phi(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phi([redacted])")
    }
}

impl<T> fmt::Display for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let p = Phi::new("Jane Canary".to_string());
        assert_eq!(format!("{p:?} {p}"), "Phi([redacted]) [redacted]");
        assert_eq!(p.expose(), "Jane Canary");
    }
}
