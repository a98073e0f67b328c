//! The OpenAPI 3.1 document of each service, generated from its handlers'
//! `#[utoipa::path]` annotations and types (see `docs/openapi.md`).
//!
//! A service registers its routes once, through a [`OpenApiRouter`] and
//! `utoipa_axum::routes!`, so the routes it serves and the ones its document
//! lists come from the same place. [`document`] adds what every service shares:
//! the common routes (`/health`, `/ready`, `/metrics`, `/openapi.json`), the
//! one error schema (`Error`, from [`ErrorBody`]) and the answers that
//! `common`'s extractors and layers give on the service's behalf (400, 413,
//! 415, 422, 500, 503), so no handler repeats them.
//!
//! The documents are committed as `docs/openapi/<service>.<mode>.json`; each
//! service's unit tests (from [`openapi_tests!`](crate::openapi_tests)) fail
//! when the committed file differs from what the code generates, and rewrite
//! it when `UPDATE_OPENAPI=1` is set.

use std::collections::BTreeSet;
use std::path::PathBuf;

use utoipa::PartialSchema;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{OneOfBuilder, Schema};
use utoipa::openapi::server::Server;
use utoipa::openapi::{Content, Info, OpenApi, Ref, RefOr, Response};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ErrorBody;
use crate::{MODE, ServiceSpec};

/// The command that rewrites the committed documents of this build's mode.
pub const UPDATE_COMMAND: &str = if cfg!(feature = "async") {
    "UPDATE_OPENAPI=1 cargo test --workspace --lib --features lab-tests/async --target-dir target/async openapi"
} else {
    "UPDATE_OPENAPI=1 cargo test --workspace --lib openapi"
};

/// What a JSON body read by [`JsonBody`](crate::JsonBody) may be answered
/// instead of the handler's answer.
const BODY_ERRORS: [(&str, &str); 4] = [
    ("400", "The body is not valid JSON."),
    ("413", "The body is larger than `BODY_LIMIT_BYTES`."),
    (
        "415",
        "The content type is not JSON (`application/json` or `application/*+json`).",
    ),
    (
        "422",
        "The body is not a JSON object, lacks a field, has a field of the wrong type or an invalid value, or holds a NUL character.",
    ),
];

/// What a path or query parameter read by [`PathParam`](crate::PathParam) or
/// [`QueryParams`](crate::QueryParams) may be answered.
const PARAMETER_ERROR: (&str, &str) = (
    "400",
    "A path or query parameter does not parse, or the URL holds a NUL character (`%00`).",
);

/// What any of a service's own routes may be answered: its database
/// unavailable, or a fault.
const SERVICE_ERRORS: [(&str, &str); 2] = [
    (
        "500",
        "An unexpected fault: logged with its cause, shown without internals.",
    ),
    (
        "503",
        "The service's database is unavailable (`database unavailable`).",
    ),
];

/// The service's document: its own routes from `api` (with the answers the
/// common extractors give), the common routes, the one error schema, and
/// where the service listens in this build's mode.
pub fn document<S>(spec: &ServiceSpec, api: OpenApiRouter<S>) -> OpenApi
where
    S: Send + Sync + Clone + 'static,
{
    let mut doc = api.into_openapi();
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations_mut(item) {
            add_common_answers(operation);
        }
    }
    doc.merge(crate::app::common_routes().into_openapi());
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(error_schema_name(), ErrorBody::schema());
    let mut info = Info::new(
        format!("{} service ({} mode)", spec.name, MODE),
        env!("CARGO_PKG_VERSION").to_owned(),
    );
    info.description = Some(format!(
        "The {name} service of the sync-vs-async lab, built in {mode} mode. \
         Every error answer is JSON: `{{\"detail\": ...}}` (the `Error` schema) unless an \
         operation spells out another body. Any path not listed answers 404, a listed path \
         with another method 405, both with an `Error` body.",
        name = spec.name,
        mode = MODE,
    ));
    doc.info = info;
    doc.servers = Some(vec![Server::new(format!(
        "http://localhost:{}",
        spec.port(MODE)
    ))]);
    doc
}

