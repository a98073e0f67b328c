//! The two stacks the page races: where each service of a mode answers,
//! whether it runs, what its workers and queues are doing, and its launcher.

use std::collections::HashMap;
use std::time::Duration;

use common::Mode;
use serde::Serialize;
use serde_json::Value;

use crate::Config;

pub struct Lane {
    pub mode: Mode,
    /// `http://host:{port}`-style template: `{service}` and `{port}` are replaced.
    url: String,
    /// `lab up`'s control endpoint for this stack.
    control: String,
    /// Services that answer elsewhere than the template says (tests: port 0 each).
    overrides: HashMap<String, String>,
    /// For the race: one connection per concurrent request, no timeout
    /// shorter than the slowest scenario (crate::http says why not reqwest).
    pub racer: crate::http::Client,
    /// For the launcher's stop and start, which take their time.
    client: reqwest::Client,
    /// For status reads and gauges: short timeouts.
    pub quick: reqwest::Client,
}

/// A stack's sync worker pool, from a service's `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Workers {
    pub service: String,
    pub busy: f64,
    pub waiting: f64,
    pub max: f64,
}

impl Lane {
    pub fn new(mode: Mode, url: &str, control: &str) -> anyhow::Result<Lane> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let quick = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Lane {
            mode,
            url: url.to_owned(),
            control: control.trim_end_matches('/').to_owned(),
            overrides: HashMap::new(),
            racer: crate::http::Client::new(Duration::from_secs(120)),
            client,
            quick,
        })
    }

    pub fn from_config(
        config: &Config,
        overrides: [HashMap<String, String>; 2],
    ) -> anyhow::Result<[Lane; 2]> {
        let [sync, asynchronous] = overrides;
        let mut lanes = [
            Lane::new(Mode::Sync, &config.sync_url, &config.sync_control)?,
            Lane::new(Mode::Async, &config.async_url, &config.async_control)?,
        ];
        lanes[0].overrides = sync;
        lanes[1].overrides = asynchronous;
        Ok(lanes)
    }

    /// `http://127.0.0.1:8105` for the async order service, by default.
    pub fn base(&self, service: &str) -> String {
        if let Some(base) = self.overrides.get(service) {
            return base.trim_end_matches('/').to_owned();
        }
        let port = common::services::find(service).map_or(0, |s| s.port(self.mode));
        self.url
            .replace("{service}", service)
            .replace("{port}", &port.to_string())
            .trim_end_matches('/')
            .to_owned()
    }

    /// Whether the service answers `/health` in this lane's mode.
    pub async fn running(&self, service: &str) -> bool {
        let Ok(response) = self
            .quick
            .get(format!("{}/health", self.base(service)))
            .send()
            .await
        else {
            return false;
        };
        let health: Value = response.json().await.unwrap_or_default();
        health["mode"] == self.mode.as_str()
    }

    pub async fn get_json(&self, service: &str, path: &str) -> Option<(u16, Value)> {
        let response = self
            .quick
            .get(format!("{}{path}", self.base(service)))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.unwrap_or_default()))
    }

    pub async fn workers(&self, service: &str) -> Option<Workers> {
        let text = loadgen::exposition::scrape(&self.quick, &self.base(service)).await?;
        let gauge = |name: &str| loadgen::exposition::sum(&text, name, |_| true);
        Some(Workers {
            service: service.to_owned(),
            busy: gauge("sync_workers_busy"),
            waiting: gauge("sync_workers_waiting"),
            max: gauge("sync_workers_max"),
        })
    }

    /// How many database connections the service's pool holds open
    /// (`db_pool_connections_open`); `None` when its `/metrics` does not answer.
    pub async fn pool_open(&self, service: &str) -> Option<u32> {
        let text = loadgen::exposition::scrape(&self.quick, &self.base(service)).await?;
        loadgen::exposition::samples(&text)
            .find(|(name, _, _)| *name == "db_pool_connections_open")
            .map(|(_, _, open)| open as u32)
    }

    /// Asks this stack's launcher to stop or start a service; `Err` with why not.
    pub async fn control(&self, service: &str, action: &str) -> Result<String, String> {
        let response = self
            .client
            .post(format!("{}/services/{service}/{action}", self.control))
            .timeout(Duration::from_secs(70))
            .send()
            .await
            .map_err(|_| format!("no launcher answers at {}", self.control))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            Ok(body["state"].as_str().unwrap_or("unknown").to_owned())
        } else {
            Err(body["detail"]
                .as_str()
                .map_or_else(|| format!("the launcher answered {status}"), str::to_owned))
        }
    }

    /// Each service's state as the launcher sees it; `None` when no launcher answers.
    pub async fn launcher(&self) -> Option<Value> {
        let response = self
            .quick
            .get(format!("{}/services", self.control))
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())?;
        let body: Value = response.json().await.ok()?;
        (body["mode"] == self.mode.as_str()).then_some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_finds_each_service_from_its_template() {
        let lane = Lane::new(
            Mode::Async,
            "http://127.0.0.1:{port}",
            "http://127.0.0.1:8100",
        )
        .expect("client");
        assert_eq!(lane.base("order"), "http://127.0.0.1:8105");
        let compose = Lane::new(Mode::Sync, "http://{service}-sync:{port}/", "").expect("client");
        assert_eq!(compose.base("payment"), "http://payment-sync:8002");
    }
}
