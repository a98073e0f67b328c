//! The Kubernetes manifests (deploy/k8s/) agree with the code: each overlay,
//! rendered by `kubectl kustomize` as `kubectl apply -k` would, runs every
//! service of `common::SERVICES` in its modes on the contract port with the
//! image of its mode, probes `/ready` and `/health`, sets only variables the
//! code reads (`common::config::VARS`) or the documented Kubernetes-only
//! ones, gives both modes the same resources and hardening, scales sync
//! services on CPU and async consumers on the queues the code declares
//! (`common::topology`), and lets each service be reached only by its real
//! callers (found in the services' code).
//!
//! Needs kubectl (its built-in kustomize); without it the tests fail.
//! scripts/check-k8s.sh runs them after the schema validation.

// A failed unwrap in a test is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::config::VARS;
use common::topology::{self, QUEUES};
use common::{Mode, SERVICES, Settings};
use serde::Deserialize;
use serde_norway::Value;

/// Each overlay and the stacks it runs.
const OVERLAYS: [(&str, &[Mode]); 4] = [
    ("sync", &[Mode::Sync]),
    ("async", &[Mode::Async]),
    ("combined", &[Mode::Sync, Mode::Async]),
    ("async-rabbitmq-operator", &[Mode::Async]),
];

const NAMESPACE: &str = "sync-vs-async-lab";
const LAB_IMAGE: &str = "sync-vs-async-lab";
/// The container of every lab service and worker pod.
const LAB_CONTAINER: &str = "lab";

/// Variables set only because of Kubernetes: the credentials, from the
/// Secrets, that DATABASE_URL and AMQP_URL are composed of (`$(VAR)`).
/// No service reads them; docs/kubernetes.md lists them.
const K8S_ONLY_VARS: [&str; 4] = [
    "K8S_POSTGRES_USER",
    "K8S_POSTGRES_PASSWORD",
    "K8S_RABBITMQ_USER",
    "K8S_RABBITMQ_PASSWORD",
];

/// The label a client pod (curl, k6, a load driver) carries to be let in.
const CLIENT_LABEL: (&str, &str) = ("sync-vs-async-lab/client", "true");

/// Namespaces a NetworkPolicy may let in: KEDA's operator (it reads the
/// queues) and the RabbitMQ Cluster Operator's.
const FOREIGN_NAMESPACES: [&str; 2] = ["keda", "rabbitmq-system"];

/// Containers whose root file system stays writable, and why (docs/kubernetes.md).
const WRITABLE_ROOT: [&str; 1] = ["rabbitmq"];

/// The Secret the RabbitMQ Cluster Operator makes for a RabbitmqCluster
/// named `rabbitmq`, and its keys.
const OPERATOR_SECRET: (&str, [&str; 2]) = ("rabbitmq-default-user", ["username", "password"]);

/// Who calls whom over HTTP in sync mode (the services' code, scanned in
/// `sync_callers_are_what_the_code_calls`): callee → callers.
const SYNC_CALLERS: [(&str, &[&str]); 6] = [
    ("email", &["user"]),
    ("payment", &["order"]),
    ("inventory", &["order"]),
    ("search", &["product"]),
    ("cache", &["product"]),
    ("analytics", &["product"]),
];

fn repo_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

fn repo_file(name: &str) -> String {
    let path = repo_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One overlay as `kubectl kustomize` renders it.
struct Rendering {
    name: &'static str,
    modes: &'static [Mode],
    objects: Vec<Value>,
}

fn render(name: &'static str, modes: &'static [Mode]) -> Rendering {
    let dir = repo_path(&format!("deploy/k8s/overlays/{name}"));
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "kubectl kustomize could not run ({e}): install kubectl, which renders the overlays"
            )
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let objects = serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .filter(|v| !v.is_null())
        .collect();
    Rendering {
        name,
        modes,
        objects,
    }
}

fn renderings() -> &'static [Rendering] {
    static ALL: OnceLock<Vec<Rendering>> = OnceLock::new();
    ALL.get_or_init(|| {
        OVERLAYS
            .iter()
            .map(|(name, modes)| render(name, modes))
            .collect()
    })
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn seq(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    seq(value).iter().map(text).collect()
}

fn labels(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (text(k), text(v))).collect())
        .unwrap_or_default()
}

fn kind(object: &Value) -> String {
    text(&object["kind"])
}

fn name(object: &Value) -> String {
    text(&object["metadata"]["name"])
}

/// Whether a label selector (matchLabels, matchExpressions with In) selects these labels.
fn selects(selector: &Value, labels_: &BTreeMap<String, String>) -> bool {
    let wanted = labels(selector.get("matchLabels"));
    let by_labels = wanted.iter().all(|(k, v)| labels_.get(k) == Some(v));
    let by_expressions = seq(selector.get("matchExpressions")).iter().all(|e| {
        let key = text(&e["key"]);
        let values = strings(e.get("values"));
        match text(&e["operator"]).as_str() {
            "In" => labels_.get(&key).is_some_and(|v| values.contains(v)),
            "Exists" => labels_.contains_key(&key),
            other => panic!("selector operator {other} not understood by this test"),
        }
    });
    by_labels && by_expressions
}

impl Rendering {
    fn all(&self, kind_: &str) -> impl Iterator<Item = &Value> {
        self.objects.iter().filter(move |o| kind(o) == kind_)
    }

    fn find(&self, kind_: &str, name_: &str) -> Option<&Value> {
        self.all(kind_).find(|o| name(o) == name_)
    }

