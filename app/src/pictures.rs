//! Small pictures drawn on the server as SVG (no JavaScript): a statement's charges split into
//! what insurance paid, what the practice took off and what is owed; a practice's last 30 days
//! of payments and pay-link outcomes. Each picture is decoration beside the same numbers in
//! text (a list, a table), so a screen reader skips the drawing and reads the numbers.

use crate::i18n::Tr;
use leptos::prelude::*;

/// A statement's charges and where they went, in cents and as shown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitVm {
    pub insurance_cents: i64,
    pub adjustment_cents: i64,
    pub owed_cents: i64,
    pub charge: String,
    pub insurance: String,
    pub adjustment: String,
    pub owed: String,
}

/// Widths (of `total`) of the parts, each at least 1 when not zero so a small part stays
/// visible, the last taking what is left so they always fill `total` exactly.
fn widths(parts: &[i64], total: i64) -> Vec<i64> {
    let sum: i64 = parts.iter().map(|p| (*p).max(0)).sum();
    if sum == 0 {
        return vec![0; parts.len()];
    }
    let mut out: Vec<i64> = parts
        .iter()
        .map(|p| {
            let p = (*p).max(0);
            if p == 0 {
                0
            } else {
                (p * total / sum).max(1)
            }
        })
        .collect();
    let used: i64 = out.iter().sum();
    if let Some(last) = out.iter_mut().rev().find(|w| **w > 0) {
        *last += total - used;
    }
    out
}

/// Fill colours of the three parts; the legend's swatches use the same classes.
const PART_CLASSES: [&str; 3] = ["part-insurance", "part-adjustment", "part-owed"];

/// The split as a bar with a legend that says the amounts in words.
pub fn charge_split(tr: Tr, s: &SplitVm) -> AnyView {
    const W: i64 = 300;
    let parts = [s.insurance_cents, s.adjustment_cents, s.owed_cents];
    let mut x = 0;
    let rects = widths(&parts, W)
        .into_iter()
        .zip(PART_CLASSES)
        .filter(|(w, _)| *w > 0)
        .map(|(w, class)| {
            let r =
                view! { <rect x=x.to_string() y="0" width=w.to_string() height="16" class=class/> };
            x += w;
            r
        })
        .collect::<Vec<_>>();
    let legend = [
        ("split-insurance", &s.insurance),
        ("split-adjustment", &s.adjustment),
        ("split-owed", &s.owed),
    ]
    .into_iter()
    .zip(PART_CLASSES)
    .map(|((key, amount), class)| {
        view! {
            <li><span class=format!("swatch {class}") aria-hidden="true"></span>
                {tr.ta(key, &[("amount", amount.as_str())])}</li>
        }
    })
    .collect::<Vec<_>>();
    view! {
        <figure class="charge-split">
            <figcaption>{tr.ta("split-caption", &[("charge", s.charge.as_str())])}</figcaption>
            <svg viewBox=format!("0 0 {W} 16") preserveAspectRatio="none" aria-hidden="true"
                focusable="false" class="split-bar">{rects}</svg>
            <ul class="split-legend">{legend}</ul>
        </figure>
    }
    .into_any()
}

/// One day of a practice's activity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayVm {
    /// As shown: "Nov 3".
    pub label: String,
    pub paid_cents: i64,
    pub paid: String,
    pub payments: i64,
    pub links_opened: i64,
    pub links_verified: i64,
}

/// The last 30 days: payments as bars, and under them a table of the same numbers with the
/// pay links opened and verified each day.
pub fn activity_chart(tr: Tr, days: &[DayVm]) -> AnyView {
    const H: i64 = 80;
    const BAR: i64 = 10;
    let max = days.iter().map(|d| d.paid_cents).max().unwrap_or(0).max(1);
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let h = if d.paid_cents > 0 {
                (d.paid_cents * H / max).max(1)
            } else {
                0
            };
            let x = i as i64 * BAR;
            view! { <rect x=(x + 1).to_string() y=(H - h).to_string() width=(BAR - 2).to_string()
            height=h.to_string() class="part-paid"/> }
        })
        .collect::<Vec<_>>();
    let width = (days.len() as i64 * BAR).max(BAR);
    let rows = days
        .iter()
        .map(|d| {
            view! {
                <tr>
                    <th scope="row">{d.label.clone()}</th>
                    <td class="num">{d.paid.clone()}</td>
                    <td class="num">{d.payments}</td>
                    <td class="num">{d.links_opened}</td>
                    <td class="num">{d.links_verified}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let total: i64 = days.iter().map(|d| d.payments).sum();
    view! {
        <figure class="activity">
            <figcaption>{tr.ta("activity-caption", &[("count", total.to_string().as_str())])}</figcaption>
            <svg viewBox=format!("0 0 {width} {H}") preserveAspectRatio="none" aria-hidden="true"
                focusable="false" class="activity-bars">
                <line x1="0" y1=H.to_string() x2=width.to_string() y2=H.to_string() class="axis"/>
                {bars}
            </svg>
            <details>
                <summary>{tr.t("activity-table-summary")}</summary>
                <div class="table-wrap">
                    <table class="activity-table">
                        <caption>{tr.t("activity-table-caption")}</caption>
                        <thead>
                            <tr>
                                <th scope="col">{tr.t("activity-col-day")}</th>
                                <th scope="col" class="num">{tr.t("activity-col-paid")}</th>
                                <th scope="col" class="num">{tr.t("activity-col-payments")}</th>
                                <th scope="col" class="num">{tr.t("activity-col-opened")}</th>
                                <th scope="col" class="num">{tr.t("activity-col-verified")}</th>
                            </tr>
                        </thead>
                        <tbody>{rows}</tbody>
                    </table>
                </div>
            </details>
        </figure>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fill_the_bar_and_small_parts_stay_visible() {
        assert_eq!(
            widths(&[12_000, 1_500, 5_000], 300).iter().sum::<i64>(),
            300
        );
        let w = widths(&[100_000, 1, 0], 300);
        assert_eq!(w.iter().sum::<i64>(), 300);
        assert!(w[1] >= 1, "{w:?}");
        assert_eq!(w[2], 0);
        assert_eq!(widths(&[0, 0, 0], 300), vec![0, 0, 0]);
    }

    #[test]
    fn the_split_says_its_amounts_in_words() {
        let tr = Tr::default();
        let html = charge_split(
            tr,
            &SplitVm {
                insurance_cents: 12_000,
                adjustment_cents: 1_500,
                owed_cents: 5_000,
                charge: "$185.00".into(),
                insurance: "$120.00".into(),
                adjustment: "$15.00".into(),
                owed: "$50.00".into(),
            },
        )
        .to_html();
        assert!(html.contains("aria-hidden=\"true\""), "{html}");
        for amount in ["$185.00", "$120.00", "$15.00", "$50.00"] {
            assert!(html.contains(amount), "{amount}: {html}");
        }
        assert_eq!(html.matches("<rect").count(), 3);
    }
}
