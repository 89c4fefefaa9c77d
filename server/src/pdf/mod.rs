//! Statements and receipts as PDF files: US Letter pages drawn from the view models the pages
//! show, in the reader's language, with Liberation Sans embedded (subset, so files stay small
//! and every accent prints) and the text left selectable. Written by hand over `krilla` because
//! no crate lays out a document like this without a browser; the layout is a few dozen lines.

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::Document;
use patriotpay_app::vm::{
    AccountReceiptVm, AccountStatementVm, CardVm, PaymentStatusVm, ReceiptVm, RefundLineVm,
    StatementVm,
};
use patriotpay_app::Tr;
use skrifa::{prelude::Size, MetadataProvider};
use std::sync::OnceLock;

static REGULAR: &[u8] = include_bytes!("../../fonts/LiberationSans-Regular.ttf");
static BOLD: &[u8] = include_bytes!("../../fonts/LiberationSans-Bold.ttf");

/// US Letter, in points.
const PAGE_W: f32 = 612.0;
const PAGE_H: f32 = 792.0;
const MARGIN: f32 = 54.0;
/// Where text stops and the footer begins.
const BOTTOM: f32 = PAGE_H - 72.0;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font could not be read")]
    Font,
    #[error("the PDF could not be written: {0}")]
    Write(String),
}

/// One embedded face: its bytes (for widths) and krilla's handle.
struct Face {
    data: &'static [u8],
    font: Font,
}

struct Faces {
    regular: Face,
    bold: Face,
}

fn faces() -> Result<&'static Faces, PdfError> {
    static FACES: OnceLock<Option<Faces>> = OnceLock::new();
    FACES
        .get_or_init(|| {
            Some(Faces {
                regular: Face {
                    data: REGULAR,
                    font: Font::new(REGULAR.into(), 0)?,
                },
                bold: Face {
                    data: BOLD,
                    font: Font::new(BOLD.into(), 0)?,
                },
            })
        })
        .as_ref()
        .ok_or(PdfError::Font)
}

/// The glyphs of `text` in `face` with their advances (in ems), and the width in ems. Latin
/// text needs no shaping; a character the font lacks draws as its empty box.
fn glyphs(face: &Face, text: &str) -> Result<(Vec<KrillaGlyph>, f32), PdfError> {
    let f = skrifa::FontRef::new(face.data).map_err(|_| PdfError::Font)?;
    let cmap = f.charmap();
    let metrics = f.glyph_metrics(Size::new(1.0), skrifa::instance::LocationRef::default());
    let mut width = 0.0;
    let out = text
        .char_indices()
        .map(|(i, c)| {
            let gid = cmap.map(c).unwrap_or_default();
            let advance = metrics.advance_width(gid).unwrap_or(0.0);
            width += advance;
            KrillaGlyph::new(
                GlyphId::new(gid.to_u32()),
                advance,
                0.0,
                0.0,
                0.0,
                i..i + c.len_utf8(),
                None,
            )
        })
        .collect();
    Ok((out, width))
}

fn width(face: &Face, text: &str, size: f32) -> Result<f32, PdfError> {
    Ok(glyphs(face, text)?.1 * size)
}

/// What a page holds, laid out before anything is drawn (so the footer can say "1 of 3").
enum Item {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        text: String,
    },
    Rule {
        y: f32,
        weight: f32,
    },
}

/// Lays out lines top to bottom, starting a new page when one is full.
struct Layout {
    pages: Vec<Vec<Item>>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Layout {
            pages: vec![vec![]],
            y: MARGIN,
        }
    }

    /// Room for `height` more points on this page, or a new page.
    fn room(&mut self, height: f32) {
        if self.y + height > BOTTOM {
            self.pages.push(vec![]);
            self.y = MARGIN;
        }
    }

    fn push(&mut self, item: Item) {
        if let Some(page) = self.pages.last_mut() {
            page.push(item);
        }
    }

    fn text_at(&mut self, x: f32, size: f32, bold: bool, text: &str) {
        self.push(Item::Text {
            x,
            y: self.y + size,
            size,
            bold,
            text: text.to_owned(),
        });
    }

    /// A line of text at the left margin, then down by its height.
    fn line(&mut self, size: f32, bold: bool, text: &str) {
        self.room(size * 1.5);
        self.text_at(MARGIN, size, bold, text);
        self.y += size * 1.5;
    }

    /// A paragraph wrapped to the text width.
    fn paragraph(&mut self, f: &Faces, size: f32, text: &str) -> Result<(), PdfError> {
        for l in wrap(&f.regular, text, size, PAGE_W - 2.0 * MARGIN)? {
            self.line(size, false, &l);
        }
        Ok(())
    }

    fn rule(&mut self, weight: f32) {
        self.push(Item::Rule { y: self.y, weight });
        self.y += 6.0;
    }
}

