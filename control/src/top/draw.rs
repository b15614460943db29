//! Drawing a [`View`]: one function of the view-model into a ratatui
//! frame, used by the live screen and, through a `TestBackend` buffer, by
//! `--once` (plain text) and the tests.
//!
//! This module owns the layout, the column headers and the formatting of
//! figures; the figures themselves are `view.rs`'s.

use std::fmt::Write as _;
use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};

use super::view::{Figures, MemberRow, State, Traffic, View, WorkerRow};

/// Drop reasons listed (the largest).
pub const TOP_DROPS: usize = 5;

/// What the screen says besides the view: the refresh interval, whether it
/// is paused and whether keys are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chrome {
    /// Time between samples.
    pub interval: Duration,
    /// Sampling is paused (the view is the last one taken).
    pub paused: bool,
    /// A live screen (shows the keys).
    pub interactive: bool,
}

/// A figure for a cell: totals as whole numbers, rates with one decimal;
/// large values in k/M/G.
pub fn number(v: f64, figures: Figures) -> String {
    let scaled = |v: f64| {
        if v < 1e6 {
            format!("{:.1}k", v / 1e3)
        } else if v < 1e9 {
            format!("{:.2}M", v / 1e6)
        } else {
            format!("{:.2}G", v / 1e9)
        }
    };
    match figures {
        Figures::Totals if v < 100_000.0 => format!("{v:.0}"),
        Figures::Rates { .. } if v < 1000.0 => format!("{v:.1}"),
        _ => scaled(v),
    }
}

/// A column header, with `/s` for rates.
fn head(name: &str, figures: Figures) -> String {
    match figures {
        Figures::Totals => name.to_owned(),
        Figures::Rates { .. } => format!("{name}/s"),
    }
}

fn right(s: String) -> Cell<'static> {
    Cell::from(Line::from(s).right_aligned())
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn headline(view: &View, chrome: &Chrome) -> Vec<Line<'static>> {
    let mut first = format!(
        "shoal top | cluster {} | via {} | every {:.1} s | ",
        if view.cluster.is_empty() {
            "?"
        } else {
            &view.cluster
        },
        if view.seed.is_empty() {
            "?"
        } else {
            &view.seed
        },
        chrome.interval.as_secs_f64()
    );
    match view.figures {
        Figures::Totals => first.push_str("totals since start (rates from the next sample)"),
        Figures::Rates { over } => {
            let _ = write!(first, "rates per second over {:.2} s", over.as_secs_f64());
        }
    }
    if chrome.paused {
        first.push_str(" | PAUSED");
    }
    if chrome.interactive {
        first.push_str("   [q] quit  [p] pause");
    }
    let f = view.figures;
    let t = &view.cluster_traffic;
    let epoch = view.epoch.map_or_else(
        || "epoch ? (no member answered)".to_owned(),
        |e| {
            format!(
                "epoch {} on {}/{} members, confirmed on {}/{}",
                e.newest, e.on_newest, e.answered, e.confirmed, e.answered
            )
        },
    );
    let second = format!(
        "{epoch} | {} {} | flows live {} | {} {} / {} / {}",
        head("new connections", f),
        number(t.syn, f),
        view.cluster_flows,
        head("handoffs offered/accepted/refused", f),
        number(t.offers_sent, f),
        number(t.offers_accepted, f),
        number(t.offers_refused, f),
    );
    let third = match &view.seed_error {
        Some(e) => Line::styled(
            format!(
                "seed admin API not answering ({e}): {}",
                if view.members.is_empty() {
                    "no members known yet"
                } else {
                    "members as it last listed them"
                }
            ),
            Style::default().fg(Color::Red),
        ),
        None => Line::from(""),
    };
    vec![Line::styled(first, bold()), Line::from(second), third]
}

/// A table column: header, width (0: what is left), right-aligned.
struct Col {
    head: String,
    width: u16,
    right: bool,
}

fn col(head: &str, width: u16, right: bool) -> Col {
    Col {
        head: head.to_owned(),
        width,
        right,
    }
}

/// The packet, connection and drop columns.
fn traffic_cols(f: Figures) -> Vec<Col> {
    vec![
        col(&head("WIRE RX", f), 9, true),
        col(&head("WIRE TX", f), 9, true),
        col(&head("KERN RX", f), 9, true),
        col(&head("KERN TX", f), 9, true),
        col(&head("SYN", f), 8, true),
        col(&head("DROPS", f), 9, true),
    ]
}

fn traffic_cells(t: &Traffic, f: Figures) -> Vec<Cell<'static>> {
    [
        t.wire_rx,
        t.wire_tx,
        t.kernel_rx,
        t.kernel_tx,
        t.syn,
        t.drops,
    ]
    .iter()
    .map(|&v| right(number(v, f)))
    .collect()
}

fn state_style(s: State) -> Style {
    match s {
        State::Live => Style::default(),
        State::Draining | State::Leaving => Style::default().fg(Color::Yellow),
        State::Dead => Style::default().fg(Color::Red),
    }
}

