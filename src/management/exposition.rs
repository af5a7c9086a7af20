//! Prometheus' text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then one
//! line per sample, `name{label="value",…} value`. Label values escape `\`, `"` and line
//! feeds; HELP texts escape `\` and line feeds. A family's header is written even when no
//! sample follows (RabbitMQ's plugin does the same for empty per-object families).

use std::fmt::Write;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

/// One metric family: its name without the prefix, type and help text.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// A sample's value: integers are written exactly, fractions as Rust prints an `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Integer(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Value {
        Value::Integer(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Value {
        Value::Float(value)
    }
}

/// Writes families and samples into one text body.
pub struct Writer {
    out: String,
    /// Prepended to every family's name (`rabbitmq_`, `rabbitmq_detailed_`).
    prefix: &'static str,
    /// The family whose header was written last (its samples follow it).
    open: &'static str,
}

impl Writer {
    pub fn new(prefix: &'static str) -> Writer {
        Writer {
            out: String::with_capacity(16 * 1024),
            prefix,
            open: "",
        }
    }

    /// The same output with another prefix for the families that follow.
    pub fn set_prefix(&mut self, prefix: &'static str) {
        self.prefix = prefix;
    }

    /// Starts `family`: its TYPE and HELP lines; its samples follow.
    pub fn family(&mut self, family: &Family) {
        self.open = family.name;
        let (prefix, name) = (self.prefix, family.name);
        let _ = writeln!(self.out, "# TYPE {prefix}{name} {}", family.kind.as_str());
        let _ = write!(self.out, "# HELP {prefix}{name} ");
        for c in family.help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push('\n');
    }

    /// A family with its one sample.
    pub fn single(&mut self, family: &Family, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.family(family);
        self.sample(labels, value);
    }

    /// One sample of the family started last.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(self.prefix);
        self.out.push_str(self.open);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (name, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                self.out.push_str(name);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Integer(value) => {
                let _ = write!(self.out, "{value}");
            }
            Value::Float(value) => write_float(&mut self.out, value),
        }
        self.out.push('\n');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value as the text format spells it inside double quotes.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Finite values as Rust prints them (`0.5`, `12`); the special values as Prometheus spells
/// them.
fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: Family = Family {
        name: "queue_messages_ready",
        kind: Kind::Gauge,
        help: "Messages ready to be delivered to consumers",
    };

    #[test]
    fn a_family_has_its_header_before_its_samples() {
        let mut writer = Writer::new("rabbitmq_");
        writer.family(&READY);
        writer.sample(&[("vhost", "/"), ("queue", "a")], 3u64);
        writer.sample(&[("vhost", "/"), ("queue", "b")], 0u64);
        assert_eq!(
            writer.finish(),
            "# TYPE rabbitmq_queue_messages_ready gauge\n\
             # HELP rabbitmq_queue_messages_ready Messages ready to be delivered to consumers\n\
             rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"a\"} 3\n\
             rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"b\"} 0\n"
        );
    }

    #[test]
    fn label_values_escape_backslash_quote_and_line_feed() {
        let mut writer = Writer::new("rabbitmq_");
        writer.single(&READY, &[("queue", "a\\b\"c\nd é")], 1u64);
        let text = writer.finish();
        assert!(
            text.ends_with("rabbitmq_queue_messages_ready{queue=\"a\\\\b\\\"c\\nd é\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn help_escapes_backslash_and_line_feed() {
        let family = Family {
            name: "x",
            kind: Kind::Untyped,
            help: "a\\b\nc \"d\"",
        };
        let mut writer = Writer::new("p_");
        writer.single(&family, &[], 1u64);
        assert_eq!(
            writer.finish(),
            "# TYPE p_x untyped\n# HELP p_x a\\\\b\\nc \"d\"\np_x 1\n"
        );
    }

    #[test]
    fn floats_and_special_values() {
        let mut out = String::new();
        for value in [0.5, 12.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            write_float(&mut out, value);
            out.push(' ');
        }
        assert_eq!(out, "0.5 12 NaN +Inf -Inf ");
    }
}