/// `text` broken into lines no wider than `max` points (a word longer than that stands alone).
fn wrap(face: &Face, text: &str, size: f32, max: f32) -> Result<Vec<String>, PdfError> {
    let mut lines = vec![];
    let mut current = String::new();
    for word in text.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if !current.is_empty() && width(face, &candidate, size)? > max {
            lines.push(std::mem::replace(&mut current, word.to_owned()));
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    Ok(lines)
}

/// Draws the laid-out pages, each with its footer, into a PDF.
fn render(f: &Faces, tr: Tr, pages: Vec<Vec<Item>>) -> Result<Vec<u8>, PdfError> {
    let mut doc = Document::new();
    let count = pages.len();
    for (n, items) in pages.into_iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| PdfError::Write("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        let footer = tr.ta(
            "pdf-page",
            &[
                ("page", (n + 1).to_string().as_str()),
                ("pages", count.to_string().as_str()),
            ],
        );
        let footer = Item::Text {
            x: MARGIN,
            y: PAGE_H - 40.0,
            size: 8.0,
            bold: false,
            text: format!("{} · {footer}", tr.t("brand")),
        };
        for item in items.iter().chain(std::iter::once(&footer)) {
            match item {
                Item::Text {
                    x,
                    y,
                    size,
                    bold,
                    text,
                } => {
                    let face = if *bold { &f.bold } else { &f.regular };
                    let (g, _) = glyphs(face, text)?;
                    surface.draw_glyphs(
                        Point::from_xy(*x, *y),
                        &g,
                        face.font.clone(),
                        text,
                        *size,
                        false,
                    );
                }
                Item::Rule { y, weight } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(MARGIN, *y);
                    pb.line_to(PAGE_W - MARGIN, *y);
                    if let Some(path) = pb.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb::Color::black().into(),
                            width: *weight,
                            ..Default::default()
                        }));
                        surface.draw_path(&path);
                        // Back to plain filled text: a stroke left set would outline every glyph.
                        surface.set_stroke(None);
                        surface.set_fill(Some(Fill::default()));
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Write(format!("{e:?}")))
}

/// Right edges of the four amount columns, and where the description wraps.
const AMOUNT_RIGHT: [f32; 4] = [350.0, 420.0, 490.0, PAGE_W - MARGIN];
const DATE_X: f32 = MARGIN;
const DESCRIPTION_X: f32 = 118.0;
const DESCRIPTION_W: f32 = 165.0;
const TABLE_SIZE: f32 = 9.0;

/// One table row: date, description (wrapped), the four amounts right-aligned.
fn row(
    l: &mut Layout,
    f: &Faces,
    bold: bool,
    date: &str,
    description: &str,
    amounts: [&str; 4],
) -> Result<(), PdfError> {
    let face = if bold { &f.bold } else { &f.regular };
    let wrapped = wrap(face, description, TABLE_SIZE, DESCRIPTION_W)?;
    let height = TABLE_SIZE * 1.45 * wrapped.len() as f32 + 3.0;
    l.room(height);
    l.text_at(DATE_X, TABLE_SIZE, bold, date);
    for (right, amount) in AMOUNT_RIGHT.iter().zip(amounts) {
        let x = right - width(face, amount, TABLE_SIZE)?;
        l.text_at(x, TABLE_SIZE, bold, amount);
    }
    let top = l.y;
    for part in wrapped {
        l.text_at(DESCRIPTION_X, TABLE_SIZE, bold, &part);
        l.y += TABLE_SIZE * 1.45;
    }
    l.y = top.max(l.y) + 3.0;
    Ok(())
}

