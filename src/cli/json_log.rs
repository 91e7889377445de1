//! JSON log lines with every 64-bit integer written as a string.
//!
//! Incarnations, connection ids and sequence numbers are random or large `u64`s; as JSON numbers
//! they lose their low digits in JavaScript, `jq` and every other reader that parses numbers as
//! doubles (exact only up to 2^53). This formatter writes one object per line, shaped like
//! `tracing-subscriber`'s JSON format (`timestamp`, `level`, `fields`, `target`, and `span` /
//! `spans` inside spans), but every integer field (`u64`, `i64`, `u128`, `i128`, and so `usize`)
//! is a JSON string, whatever its value, so a field has one type. Floats and booleans stay JSON
//! numbers and booleans.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonLines;

/// The span field formatter: the fields as a JSON object, integers as strings.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JsonStringFields;

/// Fields in the order they are recorded (the message first), a later value of the same name
/// replacing the earlier one.
#[derive(Debug, Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    /// The fields as a JSON object, in order.
    fn to_json(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    /// Fields of a JSON object written by [`Fields::to_json`] (in its order).
    fn from_json(text: &str) -> Self {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Self(m.into_iter().collect()),
            _ => Self::default(),
        }
    }
}

/// Collects fields.
struct Collect<'a>(&'a mut Fields);

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        match self.0.0.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.0.0.push((name.to_owned(), value)),
        }
    }
}

impl Visit for Collect<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value)
                .map_or_else(|| Value::String(value.to_string()), Value::Number),
        );
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

impl<'writer> FormatFields<'writer> for JsonStringFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut all = Fields::default();
        fields.record(&mut Collect(&mut all));
        write!(writer, "{}", all.to_json())
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut all = Fields::from_json(&current.fields);
        fields.record(&mut Collect(&mut all));
        current.fields = all.to_json();
        Ok(())
    }
}

/// A span as `{"name": …, fields…}`.
fn span_json<S>(span: &tracing_subscriber::registry::SpanRef<'_, S>) -> String
where
    S: for<'a> LookupSpan<'a>,
{
    let extensions = span.extensions();
    let mut all = extensions
        .get::<FormattedFields<JsonStringFields>>()
        .map(|f| Fields::from_json(&f.fields))
        .unwrap_or_default();
    all.0
        .insert(0, ("name".into(), Value::String(span.name().to_owned())));
    all.to_json()
}

impl<S> FormatEvent<S, JsonStringFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonStringFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields::default();
        event.record(&mut Collect(&mut fields));
        let meta = event.metadata();
        let text = |t: &str| Value::String(t.to_owned());
        let mut line = format!(
            "{{\"timestamp\":{},\"level\":{},\"fields\":{},\"target\":{}",
            text(&timestamp),
            text(meta.level().as_str()),
            fields.to_json(),
            text(meta.target())
        );
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<String> = scope.from_root().map(|s| span_json(&s)).collect();
            if let Some(current) = spans.last() {
                line.push_str(&format!(",\"span\":{current}"));
            }
            line.push_str(&format!(",\"spans\":[{}]", spans.join(",")));
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn integers_are_strings_inside_and_outside_spans() {
        let out = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .fmt_fields(JsonStringFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("link", incarnation = u64::MAX);
            let _in = span.enter();
            tracing::info!(
                seq = 9_007_199_254_740_993_u64,
                delta = -3_i64,
                ratio = 0.5,
                up = true,
                peer = "b",
                "peer connected"
            );
        });
        let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        let f = &v["fields"];
        assert_eq!(f["message"], "peer connected");
        assert!(text.starts_with("{\"timestamp\":"), "{text}");
        assert_eq!(f["seq"], "9007199254740993");
        assert_eq!(f["delta"], "-3");
        assert_eq!(f["ratio"], 0.5);
        assert_eq!(f["up"], true);
        assert_eq!(f["peer"], "b");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["span"]["name"], "link");
        assert_eq!(v["span"]["incarnation"], u64::MAX.to_string());
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
    }
}
