//! PatriotPay's user interface: server-rendered Leptos pages that take plain view models.
#![forbid(unsafe_code)]

pub mod account;
pub mod check_link;
pub mod dev_outbox;
pub mod forms;
pub mod i18n;
pub mod pages;
pub mod pictures;
pub mod staff;
pub mod staff_alerts;
pub mod staff_api_keys;
pub mod staff_audit;
pub mod staff_console;
pub mod staff_import;
pub mod staff_messages;
pub mod staff_messaging;
pub mod staff_settings;
pub mod urls;
pub mod vm;
pub mod vm_alerts;
pub mod vm_api_keys;
pub mod vm_audit;
pub mod vm_cards;
pub mod vm_console;
pub mod vm_import;
pub mod vm_invite;
pub mod vm_messages;
pub mod vm_plans;
pub mod vm_record_views;
pub mod vm_view_as;

pub use i18n::{Lang, Tr};
pub use urls::Url;