/// The document as it is committed and served: pretty JSON, keys in a
/// stable order, one trailing newline.
pub fn render(doc: &OpenApi) -> String {
    let mut text = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// Where the document of `service` in this build's mode is committed.
pub fn committed_path(service: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/openapi")
        .join(format!("{service}.{MODE}.json"))
}

fn error_schema_name() -> String {
    <ErrorBody as utoipa::ToSchema>::name().into_owned()
}

fn error_response(description: &str) -> Response {
    let schema = RefOr::Ref(Ref::from_schema_name(error_schema_name()));
    let mut response = Response::new(description);
    response
        .content
        .insert("application/json".to_owned(), Content::new(Some(schema)));
    response
}

/// Adds `status` with the `Error` body. When the handler documents the
/// status already, the common reason is added to its description, and a
/// body of its own becomes one of the handler's body or `Error`.
fn add_answer(operation: &mut Operation, (status, description): (&str, &str)) {
    match operation.responses.responses.get_mut(status) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(description) {
                response.description = format!("{} Or: {description}", response.description);
            }
            let error = RefOr::Ref(Ref::from_schema_name(error_schema_name()));
            for content in response.content.values_mut() {
                match content.schema.take() {
                    Some(schema) if schema != error => {
                        let either = OneOfBuilder::new().item(schema).item(error.clone());
                        content.schema = Some(RefOr::T(Schema::OneOf(either.build())));
                    }
                    other => content.schema = other,
                }
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            operation
                .responses
                .responses
                .insert(status.to_owned(), RefOr::T(error_response(description)));
        }
    }
}

fn add_common_answers(operation: &mut Operation) {
    if operation.request_body.is_some() {
        for answer in BODY_ERRORS {
            add_answer(operation, answer);
        }
    }
    let has_parameters = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query));
    if has_parameters {
        add_answer(operation, PARAMETER_ERROR);
    }
    for answer in SERVICE_ERRORS {
        add_answer(operation, answer);
    }
}

fn operations(item: &PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("get", &item.get),
        ("put", &item.put),
        ("post", &item.post),
        ("delete", &item.delete),
        ("options", &item.options),
        ("head", &item.head),
        ("patch", &item.patch),
        ("trace", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
    .collect()
}

fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
    .collect()
}

/// Every `(method, path)` the document lists, methods in lower case.
pub fn documented_routes(doc: &OpenApi) -> BTreeSet<(String, String)> {
    doc.paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            operations(item)
                .into_iter()
                .map(move |(method, _)| (method.to_owned(), path.clone()))
        })
        .collect()
}

/// Every `(method, path)` an axum router serves, methods in lower case
/// (`HEAD`, which axum answers for every `GET`, only where there is no `GET`).
///
/// axum cannot list its routes, but its `Debug` output shows them: each
/// route's id with its path, and each id's method router with its methods.
/// Meant for tests; panics with the output when it cannot read it.
pub fn served_routes<S>(router: &axum::Router<S>) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    let unreadable = |what: &str| -> ! {
        panic!("cannot read the {what} from axum's Debug output of the router: {text}")
    };
    // Only the router's own paths, not its fallback router's.
    let own = text
        .split(", fallback_router:")
        .next()
        .unwrap_or_else(|| unreadable("path router"));
    let (routes, node) = own
        .split_once("node: Node { paths: {")
        .unwrap_or_else(|| unreadable("paths"));
    let paths: Vec<(String, String)> = split_top(until_close(node))
        .into_iter()
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (id, path) = entry
                .split_once(": ")
                .unwrap_or_else(|| unreadable("path of a route"));
            (
                id.trim().to_owned(),
                path.trim().trim_matches('"').to_owned(),
            )
        })
        .collect();
    let known = [
        "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
    ];
    let mut served = BTreeSet::new();
    for (id, path) in paths {
        let marker = format!("{id}: MethodRouter(MethodRouter {{ ");
        let (_, rest) = routes
            .split_once(&marker)
            .unwrap_or_else(|| unreadable("method router of a route"));
        let methods: Vec<String> = split_top(until_close(rest))
            .iter()
            .filter_map(|field| field.split_once(": "))
            .filter(|(method, endpoint)| known.contains(&method.trim()) && *endpoint != "None")
            .map(|(method, _)| method.trim().to_owned())
            .collect();
        let has_get = methods.iter().any(|m| m == "get");
        for method in methods {
            if method == "head" && has_get {
                continue;
            }
            served.insert((method, path.clone()));
        }
    }
    served
}

