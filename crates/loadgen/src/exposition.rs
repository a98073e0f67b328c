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

#[cfg(test)]
mod tests {
    use super::*;

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
