//! The sandbox's disputes, made and decided by hooks for tests and demos as a card holder's bank
//! would: opened on a succeeded payment (`charge.dispute.created`), closed as won or lost
//! (`charge.dispute.closed`), each change and its event in one transaction.

use super::objects::dispute_json;
use super::store::{self, DisputeRow};
use super::{outbox, sandbox_id, Sandbox};
use std::sync::Arc;

impl Sandbox {
    /// Opens a dispute on payment `payment` for its whole amount, as a card holder's bank would,
    /// and sends `charge.dispute.created`. Tests and demos only; `None` if there is no such
    /// succeeded payment or it is disputed already.
    pub async fn open_dispute(self: &Arc<Self>, payment: &str) -> Option<String> {
        let opened = async {
            let mut tx = self.db.begin_write().await?;
            let Some(p) = store::payment(&mut tx, payment).await? else {
                return Ok(None);
            };
            let id = sandbox_id("dp");
            if !store::set_dispute(&mut tx, payment, &id).await? {
                return Ok(None);
            }
            let d = DisputeRow {
                id: id.clone(),
                payment_id: p.id.clone(),
                amount_cents: p.amount_cents,
                currency: p.currency.clone(),
                status: "needs_response".into(),
                reason: "fraudulent".into(),
                created: crate::clock::now_unix(),
            };
            store::insert_dispute(&mut tx, &d).await?;
            let event = outbox::write(
                &mut tx,
                "charge.dispute.created",
                dispute_json(&d),
                d.created,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some((id, event)))
        };
        let (id, event) = opened.await.ok().flatten()?;
        self.deliver_now(&[event]).await;
        Some(id)
    }

    /// Closes open dispute `id` as the bank decided (`won` true: the money stays with the
    /// merchant) and sends `charge.dispute.closed`. Tests and demos only; false if there is no
    /// such dispute or it is closed already.
    pub async fn close_dispute(&self, id: &str, won: bool) -> bool {
        let closed = async {
            let mut tx = self.db.begin_write().await?;
            if !store::close_dispute(&mut tx, id, if won { "won" } else { "lost" }).await? {
                return Ok(None);
            }
            let Some(d) = store::dispute(&mut tx, id).await? else {
                return Ok(None);
            };
            let at = crate::clock::now_unix();
            let event =
                outbox::write(&mut tx, "charge.dispute.closed", dispute_json(&d), at).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(event))
        };
        match closed.await {
            Ok(Some(event)) => {
                self.deliver_now(&[event]).await;
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox could not close a dispute");
                false
            }
        }
    }
}