/// `text` up to the bracket that closes the one opened just before it
/// (brackets inside quotes do not count).
fn until_close(text: &str) -> &str {
    let (mut depth, mut quoted) = (0i32, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' | '{' | '[' if !quoted => depth += 1,
            ')' | '}' | ']' if !quoted => {
                if depth == 0 {
                    return &text[..i];
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    text
}

/// Splits `text` at the commas that are not inside brackets or quotes.
fn split_top(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' | '{' | '[' if !quoted => depth += 1,
            ')' | '}' | ']' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                parts.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current.trim().to_owned());
    parts
}

/// The committed file of `service` is the document the code generates;
/// with `UPDATE_OPENAPI=1` it is rewritten instead.
pub fn assert_committed(service: &str, doc: &OpenApi) {
    let path = committed_path(service);
    let generated = render(doc);
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the docs/openapi folder can be made");
        }
        std::fs::write(&path, &generated).expect("the OpenAPI document can be written");
        return;
    }
    let shown = format!("docs/openapi/{service}.{MODE}.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let at = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "{shown} is not the OpenAPI document the code of the {service} service generates \
             (first difference at line {line}). If the change is meant, regenerate the \
             documents with\n\n    {UPDATE_COMMAND}\n\nand commit the new files.",
            line = at + 1,
        );
    }
}

/// The document is OpenAPI 3.1, at least in its structure: version 3.1.x,
/// every path with at least one operation, every operation with responses
/// (each with a description), every `$ref` to a schema it holds.
pub fn assert_valid(doc: &OpenApi) {
    let value = serde_json::to_value(doc).expect("the document is JSON");
    let version = value["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    assert!(value["info"]["title"].is_string() && value["info"]["version"].is_string());
    let paths = value["paths"].as_object().expect("paths is an object");
    assert!(!paths.is_empty(), "the document has no paths");
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    for (path, item) in paths {
        assert!(path.starts_with('/'), "{path} starts with /");
        let item = item.as_object().expect("a path item is an object");
        let ops: Vec<_> = methods.iter().filter_map(|m| item.get(*m)).collect();
        assert!(!ops.is_empty(), "{path} has no operation");
        for op in ops {
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                !responses.is_empty(),
                "an operation of {path} has no responses"
            );
            for (status, response) in responses {
                assert!(
                    status == "default"
                        || (status.len() == 3 && status.chars().all(|c| c.is_ascii_digit())),
                    "{path}: status {status}"
                );
                assert!(
                    response["description"].is_string(),
                    "{path} {status} has a description"
                );
            }
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let templated: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, templated, "{path}: path parameters");
        }
    }
    let schemas = &value["components"]["schemas"];
    let mut refs = Vec::new();
    collect_refs(&value, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(schemas.get(name).is_some(), "$ref {r} has no schema");
    }
}

fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Every route `router` (the service's own routes) and the common routes
/// serve is in the document, and the document lists no other.
pub fn assert_complete<S>(doc: &OpenApi, router: &axum::Router<S>) {
    let mut served = served_routes(router);
    let (common, _) = crate::app::common_routes().split_for_parts();
    served.extend(served_routes(&common));
    let documented = documented_routes(doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {unserved:?} \
         (register routes with `utoipa_axum::routes!` on the service's OpenApiRouter)"
    );
}

/// The unit tests of a service's OpenAPI document, in both modes: the
/// committed file is current, the document is valid 3.1, and it lists
/// exactly the routes served. `$service` is the service's `ServiceDef`,
/// `$api` its routes as an `OpenApiRouter` (without state).
#[macro_export]
macro_rules! openapi_tests {
    ($service:path, $api:expr) => {
        #[cfg(test)]
        mod openapi_tests {
            #[test]
            fn the_committed_openapi_document_is_current() {
                let service = &$service;
                $crate::openapi::assert_committed(service.spec.name, &(service.openapi)());
            }

            #[test]
            fn the_openapi_document_is_valid_openapi_3_1() {
                $crate::openapi::assert_valid(&($service.openapi)());
            }

            #[test]
            fn the_openapi_document_lists_every_route_served() {
                let (router, _) = $api.split_for_parts();
                $crate::openapi::assert_complete(&($service.openapi)(), &router);
            }
        }
    };
}