fn member_row(m: &MemberRow, f: Figures) -> Row<'static> {
    let mut cells = vec![
        Cell::from(m.name.clone()),
        right(m.id.to_string()),
        Cell::from(m.address.to_string()),
        Cell::from(m.state.as_str()).style(state_style(m.state)),
        right(m.weight.to_string()),
        right(format!("{:.2}", m.load)),
    ];
    match &m.figures {
        Ok(x) => {
            cells.push(Cell::from(format!(
                "{} {}",
                x.epoch,
                if x.confirmed { "conf" } else { "pend" }
            )));
            cells.push(Cell::from(if x.lease_held {
                format!("held {}ms", x.lease_remaining_ms)
            } else {
                "not held".to_owned()
            }));
            cells.extend(traffic_cells(&x.traffic, f));
            cells.push(right(x.flows.to_string()));
            cells.push(Cell::from(""));
        }
        Err(e) => {
            cells.extend([Cell::from("-"), Cell::from("-")]);
            cells.extend((0..7).map(|_| right("-".to_owned())));
            cells.push(
                Cell::from(format!("unreachable: {e}")).style(Style::default().fg(Color::Red)),
            );
        }
    }
    Row::new(cells)
}

fn members_table(view: &View) -> Table<'static> {
    let f = view.figures;
    let name_w = view
        .members
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0)
        .max(6) as u16;
    let mut cols = vec![
        col("MEMBER", name_w, false),
        col("ID", 3, true),
        col("ADDRESS", 15, false),
        col("STATE", 8, false),
        col("WEIGHT", 6, true),
        col("LOAD", 5, true),
        col("EPOCH", 9, false),
        col("LEASE", 11, false),
    ];
    cols.extend(traffic_cols(f));
    cols.push(col("FLOWS", 7, true));
    // The note of an unreachable member: whatever width is left.
    cols.push(col("", 0, false));
    table(
        cols,
        view.members.iter().map(|m| member_row(m, f)).collect(),
    )
}

fn worker_row(w: &WorkerRow, f: Figures) -> Row<'static> {
    let mut cells = vec![
        Cell::from(format!("{}/{}", w.member, w.worker)),
        Cell::from(if w.up { "yes" } else { "NO" }),
    ];
    cells.extend(traffic_cells(&w.traffic, f));
    cells.extend(
        [
            w.traffic.offers_sent,
            w.traffic.offers_accepted,
            w.traffic.offers_refused,
        ]
        .iter()
        .map(|&v| right(number(v, f))),
    );
    cells.push(right(w.flows.to_string()));
    Row::new(cells)
}

fn workers_table(view: &View) -> Table<'static> {
    let f = view.figures;
    let name_w = view
        .workers
        .iter()
        .map(|w| w.member.len() + 1 + w.worker.to_string().len())
        .max()
        .unwrap_or(0)
        .max(6) as u16;
    let mut cols = vec![col("WORKER", name_w, false), col("UP", 3, false)];
    cols.extend(traffic_cols(f));
    cols.push(col(&head("OFFERED", f), 10, true));
    cols.push(col(&head("ACCEPTED", f), 11, true));
    cols.push(col(&head("REFUSED", f), 10, true));
    cols.push(col("FLOWS", 7, true));
    table(
        cols,
        view.workers.iter().map(|w| worker_row(w, f)).collect(),
    )
}

fn table(cols: Vec<Col>, rows: Vec<Row<'static>>) -> Table<'static> {
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| match c.width {
            0 => Constraint::Fill(1),
            w => Constraint::Length(w),
        })
        .collect();
    let header = Row::new(
        cols.into_iter()
            .map(|c| {
                if c.right {
                    right(c.head)
                } else {
                    Cell::from(c.head)
                }
            })
            .collect::<Vec<_>>(),
    )
    .style(bold());
    Table::new(rows, widths).header(header).column_spacing(1)
}

fn drops_lines(view: &View) -> Vec<Line<'static>> {
    let f = view.figures;
    let mut lines = vec![Line::styled(
        format!(
            "{} by reason (top {} of {})",
            head("DROPS", f),
            TOP_DROPS.min(view.drops.len()),
            view.drops.len()
        ),
        bold(),
    )];
    if view.drops.is_empty() {
        lines.push(Line::from("  none"));
    }
    for (reason, v) in view.drops.iter().take(TOP_DROPS) {
        lines.push(Line::from(format!("  {reason:<28} {:>10}", number(*v, f))));
    }
    lines
}

/// The rows the whole view needs: headline 3, members, workers and drops
/// each with a header and a blank line before.
pub fn height(view: &View) -> u16 {
    let drops = view.drops.len().clamp(1, TOP_DROPS);
    (3 + 1 + (1 + view.members.len()) + 1 + (1 + view.workers.len()) + 1 + (1 + drops)) as u16
}

