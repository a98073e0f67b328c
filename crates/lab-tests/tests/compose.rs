//! The Docker Compose files agree with the code: every service of
//! `common::SERVICES` on its contract port in each mode, only variables the
//! code reads (`common::config::VARS`), peers where they really are, the
//! self health check, equal limits in both modes, and a `.env.example` that
//! defines every variable the files use, with the code's defaults.
//!
//! The files are read as Compose reads them: YAML merge keys applied, then
//! `${VAR}` interpolated from `.env.example`. No Docker needed.

// A failed unwrap in a test is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::config::VARS;
use common::{Mode, SERVICES, Settings};
use serde_norway::Value;

/// Each file and the stacks it runs.
const FILES: [(&str, &[Mode]); 3] = [
    ("docker-compose.sync.yml", &[Mode::Sync]),
    ("docker-compose.async.yml", &[Mode::Async]),
    ("docker-compose.combined.yml", &[Mode::Sync, Mode::Async]),
];

/// Extra async consumers, scaled with `--scale <name>-worker=N`.
const WORKERS: [&str; 7] = [
    "email",
    "payment",
    "report",
    "inventory",
    "search",
    "cache",
    "analytics",
];

/// The image of the lab's services, tagged by mode.
const LAB_IMAGE: &str = "sync-vs-async-lab";

/// The race page's binary in the image.
const SHOWDOWN: &str = "/usr/local/bin/showdown";