    fn one(&self, kind_: &str, name_: &str) -> &Value {
        self.find(kind_, name_)
            .unwrap_or_else(|| panic!("{}: no {kind_} {name_}", self.name))
    }

    /// Every pod template: (workload kind/name, the template).
    fn pod_templates(&self) -> impl Iterator<Item = (String, &Value)> {
        self.objects
            .iter()
            .filter(|o| matches!(kind(o).as_str(), "Deployment" | "StatefulSet"))
            .map(|o| (format!("{}/{}", kind(o), name(o)), &o["spec"]["template"]))
    }

    /// The Deployments running a lab service binary (services and workers).
    fn lab_deployments(&self) -> impl Iterator<Item = &Value> {
        self.all("Deployment").filter(|d| {
            let component = labels(get(d, &["metadata", "labels"]))
                .get("app.kubernetes.io/component")
                .cloned();
            matches!(component.as_deref(), Some("service" | "worker"))
        })
    }

    /// Every pod's labels, by workload: the pod templates, and the pods the
    /// RabbitMQ Cluster Operator makes for a RabbitmqCluster (its documented
    /// labels: the cluster's name as app.kubernetes.io/name).
    fn pods(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let mut pods: Vec<_> = self
            .pod_templates()
            .map(|(n, t)| (n, labels(get(t, &["metadata", "labels"]))))
            .collect();
        for cluster in self.all("RabbitmqCluster") {
            let labels_ = [
                ("app.kubernetes.io/name", name(cluster)),
                ("app.kubernetes.io/component", "rabbitmq".to_owned()),
                ("app.kubernetes.io/part-of", "rabbitmq".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v))
            .into();
            pods.push((format!("RabbitmqCluster/{}", name(cluster)), labels_));
        }
        pods
    }

    fn has_operator_broker(&self) -> bool {
        self.find("RabbitmqCluster", "rabbitmq").is_some()
    }

    /// The keys of a Secret of the rendering, or of the operator's Secret.
    fn secret_keys(&self, secret: &str) -> Option<BTreeSet<String>> {
        if self.has_operator_broker() && secret == OPERATOR_SECRET.0 {
            return Some(OPERATOR_SECRET.1.iter().map(|k| (*k).to_owned()).collect());
        }
        let secret = self.find("Secret", secret)?;
        Some(labels(secret.get("data")).into_keys().collect())
    }

    fn config_map(&self, name_: &str) -> BTreeMap<String, String> {
        labels(self.one("ConfigMap", name_).get("data"))
    }
}

fn container<'a>(template: &'a Value, name_: &str) -> &'a Value {
    seq(get(template, &["spec", "containers"]))
        .iter()
        .find(|c| text(&c["name"]) == name_)
        .unwrap_or_else(|| panic!("no container {name_}"))
}

fn deployment_name(mode: Mode, service: &str) -> String {
    format!("{service}-{mode}")
}

fn port_named(container_: &Value, port: &str) -> u16 {
    let found = seq(container_.get("ports"))
        .iter()
        .find(|p| text(&p["name"]) == port)
        .unwrap_or_else(|| panic!("no port named {port}"));
    text(&found["containerPort"]).parse().unwrap()
}

/// The port a probe or a reference names, by name or number.
fn resolve_port(container_: &Value, port: &Value) -> u16 {
    match port {
        Value::Number(n) => u16::try_from(n.as_u64().unwrap()).unwrap(),
        other => port_named(container_, &text(other)),
    }
}

/// A lab container's environment as the service will see it: the
/// ConfigMaps of envFrom, then env (secrets as placeholders, `$(VAR)`
/// expanded from what came before, as the kubelet does).
fn environment(r: &Rendering, what: &str, c: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in seq(c.get("envFrom")) {
        let map = text(&from["configMapRef"]["name"]);
        env.extend(r.config_map(&map));
    }
    for var in seq(c.get("env")) {
        let var_name = text(&var["name"]);
        let value = if let Some(value) = var.get("value") {
            expand(
                &text(value),
                &env,
                &format!("{}: {what}: {var_name}", r.name),
            )
        } else if let Some(secret) = get(var, &["valueFrom", "secretKeyRef"]) {
            let (secret_name, key) = (text(&secret["name"]), text(&secret["key"]));
            let keys = r.secret_keys(&secret_name).unwrap_or_else(|| {
                panic!(
                    "{}: {what}: {var_name} from a missing Secret {secret_name}",
                    r.name
                )
            });
            assert!(
                keys.contains(&key),
                "{}: {what}: Secret {secret_name} has no key {key}",
                r.name
            );
            format!("secret-{}", key.to_lowercase().replace('_', "-"))
        } else if let Some(map) = get(var, &["valueFrom", "configMapKeyRef"]) {
            let data = r.config_map(&text(&map["name"]));
            data.get(&text(&map["key"]))
                .unwrap_or_else(|| panic!("{}: {what}: {var_name}: no such key", r.name))
                .clone()
        } else {
            panic!(
                "{}: {what}: {var_name}: a kind of value this test does not know",
                r.name
            )
        };
        env.insert(var_name, value);
    }
    env
}