/// Draws `view` into `frame`.
pub fn draw(frame: &mut Frame<'_>, view: &View, chrome: &Chrome) {
    let [top, _, members, _, workers, _, drops] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Length(1 + view.members.len() as u16),
        Constraint::Length(1),
        Constraint::Length(1 + view.workers.len() as u16),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(headline(view, chrome)), top);
    frame.render_widget(members_table(view), members);
    frame.render_widget(workers_table(view), workers);
    frame.render_widget(Paragraph::new(drops_lines(view)), drops);
}

/// The view as plain text, `width` columns wide (lines trimmed at the
/// right): what `--once` prints.
pub fn text(view: &View, chrome: &Chrome, width: u16) -> String {
    let h = height(view);
    let mut terminal = match Terminal::new(TestBackend::new(width, h)) {
        Ok(t) => t,
        Err(e) => match e {},
    };
    if let Err(e) = terminal.draw(|f| draw(f, view, chrome)) {
        match e {}
    }
    buffer_text(terminal.backend().buffer(), Rect::new(0, 0, width, h))
}

/// The cells of `area` as lines of text, trimmed at the right.
pub fn buffer_text(buf: &ratatui::buffer::Buffer, area: Rect) -> String {
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::view::{build, tests::samples};

    const CHROME: Chrome = Chrome {
        interval: Duration::from_secs(1),
        paused: false,
        interactive: true,
    };

    #[test]
    fn numbers_by_size() {
        let r = Figures::Rates {
            over: Duration::from_secs(1),
        };
        assert_eq!(number(0.0, r), "0.0");
        assert_eq!(number(12.345, r), "12.3");
        assert_eq!(number(1234.0, r), "1.2k");
        assert_eq!(number(2_500_000.0, r), "2.50M");
        assert_eq!(number(99_999.0, Figures::Totals), "99999");
        assert_eq!(number(123_456.0, Figures::Totals), "123.5k");
        assert_eq!(number(7.2e9, Figures::Totals), "7.20G");
    }

    /// The whole screen of the second test sample, as a `TestBackend` of
    /// 180 x 24 holds it.
    #[test]
    fn the_screen_shows_members_workers_and_rates() {
        let (first, second) = samples();
        let view = build(Some(&first), &second);
        let backend = TestBackend::new(180, 24);
        let mut terminal = Terminal::new(backend).unwrap();
        terminal.draw(|f| draw(f, &view, &CHROME)).unwrap();
        let got = buffer_text(terminal.backend().buffer(), Rect::new(0, 0, 180, 24));
        let want = "\
shoal top | cluster lab | via srv1 | every 1.0 s | rates per second over 2.00 s   [q] quit  [p] pause
epoch 5 on 1/2 members, confirmed on 1/2 | new connections/s 30.0 | flows live 63 | handoffs offered/accepted/refused/s 12.0 / 9.0 / 3.0


MEMBER  ID ADDRESS         STATE    WEIGHT  LOAD EPOCH     LEASE       WIRE RX/s WIRE TX/s KERN RX/s KERN TX/s    SYN/s   DROPS/s   FLOWS
srv1     1 198.18.0.11     live        100  0.25 5 conf    held 700ms      200.0     100.0      80.0     120.0     20.0       6.0      42
srv2     2 198.18.0.12     draining    100  0.25 4 pend    held 700ms      100.0      50.0      40.0      60.0     10.0       5.0      21
srv3     3 198.18.0.13     dead        100  0.25 -         -                   -         -         -         -        -         -       - unreachable: connection refused

WORKER UP  WIRE RX/s WIRE TX/s KERN RX/s KERN TX/s    SYN/s   DROPS/s  OFFERED/s  ACCEPTED/s  REFUSED/s   FLOWS
srv1/0 yes     100.0      50.0      40.0      60.0     10.0       5.0        4.0         3.0        1.0      21
srv1/1 yes     100.0      50.0      40.0      60.0     10.0       1.0        4.0         3.0        1.0      21
srv2/0 yes     100.0      50.0      40.0      60.0     10.0       5.0        4.0         3.0        1.0      21

DROPS/s by reason (top 2 of 2)
  other_host                         10.0
  not_for_us                          1.0







";
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn once_text_is_the_first_frame_with_totals_and_no_keys() {
        let (first, _) = samples();
        let view = build(None, &first);
        let chrome = Chrome {
            interactive: false,
            paused: false,
            ..CHROME
        };
        let got = text(&view, &chrome, 180);
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), usize::from(height(&view)));
        assert_eq!(
            lines[0],
            "shoal top | cluster lab | via srv1 | every 1.0 s | totals since start (rates from the next sample)"
        );
        assert_eq!(
            lines[4],
            "MEMBER  ID ADDRESS         STATE    WEIGHT  LOAD EPOCH     LEASE         WIRE RX   WIRE TX   KERN RX   KERN TX      SYN     DROPS   FLOWS"
        );
        assert_eq!(lines[14], "DROPS by reason (top 3 of 3)");
        assert_eq!(lines[15], "  other_host                           40");
    }
}
