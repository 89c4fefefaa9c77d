//! A new or changed statement's pay-link text, queued in the import's transaction (a dry run or a refused
//! file sends nothing): to the patient's mobile number, in their language, after quiet hours in
//! their zone, and only with the number's consent. A number the practice sends in for the first
//! time is recorded in the consent ledger as given by the practice ("import"); a number that
//! opted out gets a suppressed row (the console shows why nothing went) and no text.

use super::{Importer, StoreError};
use crate::ids::{PatientId, StatementId};
use crate::intake::ParsedStatement;
use crate::messages::consent::{self, Standing};
use crate::messages::quiet::{self, Window};
use crate::messages::{self, texts, Channel, Outgoing, Purpose};
use std::collections::HashSet;

impl From<messages::MessageError> for StoreError {
    fn from(e: messages::MessageError) -> Self {
        match e {
            messages::MessageError::Db(d) => StoreError::Db(d),
            messages::MessageError::Crypto(c) => StoreError::Crypto(c),
        }
    }
}

impl Importer {
    /// A fresh pay link for each changed statement (its older live links revoked, as staff's
    /// "send a new link" does): the tokens, in the order of `statements`.
    pub(super) async fn relink(
        &mut self,
        statements: &[(StatementId, PatientId, usize)],
    ) -> Result<Vec<String>, StoreError> {
        let mut tokens = Vec::with_capacity(statements.len());
        for (id, _, _) in statements {
            sqlx::query(
                "UPDATE pay_links SET revoked_at = $1
                 WHERE statement_id = $2 AND revoked_at IS NULL AND expires_at > $1",
            )
            .bind(self.now)
            .bind(id.as_str())
            .execute(&mut *self.tx)
            .await?;
            let token = crate::crypto::random_token();
            sqlx::query(
                "INSERT INTO pay_links (id, tenant_id, statement_id, token_hash, created_at,
                     expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(crate::ids::LinkId::generate().as_str())
            .bind(self.tenant.as_str())
            .bind(id.as_str())
            .bind(crate::crypto::token_hash(&token))
            .bind(self.now)
            .bind(self.now + super::NEW_LINK_DAYS * 86_400)
            .execute(&mut *self.tx)
            .await?;
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// Queues the text of each new or changed statement (`new`, with its link's token in
    /// `tokens`).
    pub(super) async fn queue_texts(
        &mut self,
        batch: &[ParsedStatement],
        new: &[(StatementId, PatientId, usize)],
        tokens: Vec<String>,
    ) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut phones = Vec::with_capacity(new.len());
        for (_, _, at) in new {
            let phone = crate::billing::normalize_phone(batch[*at].patient.mobile_phone.expose());
            let bidx = self.bidx(messages::BIDX_PHONE, &phone).await?;
            phones.push(bidx);
        }
        let distinct: Vec<&[u8]> = phones
            .iter()
            .map(Vec::as_slice)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut standing = consent::standings(&mut self.tx, &self.tenant, &distinct).await?;
        let mut texted = messages::texted_before(&mut self.tx, &self.tenant, &distinct).await?;
        let mut consents = vec![];
        let mut sealed = Vec::with_capacity(new.len());
        for (((statement, patient, at), token), bidx) in new.iter().zip(tokens).zip(phones) {
            let p = &batch[*at].patient;
            let to = p.mobile_phone.clone();
            if standing.get(&bidx) == Some(&Standing::Unknown) {
                consents.push(
                    consent::seal(
                        &self.crypto,
                        &self.tenant,
                        &to,
                        bidx.clone(),
                        true,
                        consent::IMPORT_WORDING,
                        consent::Source::Import,
                        self.now,
                    )
                    .await?,
                );
                standing.insert(bidx.clone(), Standing::OptedIn);
            }
            let opted_out = standing.get(&bidx) == Some(&Standing::OptedOut);
            let first = !texted.contains(&bidx);
            let (zone, _) = quiet::recipient_zone(Some(p.zip.expose()), to.expose());
            let link = messages::pay_link_url(&self.public_url, &token);
            let body = self
                .wording
                .text(texts::PAY_LINK, p.preferred_language, &link, first);
            let message = Outgoing {
                tenant: self.tenant.clone(),
                channel: Channel::Sms,
                purpose: Purpose::Billing,
                template: texts::PAY_LINK,
                language: p.preferred_language,
                to,
                to_index: bidx.clone(),
                subject: None,
                body,
                zone: zone.map(|z| z.iana()),
                patient: Some(patient.clone()),
                statement: Some(statement.clone()),
                not_before: quiet::next_allowed(zone, self.now, Window::default()),
            };
            let one = messages::seal(&self.crypto, message).await?;
            sealed.push(if opted_out {
                one.suppress()
            } else {
                texted.insert(bidx);
                one
            });
        }
        consent::append_first(&mut self.tx, &consents).await?;
        messages::queue_many(&mut self.tx, &sealed, self.now).await?;
        Ok(())
    }
}
