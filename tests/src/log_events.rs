//! Daemon log lines read as data: the harness starts every daemon with JSON logs, and tests
//! match an event's stable `event` name and fields, never the wording of its message.
//!
//! A line of `tracing-subscriber`'s JSON format looks like
//! `{"timestamp":..,"level":"INFO","fields":{"message":"worker joined","event":"worker_joined",
//! "worker":"w-1",..},"target":"faas_daemons::dispatcher::remote","spans":[{"name":"task",..}]}`.
//! The fields of the spans the event happened in count as its own (the innermost span wins,
//! the event's own fields win over all), so `task_id` set on a task's span is there too.

use serde_json::{Map, Value};

/// One parsed log line of a daemon.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    /// `TRACE` .. `ERROR`.
    pub level: String,
    /// The module that logged it, e.g. `faas_daemons::gateway::edge`.
    pub target: String,
    /// The human-readable text: shown, never matched by tests.
    pub message: String,
    /// The event's fields and those of its spans, without `message`.
    pub fields: Map<String, Value>,
}

impl LogEvent {
    /// Parses one JSON log line; `None` for anything else (the harness's `=== command` header,
    /// or a usage error a daemon printed before its logging was set up).
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        let mut v: Map<String, Value> = serde_json::from_str(line).ok()?;
        let mut fields = Map::new();
        // `spans` lists the spans entered, outermost first; `span` is the event's own (its
        // explicit parent, when it was given one, which `spans` does not show), so it comes last.
        let mut spans = match v.remove("spans") {
            Some(Value::Array(spans)) => spans,
            _ => Vec::new(),
        };
        spans.extend(v.remove("span"));
        for span in spans {
            if let Value::Object(span) = span {
                fields.extend(span.into_iter().filter(|(k, _)| k != "name"));
            }
        }
        let Some(Value::Object(own)) = v.remove("fields") else {
            return None;
        };
        fields.extend(own);
        let message = match fields.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Some(Self {
            level: text("level"),
            target: text("target"),
            message,
            fields,
        })
    }

    /// The stable name of the event (its `event` field), if it has one.
    pub fn event(&self) -> Option<&str> {
        self.field("event")
    }

    /// Whether this is the event named `name`.
    pub fn is(&self, name: &str) -> bool {
        self.event() == Some(name)
    }

    /// A field's value when it is a string (`%x` and `?x` fields are logged as strings).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// A field's value whatever its type (numbers and booleans stay JSON numbers and booleans).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// A numeric field.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.fields.get(name).and_then(Value::as_u64)
    }

    /// One compact human-readable line: `LEVEL target: message event=.. k=v ..`.
    pub fn render(&self) -> String {
        let mut out = format!("{} {}: {}", self.level, self.target, self.message);
        // The event name first: it is what a test looks for.
        let ordered = self
            .fields
            .get_key_value("event")
            .into_iter()
            .chain(self.fields.iter().filter(|(k, _)| *k != "event"));
        for (k, v) in ordered {
            match v {
                Value::String(s) => out.push_str(&format!(" {k}={s}")),
                other => out.push_str(&format!(" {k}={other}")),
            }
        }
        out
    }
}

/// The store's "redis not reachable yet" warning: a daemon waiting for Redis at start.
pub fn redis_unreachable(e: &LogEvent) -> bool {
    e.is("redis_unreachable")
}

/// The store's circuit breaker opening: Redis stopped answering.
pub fn redis_circuit_open(e: &LogEvent) -> bool {
    e.is("redis_circuit_open")
}

/// Renders a log for people: JSON lines compactly, anything else as it is. A JSON line behind
/// `faas up`'s `name | ` prefix keeps its prefix.
pub fn render_log(text: &str) -> String {
    let line = |l: &str| {
        if let Some(e) = LogEvent::parse(l) {
            return e.render();
        }
        match l.split_once("| {") {
            Some((prefix, rest)) => match LogEvent::parse(&format!("{{{rest}")) {
                Some(e) => format!("{prefix}| {}", e.render()),
                None => l.to_owned(),
            },
            None => l.to_owned(),
        }
    };
    text.lines().map(line).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_read_with_its_span_fields() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"late result dropped","event":"late_result_dropped","attempt":1},"target":"faas_daemons::dispatcher::remote","span":{"name":"task","task_id":"x"},"spans":[{"name":"worker","worker":"w-1","attempt":9}]}"#;
        let e = LogEvent::parse(line).expect("parses");
        assert!(e.is("late_result_dropped"));
        assert_eq!(e.level, "INFO");
        assert_eq!(e.target, "faas_daemons::dispatcher::remote");
        assert_eq!(e.message, "late result dropped");
        assert_eq!(e.field("worker"), Some("w-1"));
        assert_eq!(e.field("task_id"), Some("x"));
        // The event's own field wins over a span's.
        assert_eq!(e.number("attempt"), Some(1));
        assert!(!e.fields.contains_key("message"));
        assert_eq!(
            e.render(),
            "INFO faas_daemons::dispatcher::remote: late result dropped \
             event=late_result_dropped attempt=1 task_id=x worker=w-1"
        );
    }

    #[test]
    fn other_lines_are_not_events() {
        assert_eq!(LogEvent::parse("=== faas-gateway --port 1"), None);
        assert_eq!(LogEvent::parse("error: the key has 2 bytes"), None);
        assert_eq!(LogEvent::parse("{\"not\": \"a log line\"}"), None);
        assert_eq!(render_log("plain\n"), "plain");
        let prefixed = r#"gateway    | {"level":"INFO","fields":{"message":"gateway listening","event":"listening"},"target":"t"}"#;
        assert_eq!(
            render_log(prefixed),
            "gateway    | INFO t: gateway listening event=listening"
        );
    }
}
