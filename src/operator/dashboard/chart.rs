//! The backlog and replicas chart, drawn on the server as SVG: no script library, nothing to
//! load, readable without JavaScript. Pure.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::history::Point;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 48.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Shortest time span drawn: a queue served for seconds is not squeezed into a sliver.
const MIN_WINDOW: Duration = Duration::from_secs(60);

/// The chart of `points` up to `now`: backlog as a line on the left axis, replicas as a step
/// line on the right axis. It spans from the oldest reading (at most `max_window` back, at
/// least a minute).
pub fn render(points: &[Point], now: SystemTime, max_window: Duration) -> String {
    let window = points
        .first()
        .and_then(|p| now.duration_since(p.at).ok())
        .unwrap_or_default()
        .clamp(MIN_WINDOW, max_window.max(MIN_WINDOW));
    let start = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let max_backlog = nice_max(points.iter().filter_map(|p| p.backlog).max().unwrap_or(0));
    let max_replicas = nice_max(
        points
            .iter()
            .filter_map(|p| p.replicas)
            .max()
            .unwrap_or(0)
            .into(),
    );
    let minutes = window.as_secs().div_ceil(60);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">Backlog (max {max_backlog}) and replicas (max {max_replicas}) over the last {minutes} minutes</title>"#
    );
    axes(&mut svg, max_backlog, max_replicas, minutes);
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle" class="empty">no readings yet</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    }
    let x = |t: SystemTime| {
        let offset = t.duration_since(start).unwrap_or_default().as_secs_f64();
        LEFT + (offset / window.as_secs_f64()).min(1.0) * (WIDTH - LEFT - RIGHT)
    };
    let y = |v: f64, max: u64| TOP + (1.0 - v / max as f64) * (HEIGHT - TOP - BOTTOM);
    for segment in segments(points, |p| p.backlog) {
        let coords: Vec<String> = segment
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v as f64, max_backlog)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="backlog" points="{}"/>"#,
            coords.join(" ")
        );
    }
    for segment in segments(points, |p| p.replicas.map(u64::from)) {
        let mut d = String::new();
        for (i, (t, v)) in segment.iter().enumerate() {
            let (px, py) = (x(*t), y(*v as f64, max_replicas));
            if i == 0 {
                let _ = write!(d, "M{px:.1},{py:.1}");
            } else {
                let _ = write!(d, " H{px:.1} V{py:.1}");
            }
        }
        let _ = write!(svg, r#"<path class="replicas" d="{d}"/>"#);
    }
    svg.push_str("</svg>");
    svg
}

/// Axis lines, labels and the legend.
fn axes(svg: &mut String, max_backlog: u64, max_replicas: u64, minutes: u64) {
    let (right, bottom) = (WIDTH - RIGHT, HEIGHT - BOTTOM);
    let _ = write!(
        svg,
        r#"<g class="axes"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/><line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/><line x1="{right}" y1="{TOP}" x2="{right}" y2="{bottom}"/>"#
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end" class="backlog-label">{max_backlog}</text><text x="{}" y="{bottom}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        TOP + 10.0,
        LEFT - 4.0,
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" class="replicas-label">{max_replicas}</text><text x="{}" y="{bottom}">0</text>"#,
        right + 4.0,
        TOP + 10.0,
        right + 4.0,
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}">−{minutes} min</text><text x="{right}" y="{}" text-anchor="end">now</text>"#,
        HEIGHT - 8.0,
        HEIGHT - 8.0,
    );
    let _ = write!(
        svg,
        r#"<g class="legend"><line class="backlog" x1="{}" y1="{}" x2="{}" y2="{}"/><text x="{}" y="{}">backlog</text><line class="replicas" x1="{}" y1="{}" x2="{}" y2="{}"/><text x="{}" y="{}">replicas</text></g></g>"#,
        WIDTH / 2.0 - 90.0,
        HEIGHT - 12.0,
        WIDTH / 2.0 - 70.0,
        HEIGHT - 12.0,
        WIDTH / 2.0 - 66.0,
        HEIGHT - 8.0,
        WIDTH / 2.0 + 10.0,
        HEIGHT - 12.0,
        WIDTH / 2.0 + 30.0,
        HEIGHT - 12.0,
        WIDTH / 2.0 + 34.0,
        HEIGHT - 8.0,
    );
}

