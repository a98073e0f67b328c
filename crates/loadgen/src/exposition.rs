//! Reading a service's own `/metrics` (Prometheus text exposition): the
//! driver and the showdown ask the stack what it counted itself.

/// The text of `{base}/metrics`, or `None` when the service does not answer.
pub async fn scrape(client: &reqwest::Client, base: &str) -> Option<String> {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The sum of the samples of `name` whose label set passes `labels`.
pub fn sum(text: &str, name: &str, labels: impl Fn(&str) -> bool) -> f64 {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.rsplit_once("} "))
        .filter(|(set, _)| labels(set))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// Every sample line: its name, its labels (values unescaped) and its value.
pub fn samples(text: &str) -> impl Iterator<Item = (&str, Vec<(&str, String)>, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            match series.split_once('{') {
                Some((name, set)) => Some((name, labels(set.strip_suffix('}')?)?, value)),
                None => Some((series, Vec::new(), value)),
            }
        })
}

/// `a="x",b="y \"quoted\""` as pairs.
fn labels(mut set: &str) -> Option<Vec<(&str, String)>> {
    let mut pairs = Vec::new();
    while !set.is_empty() {
        let (key, rest) = set.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        pairs.push((key, value));
        set = rest[end + 1..].trim_start_matches(',');
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_are_read_with_their_labels() {
        let text = "# HELP x\nup 1\nhttp{route=\"/p/{id}\",note=\"a \\\"b\\\", c\"} 2.5\n";
        let all: Vec<_> = samples(text).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], ("up", vec![], 1.0));
        assert_eq!(
            all[1],
            (
                "http",
                vec![
                    ("route", "/p/{id}".to_owned()),
                    ("note", "a \"b\", c".to_owned())
                ],
                2.5
            )
        );
    }

    #[test]
    fn samples_are_summed_by_name_and_labels() {
        let text = "\
# TYPE http_requests_total counter
http_requests_total{route=\"/track_click\",status=\"200\"} 120
http_requests_total{route=\"/track_click\",status=\"503\"} 7
http_requests_total_other{route=\"/track_click\",status=\"200\"} 5
sync_workers_busy{service=\"order\",mode=\"sync\"} 3
";
        let clicks_2xx = sum(text, "http_requests_total", |l| {
            l.contains("route=\"/track_click\"") && l.contains("status=\"2")
        });
        assert_eq!(clicks_2xx, 120.0);
        assert_eq!(sum(text, "http_requests_total", |_| true), 127.0);
        assert_eq!(sum(text, "sync_workers_busy", |_| true), 3.0);
        assert_eq!(sum(text, "missing", |_| true), 0.0);
    }
}
