//! Bad input on every entry point: a clear 4xx JSON error, never a 5xx, and
//! nothing changed.

use lab_tests::Stack;
use reqwest::Method;
use serde_json::Value;

/// Every route that takes a body: (service, method, path).
const ENTRY_POINTS: &[(&str, &str, &str)] = &[
    ("user", "POST", "/register"),
    ("payment", "POST", "/process_payment"),
    ("product", "PUT", "/products/1"),
    ("report", "POST", "/generate_report"),
    ("order", "POST", "/create_order"),
    ("analytics", "POST", "/track_click"),
    ("analytics", "POST", "/product_updates"),
    ("email", "POST", "/send"),
    ("search", "POST", "/index"),
    ("cache", "POST", "/invalidate"),
    ("cache", "PUT", "/entries/k"),
    ("inventory", "POST", "/reservations"),
    ("inventory", "PUT", "/stock/1"),
];

async fn send(
    stack: &Stack,
    (service, method, path): (&str, &str, &str),
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let response = stack
        .http()
        .request(method, stack.url(service, path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// What a user would look at to see that nothing happened.
async fn snapshot(stack: &Stack) -> Vec<Value> {
    let mut seen = Vec::new();
    for (service, path) in [
        ("product", "/products"),
        ("email", "/emails"),
        ("analytics", "/clicks/stats"),
        ("analytics", "/product_updates"),
        ("cache", "/invalidations"),
        ("inventory", "/stock/1"),
        ("search", "/search?q=laptop"),
    ] {
        seen.push(stack.get(service, path).await.1);
    }
    seen
}

#[tokio::test]
async fn malformed_wrong_typed_missing_and_huge_bodies_are_4xx_json_and_change_nothing() {
    let stack = Stack::builder()
        .var("BODY_LIMIT_BYTES", "4096")
        .start()
        .await;
    let before = snapshot(&stack).await;
    let cases: &[(&str, &str, Vec<u8>, &[u16])] = &[
        ("malformed JSON", "application/json", b"{,".to_vec(), &[400]),
        ("not JSON at all", "application/json", b"hello".to_vec(), &[400]),
        ("a JSON array", "application/json", b"[1, 2, 3]".to_vec(), &[422]),
        ("wrong types", "application/json", br#"{"email": 1, "amount": "x", "product_id": "y", "quantity": "z", "user_id": "u", "page": 5, "report_type": [], "name": 3, "stock": "s", "to": 1, "order_id": "o", "available": "a"}"#.to_vec(), &[422]),
        ("no fields", "application/json", b"{}".to_vec(), &[422]),
        ("huge body", "application/json", format!("{{\"pad\": \"{}\"}}", "x".repeat(10_000)).into_bytes(), &[413]),
        ("wrong content type", "text/plain", b"{}".to_vec(), &[415]),
        ("a NUL character", "application/json", br#"{"email": "a\u0000b@example.com", "page": "a\u0000b", "name": "a\u0000b", "user_id": 1, "stock": 1}"#.to_vec(), &[422]),
    ];

    for (case, content_type, body, expected) in cases {
        for &entry in ENTRY_POINTS {
            let (status, answer) = send(&stack, entry, content_type, body.clone()).await;
            assert!(
                expected.contains(&status),
                "{case} on {entry:?}: {status} {answer}"
            );
            assert!(
                answer["detail"].is_string(),
                "{case} on {entry:?} answers JSON: {answer}"
            );
        }
    }

    assert_eq!(snapshot(&stack).await, before);
}

#[tokio::test]
async fn unknown_ids_are_404_or_400_never_5xx() {
    let stack = Stack::start().await;
    for (service, path, expected) in [
        ("user", "/users/424242", 404),
        ("user", "/users/x", 400),
        ("product", "/products/424242", 404),
        ("product", "/products/99999999999999999999999", 400),
        ("order", "/orders/424242", 404),
        ("order", "/orders/-1", 404),
        ("report", "/jobs/123", 400),
        ("inventory", "/stock/424242", 404),
        ("inventory", "/reservations/424242", 404),
        ("cache", "/entries/nothing-here", 404),
        ("search", "/search", 422),
        ("search", "/search?q=%20%20", 422),
        ("search", "/search?q=a%00b", 400),
        ("cache", "/entries/a%00b", 400),
    ] {
        let (status, body) = stack.get(service, path).await;
        assert_eq!(status, expected, "{service}{path}: {body}");
        assert!(body["detail"].is_string(), "{service}{path}: {body}");
    }
}

#[tokio::test]
async fn a_nul_in_a_valid_body_is_422_and_stores_nothing() {
    let stack = Stack::start().await;
    let before = snapshot(&stack).await;
    for (entry, body) in [
        (
            ("product", "PUT", "/products/1"),
            r#"{"name": "a\u0000b", "stock": 1}"#,
        ),
        (
            ("analytics", "POST", "/track_click"),
            r#"{"user_id": 1, "page": "a\u0000b"}"#,
        ),
    ] {
        let (status, answer) = send(&stack, entry, "application/json", body.into()).await;
        assert_eq!(status, 422, "{entry:?}: {answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("NUL"),
            "{answer}"
        );
    }
    assert_eq!(snapshot(&stack).await, before);
}

/// A client that sends its whole body before reading the answer, as
/// Python's `urllib.request` and many scripts do.
async fn send_all_then_read(
    stack: &Stack,
    (service, method, path): (&str, &str, &str),
    size: usize,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = reqwest::Url::parse(&stack.url(service, path)).expect("a URL");
    let address = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let mut tcp = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connected");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("head sent");
    let mut body = vec![b' '; size];
    body[0] = b'{';
    body[size - 1] = b'}';
    tcp.write_all(&body)
        .await
        .expect("the whole body is taken, no broken pipe");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tcp.read(&mut buf).await.expect("the answer is read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_sends_a_huge_body_first_still_reads_its_413() {
    let stack = Stack::start().await;
    for entry in [
        ("analytics", "POST", "/track_click"),
        ("product", "PUT", "/products/1"),
    ] {
        let answer = send_all_then_read(&stack, entry, 4 * 1024 * 1024).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{entry:?}: {answer}");
        assert!(
            answer.contains(r#""detail""#),
            "{entry:?} answers JSON: {answer}"
        );
    }
}
