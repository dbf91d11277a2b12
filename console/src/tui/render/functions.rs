//! Functions: the registered functions with their health (runs, share failed, run time and
//! queue wait percentiles, last failure), sorted by the column `s` picks; below, the last
//! invocation made from the console (its task, live status, and the result or error). Enter
//! opens a function: its statistics and recent failures (`render_view`).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Table, TableState, Wrap};
use ratatui::Frame;

use faas_protocol::api::{Percentiles, TaskSummary};

use super::fmt;
use crate::tui::app::{short, App, Invocation};
use crate::tui::functions::{failed_share, FunctionView, Sort};

pub fn render(f: &mut Frame, area: Rect, app: &App) {
    let [list, invocation] =
        Layout::vertical([Constraint::Min(6), Constraint::Length(area.height / 3)]).areas(area);
    render_list(f, list, app);
    let block = fmt::boxed("Last invocation", invocation);
    let lines = match &app.functions.invocation {
        None => vec![Line::styled(
            "select a function and press i to invoke it; n registers a new one",
            fmt::dim(),
        )],
        Some(inv) => invocation_lines(inv),
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        invocation,
    );
}

fn render_list(f: &mut Frame, area: Rect, app: &App) {
    let fns = &app.functions;
    let block = fmt::boxed(
        format!(
            "Functions ({}) · sorted by {} · s sorts, Enter opens",
            fns.list.len(),
            fns.sort.column()
        ),
        area,
    );
    if fns.list.is_empty() {
        let hint = if fns.loaded {
            "no functions registered: press n to register one"
        } else {
            "reading the function list from the gateway…"
        };
        f.render_widget(
            Paragraph::new(Span::styled(
                fmt::fit(hint, fmt::inner_width(area)),
                fmt::dim(),
            ))
            .block(block),
            area,
        );
        return;
    }
    // FAILED % and WAIT P50 have a column more than their label, for the sort marker.
    let widths = [
        Constraint::Min(10),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Min(14),
        Constraint::Length(7),
    ];
    let cols = fmt::columns(area, &widths);
    let now = app.now_ms;
    let dash = || "—".to_owned();
    let rows = fns.list.iter().map(|func| {
        let st = fns.stats.get(&func.function_id);
        let pct = |p: Option<&Percentiles>, pick: fn(&Percentiles) -> u64| {
            p.map_or_else(dash, |p| fmt::duration(pick(p)))
        };
        let run = st.and_then(|s| s.run_ms.as_ref());
        let wait = st.and_then(|s| s.queue_wait_ms.as_ref());
        let share = st.and_then(failed_share);
        let share_style = match share {
            Some(p) if p > 0.0 => Style::default().fg(Color::Red),
            _ => Style::default(),
        };
        let last_failure =
            match st.and_then(|s| s.last_failure_at.zip(s.last_failure_type.as_ref())) {
                Some((at, kind)) => format!("{kind} {} ago", fmt::duration(now.saturating_sub(at))),
                None => String::new(),
            };
        fmt::fitted_row(
            vec![
                Span::raw(func.name.clone()),
                Span::raw(st.map_or_else(dash, |s| fmt::count(s.invocations))),
                Span::styled(
                    share.map_or_else(dash, |p| format!("{p:.1} %")),
                    share_style,
                ),
                Span::raw(pct(run, |p| p.p50)),
                Span::raw(pct(run, |p| p.p99)),
                Span::raw(pct(wait, |p| p.p50)),
                Span::styled(last_failure, Style::default().fg(Color::Red)),
                Span::raw(fmt::duration(now.saturating_sub(func.created_at))),
            ],
            &cols,
        )
    });
    // The sorted column is marked; in a squeezed column the label is cut, never the marker.
    let header = fmt::fitted_row(
        Sort::ALL_COLUMNS
            .iter()
            .zip(&cols)
            .map(|((c, sort), &w)| {
                Span::raw(if *sort == Some(fns.sort) {
                    format!("{}▼", fmt::fit(c, w.saturating_sub(1)))
                } else {
                    (*c).to_owned()
                })
            })
            .collect(),
        &cols,
    )
    .style(fmt::title());
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(fns.selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn invocation_lines(inv: &Invocation) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled("function ", fmt::dim()),
        Span::raw(inv.function.clone()),
    ])];
    if let Some(e) = &inv.failure {
        lines.push(Line::styled(
            format!("not submitted: {e}"),
            Style::default().fg(Color::Red),
        ));
        return lines;
    }
    let Some(id) = inv.task_id else {
        lines.push(Line::styled("submitting…", fmt::dim()));
        return lines;
    };
    lines.push(Line::from(vec![
        Span::styled("task     ", fmt::dim()),
        Span::raw(id.to_string()),
    ]));
    if let Some(s) = inv.status {
        lines.push(Line::from(vec![
            Span::styled("status   ", fmt::dim()),
            Span::styled(s.as_str(), fmt::status_style(s)),
        ]));
    }
    match (&inv.result, &inv.error) {
        (_, Some(e)) => {
            lines.push(Line::styled(
                format!("error    {}: {}", e.kind, e.message),
                Style::default().fg(Color::Red),
            ));
            for l in e.traceback.lines() {
                lines.push(Line::styled(l.to_owned(), Style::default().fg(Color::Red)));
            }
        }
        (Some(r), None) => {
            let text = fmt::json(r);
            let mut body = text.lines();
            lines.push(Line::from(vec![
                Span::styled("result   ", fmt::dim()),
                Span::styled(body.next().unwrap_or("").to_owned(), fmt::title()),
            ]));
            lines.extend(body.map(|l| Line::raw(format!("         {l}"))));
        }
        (None, None) => lines.push(Line::styled("waiting for the result…", fmt::dim())),
    }
    lines
}