/// Variables of Compose itself, not of any service.
const COMPOSE_VARS: [&str; 1] = ["COMPOSE_PROJECT_NAME"];

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `.env.example` as name → value.
fn env_example() -> BTreeMap<String, String> {
    repo_file(".env.example")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!(".env.example: not NAME=value: {line}"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Compose's interpolation of one string: `$$` is a `$`; `${VAR}`, `$VAR`,
/// `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `${VAR?error}`.
/// Every variable named is added to `used`.
fn interpolate(
    text: &str,
    env: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let expr = &after[..end];
            rest = &after[end + 1..];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            used.insert(name.to_owned());
            let value = env.get(name);
            let empty = value.is_none_or(String::is_empty);
            let value = match op {
                "" => value.cloned().unwrap_or_default(),
                _ if op.starts_with(":-") => {
                    if empty {
                        op[2..].to_owned()
                    } else {
                        value.unwrap().clone()
                    }
                }
                _ if op.starts_with('-') => value.cloned().unwrap_or_else(|| op[1..].to_owned()),
                _ if op.starts_with(":?") && empty => return Err(format!("{name}: {}", &op[2..])),
                _ if op.starts_with('?') && value.is_none() => {
                    return Err(format!("{name}: {}", &op[1..]));
                }
                _ if op.starts_with(":?") || op.starts_with('?') => value.unwrap().clone(),
                _ => return Err(format!("unknown interpolation ${{{expr}}} in {text:?}")),
            };
            out.push_str(&value);
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            assert!(!name.is_empty(), "a lone $ in {text:?} (write $$)");
            used.insert(name.to_owned());
            out.push_str(env.get(name).map_or("", String::as_str));
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn interpolate_all(
    value: &mut Value,
    env: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> Result<(), String> {
    match value {
        Value::String(s) => *s = interpolate(s, env, used)?,
        Value::Sequence(items) => {
            for item in items {
                interpolate_all(item, env, used)?;
            }
        }
        Value::Mapping(map) => {
            for (_, item) in map.iter_mut() {
                interpolate_all(item, env, used)?;
            }
        }
        Value::Tagged(tagged) => interpolate_all(&mut tagged.value, env, used)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Applies YAML merge keys (`<<`), nested ones too: a merged mapping's own
/// `<<` is resolved first (serde_norway's `apply_merge` leaves it as a key).
/// The first mapping of a `<<` list wins, and the mapping's own keys over all.
fn merge_keys(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            for (_, item) in map.iter_mut() {
                merge_keys(item);
            }
            let sources = match map.remove("<<") {
                None => vec![],
                Some(Value::Sequence(items)) => items,
                Some(single) => vec![single],
            };
            for source in sources {
                let Value::Mapping(source) = source else {
                    panic!("<< takes mappings, not {source:?}");
                };
                for (key, item) in source {
                    map.entry(key).or_insert(item);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(merge_keys),
        Value::Tagged(tagged) => merge_keys(&mut tagged.value),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// One compose file as Compose sees it, and the variables it uses.
struct Compose {
    name: &'static str,
    modes: &'static [Mode],
    doc: Value,
    used: BTreeSet<String>,
}

fn parse(name: &'static str, modes: &'static [Mode], env: &BTreeMap<String, String>) -> Compose {
    let mut doc: Value = serde_norway::from_str(&repo_file(name))
        .unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
    merge_keys(&mut doc);
    let mut used = BTreeSet::new();
    interpolate_all(&mut doc, env, &mut used).unwrap_or_else(|e| panic!("{name}: {e}"));
    Compose {
        name,
        modes,
        doc,
        used,
    }
}

fn files() -> Vec<Compose> {
    let env = env_example();
    FILES
        .iter()
        .map(|(name, modes)| parse(name, modes, &env))
        .collect()
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_sequence)
        .map(|items| items.iter().map(text).collect())
        .unwrap_or_default()
}

impl Compose {
    fn services(&self) -> impl Iterator<Item = (String, &Value)> {
        self.doc["services"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{}: no services", self.name))
            .iter()
            .map(|(k, v)| (text(k), v))
    }

    fn service(&self, name: &str) -> &Value {
        get(&self.doc, &["services", name])
            .unwrap_or_else(|| panic!("{}: no service {name}", self.name))
    }

    /// The services running a lab service binary, with the mode of their
    /// image (the race page runs from the sync image too; it is not one).
    fn lab_services(&self) -> Vec<(String, Mode, &Value)> {
        self.services()
            .filter(|(_, service)| strings(service.get("entrypoint")) != [SHOWDOWN])
            .filter_map(|(name, service)| {
                let image = text(&service["image"]);
                let tag = image.strip_prefix(LAB_IMAGE)?.strip_prefix(':')?;
                let mode = match tag {
                    "sync" => Mode::Sync,
                    "async" => Mode::Async,
                    other => panic!("{}: {name}: image tag {other}", self.name),
                };
                Some((name, mode, service))
            })
            .collect()
    }

    fn environment(&self, service: &Value, name: &str) -> BTreeMap<String, String> {
        service["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{}: {name}: environment must be a mapping", self.name))
            .iter()
            .map(|(k, v)| (text(k), if v.is_null() { String::new() } else { text(v) }))
            .collect()
    }
}

fn published(service: &Value) -> Vec<String> {
    strings(service.get("ports"))
}

#[test]
fn every_service_runs_in_each_mode_on_its_contract_port() {
    for file in files() {
        for &mode in file.modes {
            for spec in &SERVICES {
                let name = format!("{}-{mode}", spec.name);
                let service = file.service(&name);
                let port = spec.port(mode);
                assert_eq!(
                    published(service),
                    [format!("{port}:{port}")],
                    "{}: {name}",
                    file.name
                );
                let binary = format!("/usr/local/bin/{}", spec.binary());
                assert_eq!(
                    strings(service.get("entrypoint")),
                    [binary],
                    "{}: {name}",
                    file.name
                );
                assert_eq!(
                    text(&service["image"]),
                    format!("{LAB_IMAGE}:{mode}"),
                    "{}: {name}",
                    file.name
                );
                assert_eq!(
                    get(service, &["build", "args", "MODE"]).map(text),
                    Some(mode.as_str().to_owned()),
                    "{}: {name} builds its mode",
                    file.name
                );
            }
        }
        let labs = file.lab_services();
        let modes: BTreeSet<_> = labs.iter().map(|(_, mode, _)| mode.as_str()).collect();
        let expected: BTreeSet<_> = file.modes.iter().map(|m| m.as_str()).collect();
        assert_eq!(modes, expected, "{}: only its own modes", file.name);
    }
}

#[test]
fn services_set_only_variables_the_code_reads_and_find_their_peers() {
    for file in files() {
        for (name, mode, service) in file.lab_services() {
            let env = file.environment(service, &name);
            for var in env.keys() {
                assert!(
                    VARS.contains(&var.as_str()),
                    "{}: {name} sets {var}, which no service reads",
                    file.name
                );
            }
            for spec in &SERVICES {
                assert_eq!(
                    env.get(&spec.url_var()),
                    Some(&format!("http://{}-{mode}:{}", spec.name, spec.port(mode))),
                    "{}: {name}: {}",
                    file.name,
                    spec.url_var()
                );
            }
            assert_eq!(env.get("BIND_HOST").map(String::as_str), Some("0.0.0.0"));
            assert!(
                !env.contains_key("PORT"),
                "{}: {name}: the contract port is the port (health check, publishing)",
                file.name
            );
            let database = &env["DATABASE_URL"];
            assert!(
                database.contains("@postgres:5432/") && database.ends_with(&format!("/lab_{mode}")),
                "{}: {name}: DATABASE_URL {database}",
                file.name
            );
            match mode {
                Mode::Async => assert!(
                    env["AMQP_URL"].contains("@rabbitmq:5672/"),
                    "{}: {name}: AMQP_URL",
                    file.name
                ),
                Mode::Sync => assert!(!env.contains_key("AMQP_URL"), "{}: {name}", file.name),
            }
            // What the service will really be given: the values parse.
            Settings::from_vars(env.clone())
                .unwrap_or_else(|e| panic!("{}: {name}: {e}", file.name));
        }
    }
}

#[test]
fn every_lab_service_checks_itself_and_waits_for_healthy_infrastructure() {
    for file in files() {
        for infra in ["postgres", "rabbitmq"] {
            let needed = infra == "postgres" || file.modes.contains(&Mode::Async);
            let service = get(&file.doc, &["services", infra]);
            assert_eq!(service.is_some(), needed, "{}: {infra}", file.name);
            if let Some(service) = service {
                assert!(
                    !strings(get(service, &["healthcheck", "test"])).is_empty(),
                    "{}: {infra} has a health check",
                    file.name
                );
            }
        }
        for (name, mode, service) in file.lab_services() {
            let entrypoint = strings(service.get("entrypoint"));
            let binary = entrypoint
                .first()
                .unwrap_or_else(|| panic!("{}: {name}: entrypoint", file.name));
            assert!(
                SERVICES
                    .iter()
                    .any(|spec| *binary == format!("/usr/local/bin/{}", spec.binary())),
                "{}: {name} runs {binary}",
                file.name
            );
            assert_eq!(
                strings(get(service, &["healthcheck", "test"])),
                ["CMD", binary.as_str(), "--healthcheck"],
                "{}: {name}",
                file.name
            );
            let mut needs = vec!["postgres"];
            if mode == Mode::Async {
                needs.push("rabbitmq");
            }
            for infra in needs {
                assert_eq!(
                    get(service, &["depends_on", infra, "condition"]).map(text),
                    Some("service_healthy".to_owned()),
                    "{}: {name} waits for a healthy {infra}",
                    file.name
                );
            }
        }
    }
}

#[test]
fn both_modes_get_the_same_limits() {
    let mut limits = BTreeSet::new();
    for file in files() {
        for (name, _, service) in file.lab_services() {
            let cpus = get(service, &["deploy", "resources", "limits", "cpus"]);
            let memory = get(service, &["deploy", "resources", "limits", "memory"]);
            let (Some(cpus), Some(memory)) = (cpus, memory) else {
                panic!("{}: {name} has no CPU and memory limits", file.name);
            };
            assert!(!text(cpus).is_empty() && !text(memory).is_empty());
            limits.insert((text(cpus), text(memory)));
        }
    }
    assert_eq!(limits.len(), 1, "different limits: {limits:?}");
}

#[test]
fn async_consumers_scale_as_workers() {
    for file in files() {
        let has_async = file.modes.contains(&Mode::Async);
        for name in WORKERS {
            let worker = get(&file.doc, &["services", &format!("{name}-worker")]);
            assert_eq!(worker.is_some(), has_async, "{}: {name}-worker", file.name);
            let Some(worker) = worker else { continue };
            let service = file.service(&format!("{name}-async"));
            assert!(
                published(worker).is_empty(),
                "{}: a scaled worker publishes no port",
                file.name
            );
            assert!(
                worker.get("container_name").is_none(),
                "a named container cannot scale"
            );
            assert_eq!(
                get(worker, &["deploy", "replicas"]).map(text),
                Some("0".into())
            );
            for same in [
                "image",
                "entrypoint",
                "environment",
                "healthcheck",
                "depends_on",
            ] {
                assert_eq!(
                    worker.get(same),
                    service.get(same),
                    "{}: {name}-worker {same}",
                    file.name
                );
            }
            // Only a service that consumes something is worth scaling (the
            // consumers exist in the async build only).
            if cfg!(feature = "async") {
                assert!(
                    !lab_tests::definition(name).consumers.is_empty(),
                    "{name} consumes nothing"
                );
            }
        }
    }
}

#[test]
fn k6_targets_the_stack_of_its_mode() {
    for file in files() {
        let k6s: Vec<_> = file
            .services()
            .filter(|(name, _)| name.starts_with("k6"))
            .collect();
        assert_eq!(
            k6s.len(),
            file.modes.len(),
            "{}: one k6 per stack",
            file.name
        );
        for (name, service) in k6s {
            assert_eq!(
                strings(service.get("profiles")),
                ["k6"],
                "{}: {name}",
                file.name
            );
            assert_eq!(strings(service.get("command")), ["run", "/scripts/all.js"]);
            assert!(strings(service.get("volumes")).contains(&"./k6:/scripts:ro".to_owned()));
            let env = file.environment(service, &name);
            let mode = match env["ARCH"].as_str() {
                "sync" => Mode::Sync,
                "async" => Mode::Async,
                other => panic!("{}: {name}: ARCH={other}", file.name),
            };
            assert!(file.modes.contains(&mode));
            assert!(!env["PROFILE"].is_empty());
            for spec in &SERVICES {
                let var = format!("{}_URL", spec.name.to_uppercase());
                assert_eq!(
                    env.get(&var),
                    Some(&format!("http://{}-{mode}:{}", spec.name, spec.port(mode))),
                    "{}: {name}: {var}",
                    file.name
                );
            }
        }
    }
}

#[test]
fn the_race_page_runs_beside_both_stacks_and_finds_them() {
    let reads: BTreeSet<String> = showdown::reads();
    for file in files() {
        let pages: Vec<String> = file
            .services()
            .filter(|(_, service)| strings(service.get("entrypoint")) == [SHOWDOWN])
            .map(|(name, _)| name)
            .collect();
        if file.modes.len() < 2 {
            assert!(pages.is_empty(), "{}: a race needs both stacks", file.name);
            continue;
        }
        assert_eq!(pages, ["showdown"], "{}", file.name);
        let page = file.service("showdown");
        assert_eq!(published(page), ["3000:3000"], "{}", file.name);
        let env = file.environment(page, "showdown");
        for var in env.keys() {
            assert!(
                reads.contains(var),
                "{}: showdown sets {var}, which it does not read",
                file.name
            );
        }
        for (mode, var) in [
            (Mode::Sync, "SHOWDOWN_SYNC_URL"),
            (Mode::Async, "SHOWDOWN_ASYNC_URL"),
        ] {
            let template = &env[var];
            for spec in &SERVICES {
                let name = format!("{}-{mode}", spec.name);
                let port = spec.port(mode);
                let url = template
                    .replace("{service}", spec.name)
                    .replace("{port}", &port.to_string());
                assert_eq!(url, format!("http://{name}:{port}"), "{}: {var}", file.name);
                assert_eq!(
                    get(page, &["depends_on", &name, "condition"]).map(text),
                    Some("service_healthy".to_owned()),
                    "{}: showdown waits for {name}",
                    file.name
                );
            }
        }
    }
}

#[test]
fn infrastructure_uses_the_contract_ports_and_pinned_images() {
    for file in files() {
        assert!(
            file.doc.get("name").is_none(),
            "{}: docker-compose v1 rejects `name`",
            file.name
        );
        let grafana = if file.modes.len() == 2 {
            "3001:3000"
        } else {
            "3000:3000"
        };
        let mut expected = vec![
            ("postgres", vec!["5432:5432"]),
            ("prometheus", vec!["9090:9090"]),
            ("grafana", vec![grafana]),
            ("cadvisor", vec!["8080:8080"]),
        ];
        if file.modes.contains(&Mode::Async) {
            expected.push(("rabbitmq", vec!["5672:5672", "15672:15672", "15692:15692"]));
        }
        for (name, ports) in expected {
            assert_eq!(
                published(file.service(name)),
                ports,
                "{}: {name}",
                file.name
            );
        }
        let targets: Vec<_> = strings(file.service("prometheus").get("volumes"))
            .into_iter()
            .filter(|v| v.contains("/targets/"))
            .collect();
        let wanted: Vec<_> = file
            .modes
            .iter()
            .map(|m| {
                format!(
                    "./monitoring/prometheus/targets/{m}.yml:/etc/prometheus/targets/{m}.yml:ro"
                )
            })
            .collect();
        assert_eq!(
            targets, wanted,
            "{}: Prometheus scrapes this file's stacks",
            file.name
        );

        let mut host_ports = BTreeSet::new();
        for (name, service) in file.services() {
            for port in published(service) {
                let host = port.split(':').next().unwrap().to_owned();
                assert!(
                    host_ports.insert(host),
                    "{}: {name}: host port {port} twice",
                    file.name
                );
            }
            let image = text(&service["image"]);
            if service.get("build").is_some() {
                continue;
            }
            let tag = image
                .rsplit_once(':')
                .map(|(_, tag)| tag)
                .unwrap_or_default();
            assert!(
                tag.chars().any(|c| c.is_ascii_digit()) && !tag.contains("latest"),
                "{}: {name}: pin the image tag: {image}",
                file.name
            );
        }
    }
}

#[test]
fn env_example_defines_every_variable_with_the_code_defaults() {
    let env = env_example();
    let mut used = BTreeSet::new();
    for file in files() {
        for var in &file.used {
            assert!(
                env.contains_key(var),
                "{}: ${{{var}}} is not in .env.example",
                file.name
            );
        }
        used.extend(file.used);
    }
    for var in env.keys() {
        assert!(
            used.contains(var) || COMPOSE_VARS.contains(&var.as_str()),
            ".env.example: {var} is used by no compose file"
        );
    }
    let defaults = Settings::from_vars(Vec::<(String, String)>::new()).unwrap();
    for (var, value) in env.iter().filter(|(var, _)| VARS.contains(&var.as_str())) {
        let settings = Settings::from_vars([(var.clone(), value.clone())])
            .unwrap_or_else(|e| panic!(".env.example: {e}"));
        assert!(
            settings == defaults,
            ".env.example: {var}={value} is not the code's default"
        );
    }
}

#[test]
fn merge_keys_resolve_nested_merges_and_let_the_mapping_win() {
    let mut doc: Value = serde_norway::from_str(
        "a: &a {x: 1, y: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: [*b, {z: 3, x: 9}], z: 4}",
    )
    .unwrap();
    merge_keys(&mut doc);
    let expected: Value = serde_norway::from_str("{x: 1, y: 2, z: 4}").unwrap();
    assert_eq!(doc["c"], expected);
}

#[test]
fn interpolation_follows_compose() {
    let env: BTreeMap<String, String> = [("SET", "v"), ("EMPTY", "")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let mut used = BTreeSet::new();
    let run = |text: &str, used: &mut BTreeSet<String>| interpolate(text, &env, used);
    assert_eq!(run("a${SET}b$SET $$SET", &mut used).unwrap(), "avbv $SET");
    assert_eq!(
        run("${EMPTY:-d}${EMPTY-d}${UNSET-d}", &mut used).unwrap(),
        "dd"
    );
    assert_eq!(run("${UNSET}", &mut used).unwrap(), "");
    assert!(run("${EMPTY:?needed}", &mut used).is_err());
    assert_eq!(run("${EMPTY?needed}", &mut used).unwrap(), "");
    assert!(run("${UNSET?needed}", &mut used).is_err());
    assert_eq!(
        used,
        ["EMPTY", "SET", "UNSET"].map(str::to_owned).into(),
        "$$ names no variable"
    );
}
