//! Clients that speak HTTP badly, as a raw TCP connection sends it: each
//! gets its 4xx (or, for a valid old HTTP/1.0 client, its answer) and
//! nothing is stored. Both modes; the HTTP layer is the same in each.

use std::time::Duration;

use common::MODE;
use lab_tests::Stack;
use loadgen::scenario::Scenario;

const CLICK: &str = r#"{"user_id": 1, "page": "home"}"#;

fn click_with(head: &str) -> Vec<u8> {
    format!("POST /track_click HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n{head}\r\n{CLICK}")
        .into_bytes()
}

async fn clicks_stored(stack: &Stack) -> i64 {
    let (status, stats) = stack.get("analytics", "/clicks/stats").await;
    assert_eq!(status, 200);
    stats["total"].as_i64().unwrap()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("(nothing)")
}

#[tokio::test]
async fn a_duplicate_or_malformed_content_length_is_400_and_stores_nothing() {
    let stack = Stack::start().await;
    let n = CLICK.len();
    for head in [
        format!("Content-Length: {n}\r\nContent-Length: {}\r\n", n + 1),
        format!("Content-Length: {n}, {}\r\n", n + 1),
        "Content-Length: thirty\r\n".to_owned(),
        "Content-Length: -30\r\n".to_owned(),
        format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
    ] {
        let answer = stack.raw("analytics", &click_with(&head)).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{head:?} -> {}",
            status_line(&answer)
        );
    }
    assert_eq!(clicks_stored(&stack).await, 0);
}

#[tokio::test]
async fn a_request_line_or_header_over_the_limit_is_4xx_and_stores_nothing() {
    let stack = Stack::start().await;
    let long_path = format!("/track_click?{}", "p".repeat(1024 * 1024));
    let request = format!(
        "POST {long_path} HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CLICK}",
        CLICK.len()
    );
    let answer = stack.raw("analytics", request.as_bytes()).await;
    let status = status_line(&answer);
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "a 1 MiB request line -> {status}"
    );
    let head = format!(
        "X-Padding: {}\r\nContent-Length: {}\r\n",
        "h".repeat(1024 * 1024),
        CLICK.len()
    );
    let answer = stack.raw("analytics", &click_with(&head)).await;
    let status = status_line(&answer);
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "a 1 MiB header -> {status}"
    );
    assert_eq!(clicks_stored(&stack).await, 0);
}

#[tokio::test]
async fn an_http_1_0_client_gets_its_answer_and_the_connection_closes() {
    let stack = Stack::start().await;
    let request = format!(
        "POST /track_click HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CLICK}",
        CLICK.len()
    );
    // `raw` reads until the server closes: an HTTP/1.0 answer ends the connection.
    let answer = stack.raw("analytics", request.as_bytes()).await;
    let expected = Scenario::Click.expected(MODE);
    assert!(
        answer.starts_with(&format!("HTTP/1.0 {expected}")),
        "{}",
        status_line(&answer)
    );
    assert!(answer.ends_with(r#"{"status":"tracked"}"#), "{answer}");
    let stored = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == 1)
        .await;
    assert_eq!(stored["total"], 1);
}

/// A stack whose services give a client 300 ms for a request's head and
/// close a kept-alive connection idle that long (`HEADER_READ_TIMEOUT_MS`).
async fn impatient() -> Stack {
    Stack::builder()
        .var("HEADER_READ_TIMEOUT_MS", "300")
        .start()
        .await
}

/// Whether the server has closed `stream` (read gives 0 or an error, or an
/// answer such as a 408 followed by the close), waiting up to `within`.
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A well-behaved client's click beside the bad ones: its status.
async fn another_click(stack: &Stack) -> u16 {
    let click = serde_json::json!({"user_id": 2, "page": "home"});
    stack.post("analytics", "/track_click", click).await.0
}

/// The click as one full HTTP/1.1 request on a kept-alive connection.
fn keep_alive_click() -> Vec<u8> {
    click_with(&format!("Content-Length: {}\r\n", CLICK.len()))
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_and_others_are_still_served() {
    use tokio::io::AsyncWriteExt;
    let stack = impatient().await;
    let mut slow = tokio::net::TcpStream::connect(stack.address("analytics"))
        .await
        .unwrap();
    slow.write_all(b"POST /track_click HTTP/1.1\r\nHost: lab\r\n")
        .await
        .unwrap();
    // One header byte every 100 ms: never a whole head within 300 ms.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X").await.is_err() {
                return Some(slow);
            }
            if closed_by_server(&mut slow, Duration::from_millis(1)).await {
                return Some(slow);
            }
        }
        None
    });
    // Meanwhile another client is served as usual.
    assert_eq!(another_click(&stack).await, Scenario::Click.expected(MODE));
    let cut = trickle.await.unwrap();
    assert!(cut.is_some(), "the trickling client was never cut (10 s)");
    let stored = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == 1)
        .await;
    assert_eq!(stored["total"], 1, "only the whole request was stored");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_and_do_not_stop_others_being_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = impatient().await;
    // 500 clients each send one click, read the answer and keep the
    // connection open, idle, as forgotten keep-alive clients do.
    let mut idle = Vec::new();
    for _ in 0..500 {
        let mut tcp = tokio::net::TcpStream::connect(stack.address("analytics"))
            .await
            .unwrap();
        tcp.write_all(&keep_alive_click()).await.unwrap();
        let mut answer = [0u8; 1024];
        let n = tcp.read(&mut answer).await.unwrap();
        assert!(
            String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 "),
            "answered"
        );
        idle.push(tcp);
    }
    assert_eq!(
        another_click(&stack).await,
        Scenario::Click.expected(MODE),
        "served beside 500 idle connections"
    );
    let mut closed = 0;
    for tcp in &mut idle {
        closed += usize::from(closed_by_server(tcp, Duration::from_secs(10)).await);
    }
    assert_eq!(closed, 500, "every idle connection closed by the server");
    let stored = stack
        .get_until("analytics", "/clicks/stats", |s| s["total"] == 501)
        .await;
    assert_eq!(stored["total"], 501);
}
