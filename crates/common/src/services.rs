//! The ten services of the lab and their contract ports.

use std::fmt;

/// The mode this build runs in, chosen at compile time by the `async` feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sync,
    Async,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mode of this build. The async feature wins when both could apply.
pub const MODE: Mode = if cfg!(feature = "async") {
    Mode::Async
} else {
    Mode::Sync
};

/// One service: its name and its ports in each mode (the sync ports are
/// the original services', which existing clients call; async adds 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub sync_port: u16,
    pub async_port: u16,
}

/// Where a mode's launcher (`lab up`) takes stop/start requests unless
/// `LAB_CONTROL_PORT` says otherwise: just below the mode's service ports.
pub const fn launcher_port(mode: Mode) -> u16 {
    match mode {
        Mode::Sync => 8000,
        Mode::Async => 8100,
    }
}

impl ServiceSpec {
    pub const fn port(&self, mode: Mode) -> u16 {
        match mode {
            Mode::Sync => self.sync_port,
            Mode::Async => self.async_port,
        }
    }

    /// The Postgres schema the service owns; nobody else reads it.
    pub fn schema(&self) -> String {
        format!("{}_service", self.name)
    }

    /// The environment variable that tells other services where this one is.
    pub fn url_var(&self) -> String {
        format!("{}_SERVICE_URL", self.name.to_uppercase())
    }

    /// The name of the service's binary.
    pub fn binary(&self) -> String {
        format!("{}-service", self.name)
    }
}

const fn spec(name: &'static str, sync_port: u16) -> ServiceSpec {
    ServiceSpec {
        name,
        sync_port,
        async_port: sync_port + 100,
    }
}

pub const USER: ServiceSpec = spec("user", 8001);
pub const PAYMENT: ServiceSpec = spec("payment", 8002);
pub const PRODUCT: ServiceSpec = spec("product", 8003);
pub const REPORT: ServiceSpec = spec("report", 8004);
pub const ORDER: ServiceSpec = spec("order", 8005);
pub const ANALYTICS: ServiceSpec = spec("analytics", 8006);
pub const EMAIL: ServiceSpec = spec("email", 8007);
pub const SEARCH: ServiceSpec = spec("search", 8008);
pub const CACHE: ServiceSpec = spec("cache", 8009);
pub const INVENTORY: ServiceSpec = spec("inventory", 8010);

/// All ten services, in port order.
pub const SERVICES: [ServiceSpec; 10] = [
    USER, PAYMENT, PRODUCT, REPORT, ORDER, ANALYTICS, EMAIL, SEARCH, CACHE, INVENTORY,
];

/// Looks a service up by name.
pub fn find(name: &str) -> Option<&'static ServiceSpec> {
    SERVICES.iter().find(|s| s.name == name)
}
