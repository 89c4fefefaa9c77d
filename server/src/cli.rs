//! Subcommands whose work lives in the library (main.rs dispatches to them): API keys. Each
//! prints for an operator and writes the audit event a staff page would.

use crate::apikeys;
use crate::audit::{self, Actor, Outcome};
use crate::config::{ApikeysCommand, Config};
use crate::ids::TenantId;

fn practice(raw: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(raw.trim())
        .ok_or_else(|| anyhow::anyhow!("{raw:?} is not a practice id (ten_…)"))
}

fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "never".to_owned(), crate::clock::display_date_unix)
}

/// `patriotpay apikeys …`.
pub async fn apikeys(cfg: &Config, action: ApikeysCommand) -> anyhow::Result<()> {
    let (db, _crypto) = crate::open_storage(cfg).await?;
    let now = crate::clock::now_unix();
    let event = |tenant: TenantId, action: &'static str, id: String| {
        let db = db.clone();
        async move {
            audit::record(
                db.pool(),
                audit::Event {
                    actor: &Actor::system("cli"),
                    tenant: Some(&tenant),
                    patient: None,
                    action,
                    resource: Some(&id),
                    outcome: Outcome::Success,
                },
            )
            .await
        }
    };
    match action {
        ApikeysCommand::Create { practice: p, label } => {
            let tenant = practice(&p)?;
            let (id, key) = apikeys::create(&db, &tenant, &label, "cli", now).await?;
            event(tenant, "apikey.create", id.clone()).await?;
            println!("API key {id} for {p} (statement import). It is shown this once: keep it in");
            println!("the billing system's secret store; lost, revoke it and make another.");
            println!("{key}");
        }
        ApikeysCommand::List { practice: p } => {
            let tenant = practice(&p)?;
            let keys = apikeys::list(&db, &tenant).await?;
            for k in &keys {
                let state = match k.revoked_at {
                    Some(t) => format!("revoked {}", when(Some(t))),
                    None => "live".to_owned(),
                };
                println!(
                    "{}  {}…  {:?}  made {} by {}  last used {}  {state}",
                    k.id,
                    k.prefix,
                    k.label,
                    when(Some(k.created_at)),
                    k.created_by,
                    when(k.last_used_at)
                );
            }
            println!("{} key(s).", keys.len());
        }
        ApikeysCommand::Revoke { practice: p, id } => {
            let tenant = practice(&p)?;
            anyhow::ensure!(
                apikeys::revoke(&db, &tenant, id.trim(), now).await?,
                "practice {p} has no live key {id}"
            );
            event(tenant, "apikey.revoke", id.clone()).await?;
            println!("Key {id} revoked: requests presenting it are refused from now on.");
        }
    }
    Ok(())
}
