//! Re-keying: blind-index rotation and encrypted break-glass reasons (issue 9).
