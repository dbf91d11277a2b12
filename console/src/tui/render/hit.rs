//! Where a mouse click or wheel lands: the inverse of the layout the renderers draw, kept next
//! to them so the two agree. A pure function of the state and the screen size the last frame
//! had (`App::area`, and the offset the task table scrolled to), so the mouse handling is tested
//! without a terminal.

use ratatui::layout::{Constraint, Layout, Rect};

use super::{MIN_HEIGHT, MIN_WIDTH};
use crate::tui::app::{App, Tab};

/// Width of the `faas-console` name before the tabs (header.rs).
const NAME_WIDTH: u16 = 14;

/// What is under the pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// A tab title in the header.
    Tab(Tab),
    /// Row `i` (0 = the first, in the list's own order) of the current screen's list.
    Row(usize),
    /// Somewhere in the current screen's body, not on a row.
    Body,
    Nothing,
}

/// The header, body and footer of a screen of size `area` (mod.rs's layout).
fn regions(area: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// What lies at column `x`, row `y` of the screen `app.area` holds.
pub fn hit(app: &App, x: u16, y: u16) -> Hit {
    let area = app.area.get();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return Hit::Nothing;
    }
    let [head, body, _] = regions(area);
    if y == head.y {
        return tab_at(
            x.saturating_sub(head.x + NAME_WIDTH),
            x >= head.x + NAME_WIDTH,
        );
    }
    if !(body.y..body.y + body.height).contains(&y) {
        return Hit::Nothing;
    }
    // The list's box, and the first row it showed in the last frame.
    let (list, first, len) = match app.tab {
        Tab::Workers => {
            let len = app.workers.len();
            let visible = body.height.saturating_sub(3) as usize;
            let first = first_visible(app.workers_selected.min(len.saturating_sub(1)), visible);
            (body, first, len)
        }
        // The task table keeps its scroll offset between frames (tasks.rs stores it).
        Tab::Tasks => (
            body,
            app.tasks_view.offset.get(),
            app.visible_tasks().count(),
        ),
        // The list above the last invocation's box (functions.rs' layout).
        Tab::Functions => {
            let [list, _] =
                Layout::vertical([Constraint::Min(6), Constraint::Length(body.height / 3)])
                    .areas(body);
            let len = app.functions.list.len();
            let visible = list.height.saturating_sub(3) as usize;
            let first = first_visible(app.functions.selected.min(len.saturating_sub(1)), visible);
            (list, first, len)
        }
        Tab::Overview | Tab::Events => return Hit::Body,
    };
    if !(list.x..list.x + list.width).contains(&x) {
        return Hit::Body;
    }
    // A bordered table with a header row: rows start two lines down and end above the border.
    let first_y = list.y + 2;
    let visible = list.height.saturating_sub(3) as usize;
    if y < first_y || y >= first_y + visible as u16 {
        return Hit::Body;
    }
    let i = first + (y - first_y) as usize;
    if i < len {
        Hit::Row(i)
    } else {
        Hit::Body
    }
}

/// The first row a table shows when it is drawn afresh with row `selected` highlighted: from
/// the top, scrolled just far enough to show the selection (ratatui's `TableState` offset).
fn first_visible(selected: usize, visible: usize) -> usize {
    (selected + 1).saturating_sub(visible.max(1))
}

/// The tab whose title spans column `x` of the tabs line; ratatui's `Tabs` pads each title
/// with a space on both sides and puts a one-column divider between them.
fn tab_at(x: u16, inside: bool) -> Hit {
    if !inside {
        return Hit::Nothing;
    }
    let mut start = 0u16;
    for (i, tab) in Tab::ALL.iter().enumerate() {
        let width = format!("{} {}", i + 1, tab.title()).chars().count() as u16 + 2;
        if x < start + width {
            return Hit::Tab(*tab);
        }
        start += width + 1;
        if x < start {
            return Hit::Nothing;
        }
    }
    Hit::Nothing
}