/// The column headings, each wrapped to its column (amounts right-aligned over theirs).
fn heading_row(l: &mut Layout, f: &Faces, tr: Tr) -> Result<(), PdfError> {
    let date = wrap(
        &f.bold,
        &tr.t("statement-col-date"),
        TABLE_SIZE,
        DESCRIPTION_X - DATE_X - 8.0,
    )?;
    let description = wrap(
        &f.bold,
        &tr.t("statement-col-description"),
        TABLE_SIZE,
        DESCRIPTION_W,
    )?;
    let keys = [
        "statement-col-charge",
        "statement-col-insurance",
        "statement-col-adjustment",
        "statement-col-responsibility",
    ];
    let mut amounts = vec![];
    for key in keys {
        amounts.push(wrap(&f.bold, &tr.t(key), TABLE_SIZE, 64.0)?);
    }
    let lines = amounts
        .iter()
        .chain([&date, &description])
        .map(Vec::len)
        .max()
        .unwrap_or(1);
    let step = TABLE_SIZE * 1.45;
    l.room(step * lines as f32 + 8.0);
    let top = l.y;
    for (x, heading) in [(DATE_X, &date), (DESCRIPTION_X, &description)] {
        l.y = top;
        for part in heading {
            l.text_at(x, TABLE_SIZE, true, part);
            l.y += step;
        }
    }
    for (right, heading) in AMOUNT_RIGHT.iter().zip(&amounts) {
        l.y = top;
        for part in heading {
            let x = right - width(&f.bold, part, TABLE_SIZE)?;
            l.text_at(x, TABLE_SIZE, true, part);
            l.y += step;
        }
    }
    l.y = top + step * lines as f32 + 2.0;
    l.rule(0.75);
    Ok(())
}

/// The itemised statement as a PDF, in `tr`'s language.
pub fn statement(tr: Tr, vm: &StatementVm) -> Result<Vec<u8>, PdfError> {
    statement_as(tr, &tr.t("statement-title"), "statement-hidden-note", vm)
}

/// A statement seen from an account (a guarantor's dependant's, say): titled with whose it is.
pub fn account_statement(tr: Tr, vm: &AccountStatementVm) -> Result<Vec<u8>, PdfError> {
    let s = &vm.statement;
    let as_shown = StatementVm {
        practice_name: vm.practice_name.clone(),
        statement_date: s.statement_date.clone(),
        due_date: s.due_date.clone(),
        lines: vm.lines.clone(),
        totals: vm.totals.clone(),
        some_hidden: vm.some_hidden,
        payments: vm.payments.clone(),
        balance: s.balance.clone(),
        paid_in_full: s.paid_in_full,
        ..Default::default()
    };
    let title = tr.ta("account-statement-title", &[("patient", &vm.patient_name)]);
    statement_as(tr, &title, "account-hidden-note", &as_shown)
}

fn statement_as(
    tr: Tr,
    title: &str,
    hidden_note: &str,
    vm: &StatementVm,
) -> Result<Vec<u8>, PdfError> {
    let f = faces()?;
    let mut l = Layout::new();
    l.line(18.0, true, title);
    l.line(
        11.0,
        false,
        &tr.ta("summary-from", &[("practice", &vm.practice_name)]),
    );
    l.line(
        10.0,
        false,
        &format!(
            "{} · {}",
            tr.ta("summary-dated", &[("date", &vm.statement_date)]),
            tr.ta("summary-due", &[("date", &vm.due_date)])
        ),
    );
    l.y += 6.0;
    l.line(
        13.0,
        true,
        &format!("{}: {}", tr.t("summary-balance"), vm.balance),
    );
    l.y += 8.0;
    heading_row(&mut l, f, tr)?;
    let hidden = tr.t("statement-hidden-detail");
    for line in &vm.lines {
        let a = &line.amounts;
        let (date, description) = match &line.detail {
            Some(d) => (d.service_date.as_str(), d.description.as_str()),
            None => ("", hidden.as_str()),
        };
        row(
            &mut l,
            f,
            false,
            date,
            description,
            [
                &a.charge,
                &a.insurance_paid,
                &a.adjustment,
                &a.responsibility,
            ],
        )?;
    }
    l.rule(1.0);
    let t = &vm.totals;
    row(
        &mut l,
        f,
        true,
        "",
        &tr.t("statement-totals"),
        [
            &t.charge,
            &t.insurance_paid,
            &t.adjustment,
            &t.responsibility,
        ],
    )?;
    if vm.some_hidden {
        l.y += 4.0;
        l.paragraph(f, 9.0, &tr.t(hidden_note))?;
    }
    l.y += 10.0;
    l.line(12.0, true, &tr.t("statement-payments"));
    if vm.payments.is_empty() {
        l.line(10.0, false, &tr.t("statement-no-payments"));
    }
    for p in &vm.payments {
        let mut text = patriotpay_app::pages::payment_line(tr, p);
        if let Some(status) = patriotpay_app::pages::payment_status(tr, p.status) {
            text = format!("{text} — {status}");
        }
        l.paragraph(f, 10.0, &text)?;
        for r in &p.refunds {
            l.paragraph(
                f,
                10.0,
                &tr.ta(
                    "payment-refund-line",
                    &[("date", &r.date), ("amount", &r.amount)],
                ),
            )?;
        }
    }
    render(f, tr, l.pages)
}