/// The function view (Enter): what it is, its statistics, and its recent failures.
pub fn render_view(f: &mut Frame, area: Rect, v: &FunctionView, app: &App) {
    let summary = app.functions.list.iter().find(|x| x.function_id == v.id);
    let name = summary.map_or_else(|| short(v.id), |s| s.name.clone());
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<12}"), fmt::dim()),
            Span::raw(v),
        ])
    };
    let mut lines = vec![kv("id", v.id.to_string())];
    if let Some(s) = summary {
        let entry = v
            .detail
            .as_ref()
            .and_then(|d| d.entrypoint.clone())
            .map(|e| format!(" · entrypoint {e}"))
            .unwrap_or_default();
        lines.push(kv(
            "format",
            format!(
                "{}{entry} · registered {} ago",
                s.format.as_str(),
                fmt::duration(app.now_ms.saturating_sub(s.created_at))
            ),
        ));
    }
    match app.functions.stats.get(&v.id) {
        None => lines.push(Line::styled("reading its statistics…", fmt::dim())),
        Some(st) => {
            lines.push(kv(
                "runs",
                format!(
                    "{} submitted · {} completed · {} failed{} · {} cancelled",
                    fmt::count(st.invocations),
                    fmt::count(st.completed),
                    fmt::count(st.failed),
                    failed_share(st)
                        .map(|p| format!(" ({p:.1} %)"))
                        .unwrap_or_default(),
                    fmt::count(st.cancelled),
                ),
            ));
            let pcts = |p: &Option<Percentiles>| match p {
                Some(p) => format!(
                    "p50 {} · p95 {} · p99 {} (last {} runs)",
                    fmt::duration(p.p50),
                    fmt::duration(p.p95),
                    fmt::duration(p.p99),
                    fmt::count(p.samples)
                ),
                None => "— (no finished run yet)".into(),
            };
            lines.push(kv("run time", pcts(&st.run_ms)));
            lines.push(kv("queue wait", pcts(&st.queue_wait_ms)));
        }
    }
    lines.push(Line::default());
    lines.push(Line::styled("Recent failures", fmt::title()));
    match &v.failures {
        None => lines.push(Line::styled("reading…", fmt::dim())),
        Some(Err(e)) => lines.push(Line::styled(
            format!("cannot read them: {e}"),
            Style::default().fg(Color::Red),
        )),
        Some(Ok(list)) if list.is_empty() => {
            lines.push(Line::styled("none: every run so far succeeded", fmt::dim()))
        }
        Some(Ok(list)) => lines.extend(list.iter().map(failure_line)),
    }
    let block = fmt::boxed(format!("Function {name}"), area)
        .title_bottom(Line::styled(" Esc/q close ", fmt::dim()).right_aligned());
    f.render_widget(ratatui::widgets::Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
}

/// One failed task: when, which, why, where.
fn failure_line(t: &TaskSummary) -> Line<'static> {
    let (kind, message) = t
        .error
        .as_ref()
        .map_or(("?", ""), |e| (e.kind.as_str(), e.message.as_str()));
    Line::from(vec![
        Span::styled(
            format!("{} ", fmt::clock(t.finished_at.unwrap_or(t.created_at))),
            fmt::dim(),
        ),
        Span::raw(format!("{} ", short(t.task_id))),
        Span::styled(
            format!("{kind}: {}", fmt::fit(message, 60)),
            Style::default().fg(Color::Red),
        ),
        Span::styled(
            t.worker
                .as_deref()
                .map(|w| format!("  on {w}"))
                .unwrap_or_default(),
            fmt::dim(),
        ),
    ])
}