/// Runs of consecutive readings that have a value (a failed reading breaks the line).
fn segments(
    points: &[Point],
    value: impl Fn(&Point) -> Option<u64>,
) -> Vec<Vec<(SystemTime, u64)>> {
    let mut out: Vec<Vec<(SystemTime, u64)>> = Vec::new();
    let mut current = Vec::new();
    for p in points {
        match value(p) {
            Some(v) => current.push((p.at, v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The axis maximum: at least 1, rounded up to 1, 2, 3, 4, 5, 6 or 8 times a power of ten
/// (a line never sits far below the top).
fn nice_max(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 3, 4, 5, 6, 8] {
            let candidate = step.saturating_mul(m);
            if candidate >= v || candidate == u64::MAX {
                return candidate;
            }
        }
        step = step.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_chart_spans_from_the_oldest_reading_within_bounds() {
        let recent = [point(90, Some(1), None), point(0, Some(2), None)];
        assert!(render(&recent, now(), HOUR).contains("the last 2 minutes"));
        let fresh = [point(5, Some(1), None)];
        assert!(render(&fresh, now(), HOUR).contains("the last 1 minutes"));
        let old = [point(7200, Some(1), None), point(0, Some(1), None)];
        let svg = render(&old, now(), HOUR);
        assert!(svg.contains("the last 60 minutes"), "{svg}");
        // Older than the window: clamped to the left edge.
        assert!(polyline_coords(&svg)[0][0].0 >= LEFT);
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000)
    }

    fn point(ago: u64, backlog: Option<u64>, replicas: Option<u32>) -> Point {
        Point {
            at: now() - Duration::from_secs(ago),
            backlog,
            replicas,
        }
    }

    /// (x, y) pairs of every polyline.
    fn polyline_coords(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split(r#"<polyline class="backlog" points=""#)
            .skip(1)
            .map(|rest| {
                rest.split('"')
                    .next()
                    .unwrap()
                    .split(' ')
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn axis_maxima_are_round_numbers() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(1), 1);
        assert_eq!(nice_max(3), 3);
        assert_eq!(nice_max(7), 8);
        assert_eq!(nice_max(9), 10);
        assert_eq!(nice_max(1999), 2000);
        assert_eq!(nice_max(2001), 3000);
        assert_eq!(nice_max(u64::MAX), u64::MAX);
    }

    #[test]
    fn an_empty_history_says_so() {
        let svg = render(&[], now(), HOUR);
        assert!(svg.contains("no readings yet"), "{svg}");
        assert!(!svg.contains("<polyline"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn a_draining_backlog_goes_down_left_to_right_inside_the_plot() {
        let points = [
            point(600, Some(2000), Some(0)),
            point(300, Some(1000), Some(4)),
            point(0, Some(0), Some(4)),
        ];
        let svg = render(&points, now(), HOUR);
        let lines = polyline_coords(&svg);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "{line:?}");
        assert!(line.windows(2).all(|w| w[0].1 < w[1].1), "{line:?}");
        for (x, y) in line {
            assert!((LEFT..=WIDTH - RIGHT).contains(x), "{x}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(y), "{y}");
        }
        // The newest reading sits on the right edge, at zero.
        assert_eq!(line[2], (WIDTH - RIGHT, HEIGHT - BOTTOM));
        assert!(svg.contains(r#"<path class="replicas" d="M"#), "{svg}");
        assert!(
            svg.contains(">2000<"),
            "the backlog axis is labelled: {svg}"
        );
    }

    #[test]
    fn a_failed_reading_breaks_the_line() {
        let points = [
            point(30, Some(5), Some(1)),
            point(20, None, Some(1)),
            point(10, Some(7), Some(1)),
            point(0, Some(8), Some(1)),
        ];
        let lines = polyline_coords(&render(&points, now(), HOUR));
        assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
    }
}
