//! View models of the practice admin's API-keys page.

use std::fmt;

/// The page: each practice the admin manages, its keys and the form to make one.
#[derive(Clone, Debug, Default)]
pub struct ApiKeysVm {
    pub csrf: String,
    pub notice: Option<String>,
    /// A form error (the label), for the practice it was typed for.
    pub error: Option<(String, String)>,
    pub practices: Vec<ApiKeyPracticeVm>,
    /// A key just made: shown in this response only.
    pub new_key: Option<NewKeyVm>,
}

#[derive(Clone, Debug, Default)]
pub struct ApiKeyPracticeVm {
    pub id: String,
    pub name: String,
    pub keys: Vec<ApiKeyVm>,
}

/// One key as lists show it (never the key itself).
#[derive(Clone, Debug, Default)]
pub struct ApiKeyVm {
    pub id: String,
    pub label: String,
    /// "ppk_Ab3dEf…"
    pub prefix: String,
    pub created: String,
    pub last_used: String,
    /// `None` while live.
    pub revoked: Option<String>,
    /// When a security rotation ends the key ("2026-11-30 21:04 UTC").
    pub refused_from: Option<String>,
    /// That time has passed.
    pub expired: bool,
}

/// A key made just now, with what it is for.
#[derive(Clone, Default)]
pub struct NewKeyVm {
    pub label: String,
    pub key: String,
}

impl fmt::Debug for NewKeyVm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKeyVm")
            .field("label", &self.label)
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}
