//! What every dashboard page is made of: figures, an optional chart, tables of cells and
//! buttons. One model serves both the HTML (rendered once by the template) and the JSON the
//! page polls to update itself, so the two never disagree.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Page {
    /// The document title and the page's heading.
    pub title: String,
    /// The JSON address the page polls (`None`: a static page).
    pub api: Option<String>,
    /// A problem to show above everything (Redis unreachable, job not found).
    pub notice: Option<String>,
    pub stats: Vec<Stat>,
    /// A server-drawn SVG chart.
    pub chart: Option<String>,
    /// Buttons acting on the whole page's object (replay all dead letters, ...).
    pub actions: Vec<Cell>,
    pub tables: Vec<Table>,
    /// The namespace filter (overview only): the choices and the one chosen.
    pub namespaces: Vec<String>,
    pub namespace: Option<String>,
}

/// A labelled figure.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub label: String,
    pub value: String,
    /// Where the value links to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
}

impl Stat {
    pub fn new(label: &str, value: impl ToString) -> Self {
        Stat {
            label: label.to_string(),
            value: value.to_string(),
            href: None,
        }
    }

    pub fn link(label: &str, value: impl ToString, href: String) -> Self {
        Stat {
            href: Some(href),
            ..Stat::new(label, value)
        }
    }
}

/// A table with a caption and column headers.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// The element id (what the page script updates).
    pub id: String,
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Said in place of rows when there are none.
    pub empty: String,
}

impl Table {
    pub fn new(id: &str, caption: &str, headers: &[&str], empty: &str) -> Self {
        Table {
            id: id.to_string(),
            caption: caption.to_string(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            empty: empty.to_string(),
        }
    }
}

/// A table cell: text, a link, or a button that POSTs to `action`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cell {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A question the button asks before acting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    /// `num` (right-aligned figures), `error`, `mono`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl Cell {
    pub fn text(text: impl ToString) -> Self {
        Cell {
            text: text.to_string(),
            ..Cell::default()
        }
    }

    pub fn num(n: impl ToString) -> Self {
        Cell::text(n).with_class("num")
    }

    pub fn link(text: impl ToString, href: String) -> Self {
        Cell {
            href: Some(href),
            ..Cell::text(text)
        }
    }

    pub fn button(label: &str, action: String, confirm: Option<String>) -> Self {
        Cell {
            action: Some(action),
            confirm,
            ..Cell::text(label)
        }
    }

    pub fn with_class(mut self, class: &str) -> Self {
        self.class = Some(class.to_string());
        self
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The queue page's address.
pub fn queue_href(namespace: &str, name: &str) -> String {
    format!("/queues/{}/{}", encode(namespace), encode(name))
}

/// The job page's address.
pub fn job_href(id: &str) -> String {
    format!("/jobs?id={}", encode(id))
}

/// A unix-ms time as `2026-12-07 02:45:01 UTC`.
pub fn time_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A system time as [`time_ms`].
pub fn time(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    time_ms(ms)
}

/// A duration people read at a glance: `850ms`, `12.3s`, `4m 05s`, `2h 10m`.
pub fn span(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", d.as_secs_f64()),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// A time relative to `now_ms`: `in 4.0s` or `3m 00s ago`.
pub fn relative_ms(ms: i64, now_ms: i64) -> String {
    let d = Duration::from_millis(ms.abs_diff(now_ms));
    if ms >= now_ms {
        format!("in {}", span(d))
    } else {
        format!("{} ago", span(d))
    }
}

/// Now, in unix ms.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(span(Duration::from_millis(850)), "850ms");
        assert_eq!(span(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(span(Duration::from_secs(245)), "4m 05s");
        assert_eq!(span(Duration::from_secs(7800)), "2h 10m");
        assert_eq!(relative_ms(5_000, 1_000), "in 4.0s");
        assert_eq!(relative_ms(1_000, 181_000), "3m 00s ago");
    }

    #[test]
    fn addresses_encode_names_and_ids() {
        assert_eq!(queue_href("default", "demo"), "/queues/default/demo");
        assert_eq!(job_href("a b/c?"), "/jobs?id=a%20b%2Fc%3F");
        assert_eq!(time_ms(0), "1970-01-01 00:00:00 UTC");
    }
}
