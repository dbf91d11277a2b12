//! The two forms of the Functions screen: register a function from Python source, and invoke
//! one with JSON arguments. They validate locally, so the gateway only sees plausible requests.
//!
//! Keys: Tab / Shift-Tab move between fields, Enter in a one-line field moves on (the invoke
//! form and the last field submit), Ctrl-S submits from anywhere, Esc cancels.

use faas_protocol::model::FunctionSummary;
use faas_protocol::FunctionFormat;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, Borders};
use ratatui_textarea::TextArea;

use super::msg::Command;

/// What a key did to a form.
#[derive(Clone, Debug, PartialEq)]
pub enum FormAction {
    /// Keep editing.
    Edit,
    Cancel,
    Submit(Command),
}

/// One labelled text field.
#[derive(Clone, Debug)]
pub struct Field {
    pub label: &'static str,
    pub multiline: bool,
    pub area: TextArea<'static>,
}

impl Field {
    fn new(label: &'static str, multiline: bool, placeholder: &str) -> Self {
        let mut area = TextArea::default();
        area.set_placeholder_text(placeholder);
        area.set_cursor_line_style(Style::default());
        // Python wants spaces; Tab is taken by focus changes anyway.
        area.set_tab_length(4);
        Self {
            label,
            multiline,
            area,
        }
    }

    /// The text, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.area.lines().join("\n")
    }

    fn style(&mut self, focused: bool) {
        let colour = if focused {
            Color::Yellow
        } else {
            Color::DarkGray
        };
        self.area.set_block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(colour))
                .title(self.label),
        );
        self.area.set_cursor_style(if focused {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        });
    }
}

/// Fields with one of them focused: the key handling both forms share.
#[derive(Clone, Debug)]
pub struct Fields {
    pub fields: Vec<Field>,
    pub focus: usize,
    /// Enter in a one-line field submits (a short form) rather than moving on.
    enter_submits: bool,
}

/// What a key meant to a set of fields.
enum FieldKey {
    Edited,
    Cancel,
    Submit,
}

impl Fields {
    fn new(fields: Vec<Field>, enter_submits: bool) -> Self {
        let mut f = Self {
            fields,
            focus: 0,
            enter_submits,
        };
        f.restyle();
        f
    }

    fn restyle(&mut self) {
        let focus = self.focus;
        for (i, field) in self.fields.iter_mut().enumerate() {
            field.style(i == focus);
        }
    }

    fn move_focus(&mut self, forward: bool) {
        let n = self.fields.len();
        self.focus = if forward {
            (self.focus + 1) % n
        } else {
            (self.focus + n - 1) % n
        };
        self.restyle();
    }

    fn key(&mut self, key: KeyEvent) -> FieldKey {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return FieldKey::Cancel,
            KeyCode::Char('s') if ctrl => return FieldKey::Submit,
            KeyCode::Tab => self.move_focus(true),
            KeyCode::BackTab => self.move_focus(false),
            KeyCode::Enter if !self.fields[self.focus].multiline => {
                if self.enter_submits || self.focus + 1 == self.fields.len() {
                    return FieldKey::Submit;
                }
                self.move_focus(true);
            }
            _ => {
                self.fields[self.focus].area.input(key);
            }
        }
        FieldKey::Edited
    }

    fn text(&self, i: usize) -> String {
        self.fields[i].text()
    }

    /// Whether anything was typed: closing the form then loses work, so the console asks first.
    pub fn typed(&self) -> bool {
        self.fields.iter().any(|f| !f.area.is_empty())
    }

    /// Types `text` into the focused field (tests and pre-filled values).
    pub fn type_text(&mut self, text: &str) {
        self.fields[self.focus].area.insert_str(text);
    }
}

impl Form {
    /// Whether closing the form would throw away typed text.
    pub fn typed(&self) -> bool {
        match self {
            Form::Register(f) => f.fields.typed(),
            Form::Invoke(f) => f.fields.typed(),
        }
    }
}

