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

    /// Where instance `replica` of the service listens when `lab up` runs
    /// several (`--replicas`, `LAB_REPLICAS`): instance 0 on the contract's
    /// port, instance r 1000 × r above it (email async: 8107, 9107, 10107).
    pub const fn replica_port(&self, mode: Mode, replica: u16) -> u16 {
        self.port(mode) + 1000 * replica
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

/// The most instances of one service `lab up` runs (their ports stay below 16000).
pub const MAX_REPLICAS: u16 = 8;

/// How many instances of each service run: `email=3,user=2` (`lab up
/// --replicas`, `lab-load run --replicas`, both also from `LAB_REPLICAS`);
/// a service not named runs once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replicas(Vec<(&'static str, u16)>);

impl Replicas {
    pub fn parse(s: &str) -> Result<Replicas, String> {
        let mut counts = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, count) = part
                .split_once('=')
                .ok_or_else(|| format!("{part}: expected service=count, e.g. email=3"))?;
            let spec = find(name.trim()).ok_or_else(|| format!("no service named {name}"))?;
            let count: u16 = count
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=MAX_REPLICAS).contains(n))
                .ok_or_else(|| format!("{part}: the count is 1 to {MAX_REPLICAS}"))?;
            if counts.iter().any(|(n, _)| *n == spec.name) {
                return Err(format!("{name} is named twice"));
            }
            counts.push((spec.name, count));
        }
        Ok(Replicas(counts))
    }

    /// How many instances of the service run (1 unless named).
    pub fn of(&self, name: &str) -> u16 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1, |(_, count)| *count)
    }

    /// The ports of the service's instances, instance 0 first.
    pub fn ports(&self, spec: &ServiceSpec, mode: Mode) -> Vec<u16> {
        (0..self.of(spec.name))
            .map(|r| spec.replica_port(mode, r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_counted_per_service_and_ported_apart() {
        let r = Replicas::parse("email=3, user=2").unwrap();
        assert_eq!((r.of("email"), r.of("user"), r.of("payment")), (3, 2, 1));
        assert_eq!(r.ports(&EMAIL, Mode::Async), [8107, 9107, 10107]);
        assert_eq!(r.ports(&USER, Mode::Sync), [8001, 9001]);
        assert_eq!(Replicas::parse("").unwrap(), Replicas::default());
        for bad in [
            "email",
            "mail=2",
            "email=0",
            "email=9",
            "email=x",
            "email=2,email=3",
        ] {
            assert!(Replicas::parse(bad).is_err(), "{bad}");
        }
        // No instance of one mode lands on a port of the other's.
        let all = |mode| -> Vec<u16> {
            SERVICES
                .iter()
                .flat_map(|s| (0..MAX_REPLICAS).map(move |r| s.replica_port(mode, r)))
                .collect()
        };
        let sync = all(Mode::Sync);
        assert!(all(Mode::Async).iter().all(|p| !sync.contains(p)));
    }
}