/// The receipt of one payment as a PDF, in `tr`'s language.
pub fn receipt(tr: Tr, vm: &ReceiptVm) -> Result<Vec<u8>, PdfError> {
    let f = faces()?;
    let mut l = Layout::new();
    l.line(18.0, true, &tr.t("receipt-title"));
    l.paragraph(
        f,
        11.0,
        &tr.ta("receipt-thanks", &[("practice", &vm.practice_name)]),
    )?;
    l.y += 8.0;
    let mut pairs = paid_pairs(tr, &vm.amount, &vm.date, vm.card.as_ref(), &vm.reference);
    pairs.push((tr.t("receipt-new-balance"), vm.new_balance.clone()));
    term_rows(&mut l, pairs);
    after_payment(
        &mut l,
        f,
        tr,
        vm.status,
        &vm.refunds,
        vm.taken_by.as_deref(),
    )?;
    render(f, tr, l.pages)
}

/// The receipt of one payment made from an account, possibly across several people's
/// statements: what was applied to each, and what each still owes.
pub fn account_receipt(tr: Tr, vm: &AccountReceiptVm) -> Result<Vec<u8>, PdfError> {
    let f = faces()?;
    let mut l = Layout::new();
    l.line(18.0, true, &tr.t("receipt-title"));
    l.paragraph(f, 11.0, &tr.t("account-receipt-thanks"))?;
    l.y += 8.0;
    let pairs = paid_pairs(tr, &vm.amount, &vm.date, vm.card.as_ref(), &vm.reference);
    term_rows(&mut l, pairs);
    after_payment(
        &mut l,
        f,
        tr,
        vm.status,
        &vm.refunds,
        vm.taken_by.as_deref(),
    )?;
    l.y += 8.0;
    l.line(12.0, true, &tr.t("account-receipt-caption"));
    for i in &vm.items {
        l.paragraph(
            f,
            10.0,
            &format!(
                "{} · {} · {}: {}: {} · {}: {}",
                i.patient_name,
                i.practice_name,
                i.statement_date,
                tr.t("account-col-applied"),
                i.amount,
                tr.t("receipt-new-balance"),
                i.new_balance
            ),
        )?;
    }
    render(f, tr, l.pages)
}

/// What every receipt says first: how much, when, with which card, under which reference.
fn paid_pairs(
    tr: Tr,
    amount: &str,
    date: &str,
    card: Option<&CardVm>,
    reference: &str,
) -> Vec<(String, String)> {
    let mut pairs = vec![
        (tr.t("receipt-amount"), amount.to_owned()),
        (tr.t("receipt-date"), date.to_owned()),
    ];
    if let Some(card) = card {
        pairs.push((
            tr.t("receipt-card"),
            tr.ta(
                "receipt-card-value",
                &[("brand", &card.brand), ("last4", &card.last4)],
            ),
        ));
    }
    pairs.push((tr.t("receipt-reference"), reference.to_owned()));
    pairs
}

/// Terms and their values in two columns.
fn term_rows(l: &mut Layout, pairs: Vec<(String, String)>) {
    for (term, value) in pairs {
        l.room(16.0);
        l.text_at(MARGIN, 11.0, true, &term);
        l.text_at(MARGIN + 150.0, 11.0, false, &value);
        l.y += 16.0;
    }
}

/// A payment's later life (settling, failed, refunded) and who took it, as the pages say it.
fn after_payment(
    l: &mut Layout,
    f: &Faces,
    tr: Tr,
    status: PaymentStatusVm,
    refunds: &[RefundLineVm],
    taken_by: Option<&str>,
) -> Result<(), PdfError> {
    if let Some(status) = patriotpay_app::pages::payment_status(tr, status) {
        l.paragraph(f, 10.0, &status)?;
    }
    for r in refunds {
        l.paragraph(
            f,
            10.0,
            &tr.ta(
                "payment-refund-line",
                &[("date", &r.date), ("amount", &r.amount)],
            ),
        )?;
    }
    if let Some(staff) = taken_by {
        l.paragraph(f, 10.0, &tr.ta("receipt-taken-by", &[("staff", staff)]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