/// `$(VAR)` references, each to a variable defined before it.
fn expand(value: &str, env: &BTreeMap<String, String>, what: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let end = rest[at..]
            .find(')')
            .unwrap_or_else(|| panic!("{what}: unclosed $("));
        let var = &rest[at + 2..at + end];
        out.push_str(
            env.get(var)
                .unwrap_or_else(|| panic!("{what}: $({var}) is not defined before it")),
        );
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The compose files' extra async consumers (`<name>-worker`).
fn compose_workers() -> BTreeSet<String> {
    let doc: Value = serde_norway::from_str(&repo_file("docker-compose.async.yml")).unwrap();
    doc["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|k| text(k).strip_suffix("-worker").map(str::to_owned))
        .collect()
}

#[test]
fn every_service_runs_in_each_mode_on_its_contract_port_with_its_image() {
    for r in renderings() {
        for &mode in r.modes {
            for spec in &SERVICES {
                let deployment_ = deployment_name(mode, spec.name);
                let d = r.one("Deployment", &deployment_);
                let template = &d["spec"]["template"];
                let c = container(template, LAB_CONTAINER);
                let port = spec.port(mode);
                assert_eq!(
                    text(&c["image"]),
                    format!("{LAB_IMAGE}:{mode}"),
                    "{}: {deployment_}",
                    r.name
                );
                assert_eq!(
                    strings(c.get("command")),
                    [format!("/usr/local/bin/{}", spec.binary())],
                    "{}: {deployment_}",
                    r.name
                );
                assert_eq!(port_named(c, "http"), port, "{}: {deployment_}", r.name);
                assert!(
                    labels(get(d, &["spec", "selector", "matchLabels"]))
                        .iter()
                        .all(
                            |(k, v)| labels(get(template, &["metadata", "labels"])).get(k)
                                == Some(v)
                        ),
                    "{}: {deployment_}: selector",
                    r.name
                );

                let service = r.one("Service", &deployment_);
                let ports = seq(get(service, &["spec", "ports"]));
                assert_eq!(ports.len(), 1, "{}: Service {deployment_}", r.name);
                assert_eq!(text(&ports[0]["port"]), port.to_string());
                assert_eq!(resolve_port(c, &ports[0]["targetPort"]), port);
                // The Service's pods are exactly this Deployment's (no workers).
                let selector = &service["spec"]["selector"];
                let selected: Vec<String> = r
                    .pod_templates()
                    .filter(|(_, t)| {
                        let l = labels(get(t, &["metadata", "labels"]));
                        labels(Some(selector))
                            .iter()
                            .all(|(k, v)| l.get(k) == Some(v))
                    })
                    .map(|(n, _)| n)
                    .collect();
                assert_eq!(
                    selected,
                    [format!("Deployment/{deployment_}")],
                    "{}: Service {deployment_} selects",
                    r.name
                );

                let annotations = labels(get(template, &["metadata", "annotations"]));
                assert_eq!(annotations["prometheus.io/scrape"], "true");
                assert_eq!(annotations["prometheus.io/port"], port.to_string());
                assert_eq!(annotations["prometheus.io/path"], "/metrics");
            }
        }
        // Only its own modes: no image of another mode.
        for d in r.lab_deployments() {
            let image = text(&container(&d["spec"]["template"], LAB_CONTAINER)["image"]);
            let tag = image.strip_prefix(&format!("{LAB_IMAGE}:")).unwrap();
            assert!(
                r.modes.iter().any(|m| m.as_str() == tag),
                "{}: {} runs {image}",
                r.name,
                name(d)
            );
        }
        for object in &r.objects {
            if kind(object) != "Namespace" {
                assert_eq!(
                    get(object, &["metadata", "namespace"]).map(text).as_deref(),
                    Some(NAMESPACE),
                    "{}: {} {}",
                    r.name,
                    kind(object),
                    name(object)
                );
            }
        }
    }
}

#[test]
fn probes_ask_ready_and_health_on_the_service_port() {
    for r in renderings() {
        for d in r.lab_deployments() {
            let c = container(&d["spec"]["template"], LAB_CONTAINER);
            let port = port_named(c, "http");
            for (probe, path) in [
                ("readinessProbe", "/ready"),
                ("livenessProbe", "/health"),
                ("startupProbe", "/health"),
            ] {
                let get_ = get(c, &[probe, "httpGet"])
                    .unwrap_or_else(|| panic!("{}: {}: no HTTP {probe}", r.name, name(d)));
                assert_eq!(text(&get_["path"]), path, "{}: {}", r.name, name(d));
                assert_eq!(
                    resolve_port(c, &get_["port"]),
                    port,
                    "{}: {}",
                    r.name,
                    name(d)
                );
            }
        }
    }
}

#[test]
fn lab_containers_set_only_variables_the_code_reads_and_find_their_peers() {
    for r in renderings() {
        for d in r.lab_deployments() {
            let what = name(d);
            let c = container(&d["spec"]["template"], LAB_CONTAINER);
            let mode = if text(&c["image"]).ends_with(":async") {
                Mode::Async
            } else {
                Mode::Sync
            };
            let env = environment(r, &what, c);
            for var in env.keys() {
                assert!(
                    VARS.contains(&var.as_str()) || K8S_ONLY_VARS.contains(&var.as_str()),
                    "{}: {what} sets {var}, which no service reads",
                    r.name
                );
            }
            assert!(
                !env.contains_key("PORT"),
                "{}: {what}: the contract port is the port",
                r.name
            );
            assert_eq!(env["BIND_HOST"], "0.0.0.0", "{}: {what}", r.name);
            for spec in &SERVICES {
                let url = format!(
                    "http://{}:{}",
                    deployment_name(mode, spec.name),
                    spec.port(mode)
                );
                assert_eq!(env.get(&spec.url_var()), Some(&url), "{}: {what}", r.name);
                // ... and that Service is there, on that port.
                let service = r.one("Service", &deployment_name(mode, spec.name));
                assert_eq!(
                    text(&service["spec"]["ports"][0]["port"]),
                    spec.port(mode).to_string()
                );
            }
            let database = &env["DATABASE_URL"];
            assert!(
                database.contains("@postgres:5432/") && database.ends_with(&format!("/lab_{mode}")),
                "{}: {what}: DATABASE_URL {database}",
                r.name
            );
            assert!(r.find("Service", "postgres").is_some());
            match mode {
                Mode::Async => assert!(
                    env["AMQP_URL"].contains("@rabbitmq:5672/"),
                    "{}: {what}: AMQP_URL",
                    r.name
                ),
                Mode::Sync => assert!(!env.contains_key("AMQP_URL"), "{}: {what}", r.name),
            }
            assert!(
                !seq(c.get("env"))
                    .iter()
                    .any(|v| text(&v["name"]).contains("PASSWORD") && v.get("value").is_some()),
                "{}: {what}: a password written in the manifest",
                r.name
            );
            // What the service will really be given: the values parse.
            let vars: Vec<(String, String)> = env
                .iter()
                .filter(|(k, _)| VARS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Settings::from_vars(vars).unwrap_or_else(|e| panic!("{}: {what}: {e}", r.name));
        }
    }
    let docs = repo_file("docs/kubernetes.md");
    for var in K8S_ONLY_VARS {
        assert!(
            docs.contains(var),
            "docs/kubernetes.md does not explain {var}"
        );
    }
}

#[test]
fn both_modes_get_the_same_resources() {
    let mut seen = BTreeSet::new();
    for r in renderings() {
        for d in r.lab_deployments() {
            let resources = &container(&d["spec"]["template"], LAB_CONTAINER)["resources"];
            for part in ["requests", "limits"] {
                for what in ["cpu", "memory"] {
                    assert!(
                        get(resources, &[part, what]).is_some(),
                        "{}: {}: no {part}.{what}",
                        r.name,
                        name(d)
                    );
                }
            }
            seen.insert(serde_norway::to_string(resources).unwrap());
        }
    }
    assert_eq!(seen.len(), 1, "different resources: {seen:?}");
}

#[test]
fn every_pod_runs_non_root_without_privileges() {
    for r in renderings() {
        for (workload, template) in r.pod_templates() {
            let pod = &template["spec"]["securityContext"];
            assert_eq!(
                pod.get("runAsNonRoot").and_then(Value::as_bool),
                Some(true),
                "{}: {workload}",
                r.name
            );
            assert_eq!(
                get(pod, &["seccompProfile", "type"]).map(text).as_deref(),
                Some("RuntimeDefault"),
                "{}: {workload}",
                r.name
            );
            let containers = seq(get(template, &["spec", "containers"]))
                .iter()
                .chain(seq(get(template, &["spec", "initContainers"])));
            for c in containers {
                let what = format!("{}: {workload}: {}", r.name, text(&c["name"]));
                let sc = &c["securityContext"];
                assert_eq!(
                    sc.get("allowPrivilegeEscalation").and_then(Value::as_bool),
                    Some(false),
                    "{what}"
                );
                assert_eq!(
                    strings(get(sc, &["capabilities", "drop"])),
                    ["ALL"],
                    "{what}"
                );
                assert!(
                    get(sc, &["capabilities", "add"]).is_none(),
                    "{what}: adds capabilities"
                );
                assert_ne!(sc.get("privileged").and_then(Value::as_bool), Some(true));
                let read_only = sc.get("readOnlyRootFilesystem").and_then(Value::as_bool);
                if WRITABLE_ROOT.contains(&text(&c["name"]).as_str()) {
                    assert_eq!(read_only, Some(false), "{what}: say it");
                } else {
                    assert_eq!(read_only, Some(true), "{what}: read-only root");
                }
                let uid = get(sc, &["runAsUser"]).or_else(|| pod.get("runAsUser"));
                assert_ne!(uid.map(text).as_deref(), Some("0"), "{what}: root");
                assert!(c.get("image").map(text).is_some_and(|i| i.contains(':')));
            }
        }
        let namespace = r.one("Namespace", NAMESPACE);
        assert_eq!(
            labels(get(namespace, &["metadata", "labels"]))["pod-security.kubernetes.io/enforce"],
            "restricted",
            "{}",
            r.name
        );
    }
}

#[test]
fn every_service_has_a_disruption_budget_and_sync_scales_on_cpu() {
    for r in renderings() {
        for &mode in r.modes {
            for spec in &SERVICES {
                let deployment_ = deployment_name(mode, spec.name);
                let template_labels = labels(get(
                    r.one("Deployment", &deployment_),
                    &["spec", "template", "metadata", "labels"],
                ));
                assert!(
                    r.all("PodDisruptionBudget").any(|p| {
                        selects(&p["spec"]["selector"], &template_labels)
                            && (p["spec"].get("maxUnavailable").is_some()
                                || p["spec"].get("minAvailable").is_some())
                    }),
                    "{}: no PodDisruptionBudget for {deployment_}",
                    r.name
                );
                let hpas: Vec<_> = r
                    .all("HorizontalPodAutoscaler")
                    .filter(|h| text(&h["spec"]["scaleTargetRef"]["name"]) == deployment_)
                    .collect();
                match mode {
                    Mode::Sync => {
                        assert_eq!(hpas.len(), 1, "{}: {deployment_}: one HPA", r.name);
                        let h = hpas[0];
                        assert_eq!(text(&h["apiVersion"]), "autoscaling/v2");
                        assert_eq!(text(&h["spec"]["scaleTargetRef"]["kind"]), "Deployment");
                        let metrics = seq(get(h, &["spec", "metrics"]));
                        assert!(metrics.iter().any(|m| {
                            text(&m["type"]) == "Resource"
                                && text(&m["resource"]["name"]) == "cpu"
                                && text(&m["resource"]["target"]["type"]) == "Utilization"
                        }));
                        let (min, max) = (
                            text(&h["spec"]["minReplicas"]).parse::<u32>().unwrap(),
                            text(&h["spec"]["maxReplicas"]).parse::<u32>().unwrap(),
                        );
                        assert!(min >= 1 && max > min, "{}: {deployment_}", r.name);
                        assert!(
                            r.one("Deployment", &deployment_)["spec"]
                                .get("replicas")
                                .is_none(),
                            "{}: {deployment_}: the HPA owns replicas",
                            r.name
                        );
                    }
                    Mode::Async => assert!(hpas.is_empty(), "{}: {deployment_}", r.name),
                }
            }
        }
    }
}

#[test]
fn async_consumers_scale_as_workers_on_the_queues_the_code_declares() {
    let workers = compose_workers();
    assert!(!workers.is_empty());
    for r in renderings() {
        let has_async = r.modes.contains(&Mode::Async);
        let prefix = if has_async {
            r.config_map(&config_map_named(r, "lab-async-stack"))["BROKER_PREFIX"].clone()
        } else {
            String::new()
        };
        let scaled: BTreeSet<String> = r
            .all("ScaledObject")
            .map(|s| text(&s["spec"]["scaleTargetRef"]["name"]))
            .collect();
        let expected: BTreeSet<String> = if has_async {
            workers.iter().map(|w| format!("{w}-worker")).collect()
        } else {
            BTreeSet::new()
        };
        assert_eq!(
            scaled, expected,
            "{}: a ScaledObject per compose worker",
            r.name
        );
        for service in &workers {
            let worker = r.find("Deployment", &format!("{service}-worker"));
            assert_eq!(worker.is_some(), has_async, "{}: {service}-worker", r.name);
            let Some(worker) = worker else { continue };
            let main = r.one("Deployment", &format!("{service}-async"));
            let (wc, mc) = (
                container(&worker["spec"]["template"], LAB_CONTAINER),
                container(&main["spec"]["template"], LAB_CONTAINER),
            );
            for same in ["image", "command", "env", "envFrom", "ports", "resources"] {
                assert_eq!(
                    wc.get(same),
                    mc.get(same),
                    "{}: {service}-worker {same}",
                    r.name
                );
            }
            assert!(
                worker["spec"].get("replicas").is_none(),
                "KEDA owns replicas"
            );
        }
        for s in r.all("ScaledObject") {
            let what = format!("{}: ScaledObject {}", r.name, name(s));
            assert_eq!(text(&s["apiVersion"]), "keda.sh/v1alpha1", "{what}");
            let target = text(&s["spec"]["scaleTargetRef"]["name"]);
            let d = r.one("Deployment", &target);
            let d_labels = labels(get(d, &["metadata", "labels"]));
            assert_eq!(d_labels["app.kubernetes.io/component"], "worker", "{what}");
            let service = &d_labels["app.kubernetes.io/name"];
            assert!(
                get(s, &["spec", "scaleTargetRef", "kind"]).is_none_or(|k| text(k) == "Deployment")
            );
            let min = get(s, &["spec", "minReplicaCount"]).map_or(0, |v| text(v).parse().unwrap());
            let max: u32 = text(&s["spec"]["maxReplicaCount"]).parse().unwrap();
            assert!(max > min, "{what}");
            let mut queues = BTreeSet::new();
            for trigger in seq(get(s, &["spec", "triggers"])) {
                assert_eq!(text(&trigger["type"]), "rabbitmq", "{what}");
                let meta = &trigger["metadata"];
                assert_eq!(text(&meta["mode"]), "QueueLength", "{what}");
                let value: f64 = text(&meta["value"]).parse().unwrap();
                assert!(value > 0.0, "{what}");
                let host = text(&meta["host"]);
                assert_eq!(
                    host,
                    format!("amqp://rabbitmq.{NAMESPACE}.svc:5672/%2f"),
                    "{what}: KEDA runs in its own namespace"
                );
                assert!(!host.contains('@'), "{what}: credentials in the host");
                assert!(r.find("Service", "rabbitmq").is_some() || r.has_operator_broker());
                queues.insert(text(&meta["queueName"]));
                let auth = text(&trigger["authenticationRef"]["name"]);
                let auth = r.one("TriggerAuthentication", &auth);
                let mut parameters = BTreeSet::new();
                for reference in seq(get(auth, &["spec", "secretTargetRef"])) {
                    let secret = text(&reference["name"]);
                    let keys = r
                        .secret_keys(&secret)
                        .unwrap_or_else(|| panic!("{what}: no Secret {secret}"));
                    assert!(keys.contains(&text(&reference["key"])), "{what}: {secret}");
                    parameters.insert(text(&reference["parameter"]));
                }
                assert_eq!(
                    parameters,
                    ["password", "username"].map(str::to_owned).into(),
                    "{what}"
                );
            }
            // Every queue the service consumes, and nothing else.
            let consumed: BTreeSet<String> = QUEUES
                .iter()
                .filter(|q| q.consumer == service)
                .map(|q| topology::named(&prefix, q.name))
                .collect();
            assert_eq!(queues, consumed, "{what}");
        }
    }
}

/// The generated (hash-suffixed) name of a ConfigMap.
fn config_map_named(r: &Rendering, base: &str) -> String {
    r.all("ConfigMap")
        .map(name)
        .find(|n| {
            n == base
                || n.strip_prefix(base)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .unwrap_or_else(|| panic!("{}: no ConfigMap {base}", r.name))
}

#[test]
fn brokers_and_databases_keep_their_data_with_the_plugins_compose_enables() {
    for r in renderings() {
        let postgres = r.one("StatefulSet", "postgres");
        assert!(!seq(get(postgres, &["spec", "volumeClaimTemplates"])).is_empty());
        let has_async = r.modes.contains(&Mode::Async);
        match (has_async, r.find("RabbitmqCluster", "rabbitmq")) {
            (false, cluster) => {
                assert!(cluster.is_none() && r.find("StatefulSet", "rabbitmq").is_none());
            }
            (true, None) => {
                let rabbit = r.one("StatefulSet", "rabbitmq");
                assert!(!seq(get(rabbit, &["spec", "volumeClaimTemplates"])).is_empty());
                let c = container(&rabbit["spec"]["template"], "rabbitmq");
                let env = environment(r, "rabbitmq", c);
                let plugins: BTreeSet<&str> = env["RABBITMQ_ENABLED_PLUGINS"].split(',').collect();
                assert!(plugins.contains("rabbitmq_management"));
                assert!(plugins.contains("rabbitmq_prometheus"));
                let service = r.one("Service", "rabbitmq");
                let ports: Vec<String> = seq(get(service, &["spec", "ports"]))
                    .iter()
                    .map(|p| text(&p["port"]))
                    .collect();
                assert_eq!(ports, ["5672", "15672", "15692"], "{}", r.name);
            }
            (true, Some(cluster)) => {
                assert_eq!(text(&cluster["apiVersion"]), "rabbitmq.com/v1beta1");
                assert!(r.find("StatefulSet", "rabbitmq").is_none(), "{}", r.name);
                let replicas: u32 = text(&cluster["spec"]["replicas"]).parse().unwrap();
                assert!(replicas >= 1);
                assert!(!text(&cluster["spec"]["persistence"]["storage"]).is_empty());
                let image = text(&cluster["spec"]["image"]);
                let plain = renderings()
                    .iter()
                    .find_map(|o| o.find("StatefulSet", "rabbitmq"))
                    .unwrap();
                assert_eq!(
                    image,
                    text(&container(&plain["spec"]["template"], "rabbitmq")["image"]),
                    "the same broker either way"
                );
                let plugins = strings(get(cluster, &["spec", "rabbitmq", "additionalPlugins"]));
                assert!(plugins.contains(&"rabbitmq_management".to_owned()));
                assert!(plugins.contains(&"rabbitmq_prometheus".to_owned()));
                assert!(get(cluster, &["spec", "resources", "limits", "memory"]).is_some());
                // Nothing may still read the StatefulSet's Secret.
                assert!(r.find("Secret", "rabbitmq-credentials").is_none());
            }
        }
    }
}

#[test]
fn postgres_takes_every_pool_at_full_scale() {
    for r in renderings() {
        let knobs = r.config_map(&config_map_named(r, "lab-knobs"));
        let pool: u32 = knobs["DB_MAX_CONNECTIONS"].parse().unwrap();
        let mut most = 0;
        for d in r.lab_deployments() {
            let deployment_ = name(d);
            let hpa = r
                .all("HorizontalPodAutoscaler")
                .find(|h| text(&h["spec"]["scaleTargetRef"]["name"]) == deployment_)
                .map(|h| text(&h["spec"]["maxReplicas"]));
            let keda = r
                .all("ScaledObject")
                .find(|s| text(&s["spec"]["scaleTargetRef"]["name"]) == deployment_)
                .map(|s| text(&s["spec"]["maxReplicaCount"]));
            let replicas = d["spec"].get("replicas").map(text);
            let n: u32 = hpa
                .or(keda)
                .or(replicas)
                .unwrap_or("1".into())
                .parse()
                .unwrap();
            most += n * pool;
        }
        let postgres = container(
            &r.one("StatefulSet", "postgres")["spec"]["template"],
            "postgres",
        );
        let max: u32 = strings(postgres.get("args"))
            .iter()
            .find_map(|a| a.strip_prefix("max_connections="))
            .unwrap()
            .parse()
            .unwrap();
        // PostgreSQL keeps 3 for superusers by default (the services are one).
        assert!(
            most + 3 <= max,
            "{}: {most} pooled connections at full scale, max_connections {max}",
            r.name
        );
    }
}

#[test]
fn credentials_come_from_generated_secrets_only() {
    let root = repo_path("deploy/k8s");
    let mut stack = vec![root];
    let mut examples = BTreeMap::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let file = std::fs::read_to_string(&path).unwrap();
            let name_ = path.file_name().unwrap().to_string_lossy().into_owned();
            if name_.ends_with(".yaml") || name_.ends_with(".yml") {
                assert!(
                    !file.lines().any(|l| l.trim() == "kind: Secret"),
                    "{}: a Secret written in a manifest",
                    path.display()
                );
            }
            if name_ == "secrets.env.example" {
                for line in file.lines().filter(|l| !l.trim().is_empty()) {
                    let (k, v) = line.split_once('=').unwrap();
                    assert!(
                        v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
                        "{}: {k}: only letters, digits, - and _ (it goes into a URL)",
                        path.display()
                    );
                    examples.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    assert!(
        examples.contains_key("POSTGRES_PASSWORD") && examples.contains_key("RABBITMQ_PASSWORD")
    );
    for r in renderings() {
        for object in r.objects.iter().filter(|o| kind(o) != "Secret") {
            let dump = serde_norway::to_string(object).unwrap();
            for (k, v) in examples.iter().filter(|(k, _)| k.contains("PASSWORD")) {
                assert!(
                    !dump.contains(v.as_str()),
                    "{}: {} {} holds {k}'s value",
                    r.name,
                    kind(object),
                    name(object)
                );
            }
        }
        for secret in r.all("Secret") {
            assert!(name(secret).ends_with(|c: char| c.is_ascii_alphanumeric()));
            let base = name(secret).rsplit_once('-').unwrap().0.to_owned();
            assert!(
                ["postgres-credentials", "rabbitmq-credentials"].contains(&base.as_str()),
                "{}: Secret {} is not generated",
                r.name,
                name(secret)
            );
        }
    }
}

/// Which services each service's code calls over HTTP: a call names its
/// target and then a path, `("email", "/send"` or `("inventory", &path`.
fn scanned_sync_callers() -> BTreeMap<String, BTreeSet<String>> {
    let mut callers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for caller in &SERVICES {
        let dir = repo_path(&format!("services/{}/src", caller.name));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let code = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for callee in &SERVICES {
                let call = format!("(\"{}\", ", callee.name);
                let found = code.match_indices(&call).any(|(at, _)| {
                    let rest = &code[at + call.len()..];
                    rest.starts_with("\"/") || rest.starts_with('&')
                });
                if found && callee.name != caller.name {
                    callers
                        .entry(callee.name.to_owned())
                        .or_default()
                        .insert(caller.name.to_owned());
                }
            }
        }
    }
    callers
}

#[test]
fn sync_callers_are_what_the_code_calls() {
    let expected: BTreeMap<String, BTreeSet<String>> = SYNC_CALLERS
        .iter()
        .map(|(callee, callers)| {
            (
                (*callee).to_owned(),
                callers.iter().map(|c| (*c).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(scanned_sync_callers(), expected);
}

/// The pods a NetworkPolicy peer lets in, as workload names; None for the
/// client label (no workload: a pod someone starts) and foreign namespaces.
fn peer_workloads(r: &Rendering, peer: &Value, what: &str) -> Option<BTreeSet<String>> {
    if let Some(ns) = peer.get("namespaceSelector") {
        let ns = labels(ns.get("matchLabels"));
        let target = &ns["kubernetes.io/metadata.name"];
        assert!(
            FOREIGN_NAMESPACES.contains(&target.as_str()),
            "{what}: lets in namespace {target}"
        );
        assert!(peer.get("podSelector").is_none(), "{what}");
        return None;
    }
    let selector = peer
        .get("podSelector")
        .unwrap_or_else(|| panic!("{what}: a peer without a selector"));
    if labels(selector.get("matchLabels"))
        == BTreeMap::from([(CLIENT_LABEL.0.into(), CLIENT_LABEL.1.into())])
    {
        return None;
    }
    let found: BTreeSet<String> = r
        .pods()
        .into_iter()
        .filter(|(_, l)| selects(selector, l))
        .map(|(n, _)| n)
        .collect();
    // An allowed caller must exist (Prometheus and the race page may be absent
    // where their overlay does not run them: the showdown only in combined).
    let optional = labels(selector.get("matchLabels"))
        .get("app.kubernetes.io/name")
        .is_some_and(|n| n == "showdown");
    assert!(
        optional || !found.is_empty(),
        "{what}: lets in {selector:?}, which matches no pod"
    );
    Some(found)
}

#[test]
fn network_policies_let_in_only_the_real_callers() {
    for r in renderings() {
        let deny = r.one("NetworkPolicy", "default-deny-ingress");
        assert_eq!(labels(get(deny, &["spec", "podSelector"])), BTreeMap::new());
        assert_eq!(strings(get(deny, &["spec", "policyTypes"])), ["Ingress"]);
        assert!(deny["spec"].get("ingress").is_none(), "{}", r.name);

        // Every rule of every policy: its callers exist.
        let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for policy in r.all("NetworkPolicy") {
            let what = format!("{}: NetworkPolicy {}", r.name, name(policy));
            let targets: Vec<String> = r
                .pods()
                .into_iter()
                .filter(|(_, l)| selects(&policy["spec"]["podSelector"], l))
                .map(|(n, _)| n)
                .collect();
            assert!(!targets.is_empty(), "{what} applies to no pod");
            for rule in seq(get(policy, &["spec", "ingress"])) {
                for peer in seq(rule.get("from")) {
                    if let Some(found) = peer_workloads(r, peer, &what) {
                        for target in &targets {
                            allowed
                                .entry(target.clone())
                                .or_default()
                                .extend(found.clone());
                        }
                    }
                }
            }
        }

        let infra: BTreeSet<String> = ["Deployment/prometheus", "Deployment/showdown"]
            .into_iter()
            .filter(|w| r.pod_templates().any(|(n, _)| n == *w))
            .map(str::to_owned)
            .collect();
        for &mode in r.modes {
            for spec in &SERVICES {
                let deployment_ = format!("Deployment/{}", deployment_name(mode, spec.name));
                let mut expected = infra.clone();
                if mode == Mode::Sync
                    && let Some((_, callers)) = SYNC_CALLERS.iter().find(|(c, _)| *c == spec.name)
                {
                    expected.extend(callers.iter().map(|c| format!("Deployment/{c}-sync")));
                }
                assert_eq!(
                    allowed.get(&deployment_).cloned().unwrap_or_default(),
                    expected,
                    "{}: who may call {deployment_}",
                    r.name
                );
            }
        }
        // The database: every lab pod; the broker: the async ones.
        let labs: BTreeSet<String> = r
            .lab_deployments()
            .map(|d| format!("Deployment/{}", name(d)))
            .collect();
        assert!(
            labs.is_subset(&allowed["StatefulSet/postgres"]),
            "{}",
            r.name
        );
        let broker = allowed
            .get("StatefulSet/rabbitmq")
            .or_else(|| allowed.get("RabbitmqCluster/rabbitmq"));
        assert_eq!(
            broker.is_some(),
            r.modes.contains(&Mode::Async),
            "{}",
            r.name
        );
        if let Some(rabbit) = broker {
            for d in r.lab_deployments() {
                let async_ =
                    labels(get(d, &["metadata", "labels"]))["sync-vs-async-lab/mode"] == "async";
                assert_eq!(
                    rabbit.contains(&format!("Deployment/{}", name(d))),
                    async_,
                    "{}: {} and the broker",
                    r.name,
                    name(d)
                );
            }
        }
    }
}

#[test]
fn prometheus_scrapes_the_pods_as_monitoring_scrapes_compose() {
    let compose_config: Value =
        serde_norway::from_str(&repo_file("monitoring/prometheus/prometheus.yml")).unwrap();
    let compose_jobs: BTreeSet<String> = seq(compose_config.get("scrape_configs"))
        .iter()
        .map(|j| text(&j["job_name"]))
        .collect();
    for r in renderings() {
        let data = r.config_map(&config_map_named(r, "prometheus-config"));
        for (copy, original) in [
            ("rules-http.yml", "monitoring/prometheus/rules/http.yml"),
            ("rules-async.yml", "monitoring/prometheus/rules/async.yml"),
        ] {
            assert_eq!(
                data[copy],
                repo_file(original),
                "deploy/k8s/base/{copy} is a stale copy"
            );
        }
        let config: Value = serde_norway::from_str(&data["prometheus.yml"]).unwrap();
        let jobs: BTreeSet<String> = seq(config.get("scrape_configs"))
            .iter()
            .map(|j| text(&j["job_name"]))
            .collect();
        // Compose's cAdvisor and its DNS lookup of scaled workers have no
        // place here: the workers are pods like the others.
        let wanted: BTreeSet<String> = compose_jobs
            .iter()
            .filter(|j| !["cadvisor", "async-workers"].contains(&j.as_str()))
            .cloned()
            .collect();
        assert_eq!(jobs, wanted, "{}", r.name);
        let services = seq(config.get("scrape_configs"))
            .iter()
            .find(|j| text(&j["job_name"]) == "services")
            .unwrap();
        assert_eq!(
            services.get("honor_labels").and_then(Value::as_bool),
            Some(true)
        );
        let targets: BTreeSet<String> = seq(services.get("relabel_configs"))
            .iter()
            .filter_map(|c| c.get("target_label").map(text))
            .collect();
        assert!(targets.contains("mode") && targets.contains("service"));
        for d in r.lab_deployments() {
            let l = labels(get(d, &["spec", "template", "metadata", "labels"]));
            let mode = &l["sync-vs-async-lab/mode"];
            assert!(["sync", "async"].contains(&mode.as_str()));
            assert!(common::services::find(&l["app.kubernetes.io/name"]).is_some());
        }
    }
}

#[test]
fn the_race_page_runs_beside_both_stacks_and_finds_them() {
    let reads: BTreeSet<String> = showdown::reads();
    for r in renderings() {
        let page = r.find("Deployment", "showdown");
        assert_eq!(
            page.is_some(),
            r.modes.len() == 2,
            "{}: a race needs both stacks",
            r.name
        );
        let Some(page) = page else { continue };
        let c = container(&page["spec"]["template"], "showdown");
        assert_eq!(text(&c["image"]), format!("{LAB_IMAGE}:sync"));
        assert_eq!(strings(c.get("command")), ["/usr/local/bin/showdown"]);
        let env = environment(r, "showdown", c);
        for var in env.keys() {
            assert!(
                reads.contains(var) || K8S_ONLY_VARS.contains(&var.as_str()),
                "{}: showdown sets {var}, which it does not read",
                r.name
            );
        }
        assert_eq!(port_named(c, "http").to_string(), env["SHOWDOWN_PORT"]);
        assert_eq!(env["SHOWDOWN_PORT"], "3000");
        assert_eq!(
            text(&r.one("Service", "showdown")["spec"]["ports"][0]["port"]),
            "3000"
        );
        assert!(env["AMQP_URL"].contains("@rabbitmq:5672/"));
        for (mode, var) in [
            (Mode::Sync, "SHOWDOWN_SYNC_URL"),
            (Mode::Async, "SHOWDOWN_ASYNC_URL"),
        ] {
            for spec in &SERVICES {
                let url = env[var]
                    .replace("{service}", spec.name)
                    .replace("{port}", &spec.port(mode).to_string());
                let service = deployment_name(mode, spec.name);
                assert_eq!(url, format!("http://{service}:{}", spec.port(mode)));
                assert!(r.find("Service", &service).is_some());
            }
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(text(&c[probe]["httpGet"]["path"]), "/health");
        }
    }
}