/// Register a function from Python source.
#[derive(Clone, Debug)]
pub struct RegisterForm {
    pub fields: Fields,
    /// Why the last submit was refused, locally or by the gateway.
    pub error: Option<String>,
    /// Sent, waiting for the gateway.
    pub sending: bool,
}

impl Default for RegisterForm {
    fn default() -> Self {
        Self {
            fields: Fields::new(
                vec![
                    Field::new("Name", false, "e.g. add"),
                    Field::new("Entrypoint", false, "function to call (default: the name)"),
                    Field::new("Python source", true, "def add(a, b):\n    return a + b"),
                ],
                false,
            ),
            error: None,
            sending: false,
        }
    }
}

impl RegisterForm {
    pub fn key(&mut self, key: KeyEvent) -> FormAction {
        match self.fields.key(key) {
            FieldKey::Cancel => FormAction::Cancel,
            FieldKey::Edited => FormAction::Edit,
            FieldKey::Submit if self.sending => FormAction::Edit,
            FieldKey::Submit => match self.validate() {
                Ok(cmd) => {
                    self.error = None;
                    self.sending = true;
                    FormAction::Submit(cmd)
                }
                Err(e) => {
                    self.error = Some(e);
                    FormAction::Edit
                }
            },
        }
    }

    fn validate(&self) -> Result<Command, String> {
        let name = self.fields.text(0).trim().to_owned();
        let entrypoint = match self.fields.text(1).trim() {
            "" => name.clone(),
            e => e.to_owned(),
        };
        let source = self.fields.text(2);
        if name.is_empty() {
            return Err("the function needs a name".into());
        }
        if source.trim().is_empty() {
            return Err("the source is empty".into());
        }
        Ok(Command::Register {
            name,
            entrypoint,
            source,
        })
    }
}

/// Invoke a source function with JSON args and kwargs.
#[derive(Clone, Debug)]
pub struct InvokeForm {
    pub function: FunctionSummary,
    pub fields: Fields,
    pub error: Option<String>,
}

impl InvokeForm {
    pub fn new(function: FunctionSummary) -> Self {
        Self {
            function,
            fields: Fields::new(
                vec![
                    Field::new("args (JSON array)", false, "[] e.g. [2, 3]"),
                    Field::new("kwargs (JSON object)", false, "{} e.g. {\"x\": 1}"),
                ],
                true,
            ),
            error: None,
        }
    }

    pub fn key(&mut self, key: KeyEvent) -> FormAction {
        match self.fields.key(key) {
            FieldKey::Cancel => FormAction::Cancel,
            FieldKey::Edited => FormAction::Edit,
            FieldKey::Submit => match self.validate() {
                Ok(cmd) => {
                    self.error = None;
                    FormAction::Submit(cmd)
                }
                Err(e) => {
                    self.error = Some(e);
                    FormAction::Edit
                }
            },
        }
    }

    fn validate(&self) -> Result<Command, String> {
        if self.function.format == FunctionFormat::Dill {
            return Err("a dill function takes pickled arguments: use a Python client".into());
        }
        let args = parse_json(&self.fields.text(0), "[]", "args")?;
        if !args.is_array() {
            return Err("args must be a JSON array, like [2, 3]".into());
        }
        let kwargs = parse_json(&self.fields.text(1), "{}", "kwargs")?;
        if !kwargs.is_object() {
            return Err("kwargs must be a JSON object, like {\"x\": 1}".into());
        }
        Ok(Command::Invoke {
            function_id: self.function.function_id,
            args,
            kwargs,
        })
    }
}

fn parse_json(text: &str, empty: &str, what: &str) -> Result<serde_json::Value, String> {
    let text = match text.trim() {
        "" => empty,
        t => t,
    };
    serde_json::from_str(text).map_err(|e| format!("{what} is not valid JSON: {e}"))
}

/// The open form, if any.
#[derive(Clone, Debug)]
pub enum Form {
    Register(RegisterForm),
    Invoke(InvokeForm),
}
