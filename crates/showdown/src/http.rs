//! The race's own HTTP/1.1 client: each request in flight on a connection
//! of its own, a few connections kept for the next race.
//!
//! Why not reqwest (which the rest of the page uses): a race holds up to
//! 2,000 requests in flight at once, and hyper's client gives every
//! connection a fixed 8 KiB write buffer, an 8 KiB read buffer and a
//! dispatch channel block of 8 KiB, about 25 KiB with its futures, whatever
//! the size of the answer: 70 MB at the peak of a 1,000-request race
//! (measured with valgrind's massif). The lab's requests and answers are
//! small JSON documents with a `Content-Length`, so a request here is its
//! bytes, a 1 KiB buffer that grows only for a larger answer, and the
//! socket. The parsing is `httparse`'s, which hyper itself uses.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Idle connections kept for the next race, per lane.
const KEEP: usize = 64;
/// An idle connection older than this is closed rather than reused: the
/// services close theirs after `HEADER_READ_TIMEOUT_MS` (10 s) idle.
const FRESH: Duration = Duration::from_secs(4);
/// Answers larger than this are refused (the lab's are a few hundred bytes).
const MAX_ANSWER: usize = 1 << 20;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nobody listens (the service is stopped).
    Refused,
    /// No whole answer within the client's time limit.
    TimedOut,
    /// The connection broke, or the answer could not be read.
    Broken,
}

impl Failure {
    pub fn describe(self) -> &'static str {
        match self {
            Failure::Refused => "connection refused",
            Failure::TimedOut => "no answer in time",
            Failure::Broken => "connection error",
        }
    }
}

pub struct Client {
    idle: Mutex<Vec<(String, TcpStream, Instant)>>,
    timeout: Duration,
}

impl Client {
    pub fn new(timeout: Duration) -> Client {
        Client {
            idle: Mutex::new(Vec::new()),
            timeout,
        }
    }

    /// Sends `body` as JSON to `url` (`http://host:port/path`) and reads the
    /// whole answer: its status and body.
    pub async fn send(&self, method: &str, url: &str, body: &[u8]) -> Result<Answered, Failure> {
        let (authority, path) = split(url).ok_or(Failure::Broken)?;
        let mut request = Vec::with_capacity(160 + path.len() + body.len());
        request.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
                 accept: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        let exchange = async {
            if let Some(stream) = self.reuse(authority) {
                // A kept connection the server closed meanwhile fails before
                // any answer came: then (only then) try a new one.
                match exchange(stream, &request).await {
                    Err(Attempt::Unused) => {}
                    other => return self.finish(authority, other),
                }
            }
            let stream = TcpStream::connect(authority)
                .await
                .map_err(|_| Failure::Refused)?;
            // Answers are small and latency is what the race shows: no Nagle.
            let _ = stream.set_nodelay(true);
            self.finish(authority, exchange(stream, &request).await)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(Failure::TimedOut))
    }

    fn reuse(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(_, _, since)| since.elapsed() < FRESH);
        let at = idle.iter().rposition(|(a, _, _)| a == authority)?;
        Some(idle.swap_remove(at).1)
    }

    fn finish(&self, authority: &str, done: Result<Answer, Attempt>) -> Result<Answered, Failure> {
        let answer = done.map_err(|_| Failure::Broken)?;
        if let Some(stream) = answer.keep {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < KEEP {
                idle.push((authority.to_owned(), stream, Instant::now()));
            }
        }
        Ok(Answered {
            status: answer.status,
            body: answer.body,
            handled_ms: answer.handled_ms,
        })
    }
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub status: u16,
    pub body: Bytes,
    /// The service's own time in its handler (its `Server-Timing`), if it said.
    pub handled_ms: Option<f64>,
}

struct Answer {
    status: u16,
    body: Bytes,
    handled_ms: Option<f64>,
    /// The connection, when the server keeps it open.
    keep: Option<TcpStream>,
}

enum Attempt {
    /// Failed before a byte of the answer arrived.
    Unused,
    Broken,
}

/// `("127.0.0.1:8005", "/create_order")` from `http://127.0.0.1:8005/create_order`.
fn split(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    match rest.find('/') {
        Some(slash) => Some((&rest[..slash], &rest[slash..])),
        None => Some((rest, "/")),
    }
}

async fn exchange(mut stream: TcpStream, request: &[u8]) -> Result<Answer, Attempt> {
    stream
        .write_all(request)
        .await
        .map_err(|_| Attempt::Unused)?;
    let mut buf = BytesMut::with_capacity(1024);
    let (status, head, length, close, handled_ms) = loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= MAX_ANSWER {
                return Err(Attempt::Broken);
            }
            buf.reserve(buf.len());
        }
        let read = stream.read_buf(&mut buf).await;
        match read {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Attempt::Unused),
            Ok(0) | Err(_) => return Err(Attempt::Broken),
            Ok(_) => {}
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head)) => {
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                let length = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                let close = response.version == Some(0)
                    || header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                if header("transfer-encoding").is_some() {
                    // Not what the lab's services send: refuse rather than guess.
                    return Err(Attempt::Broken);
                }
                let handled_ms = header(common::metrics::SERVER_TIMING.as_str())
                    .and_then(common::metrics::handler_time)
                    .map(|d| d.as_secs_f64() * 1000.0);
                break (
                    response.code.ok_or(Attempt::Broken)?,
                    head,
                    length,
                    close,
                    handled_ms,
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(Attempt::Broken),
        }
    };
    let mut body = buf.split_off(head);
    match length {
        Some(length) if length <= MAX_ANSWER => {
            while body.len() < length {
                body.reserve(length - body.len());
                match stream.read_buf(&mut body).await {
                    Ok(0) | Err(_) => return Err(Attempt::Broken),
                    Ok(_) => {}
                }
            }
            body.truncate(length);
        }
        Some(_) => return Err(Attempt::Broken),
        // No length: the body ends with the connection.
        None => loop {
            if body.len() >= MAX_ANSWER {
                return Err(Attempt::Broken);
            }
            body.reserve(1024);
            match stream.read_buf(&mut body).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(Attempt::Broken),
            }
        },
    }
    let keep = (length.is_some() && !close).then_some(stream);
    Ok(Answer {
        status,
        body: body.freeze(),
        handled_ms,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request on a connection with `answers`
    /// in turn, then closes the connection.
    async fn server(answers: Vec<&'static str>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let (mut stream, _) = listener.accept().await.unwrap();
            for answer in answers {
                let mut request = vec![0; 4096];
                let n = stream.read(&mut request).await.unwrap();
                seen.push(String::from_utf8_lossy(&request[..n]).into_owned());
                stream.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        (base, task)
    }

    #[tokio::test]
    async fn a_request_is_sent_whole_and_its_answer_read_and_the_connection_kept() {
        let (base, server) = server(vec![
            "HTTP/1.1 202 Accepted\r\ncontent-length: 11\r\nserver-timing: app;dur=1.250\r\n\r\n{\"id\": 42}\n",
            "HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\nconnection: close\r\n\r\n{}",
        ])
        .await;
        let client = Client::new(Duration::from_secs(5));

        let first = client
            .send("POST", &format!("{base}/create_order"), br#"{"a":1}"#)
            .await;
        let second = client.send("PUT", &format!("{base}/stock/1"), b"{}").await;

        let answered = |status, body: &'static [u8], handled_ms| Answered {
            status,
            body: Bytes::from_static(body),
            handled_ms,
        };
        assert_eq!(first, Ok(answered(202, b"{\"id\": 42}\n", Some(1.25))));
        assert_eq!(second, Ok(answered(409, b"{}", None)));
        let seen = server.await.unwrap();
        assert!(
            seen[0].starts_with("POST /create_order HTTP/1.1\r\n"),
            "{}",
            seen[0]
        );
        assert!(seen[0].contains("content-length: 7\r\n"), "{}", seen[0]);
        assert!(seen[0].ends_with("\r\n\r\n{\"a\":1}"), "{}", seen[0]);
        assert!(
            seen[1].starts_with("PUT /stock/1 HTTP/1.1"),
            "the kept connection was reused"
        );
        assert!(
            client.idle.lock().unwrap().is_empty(),
            "a closed connection is not kept"
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_refused_and_silence_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}/x", listener.local_addr().unwrap());
        let client = Client::new(Duration::from_millis(300));

        assert_eq!(
            client.send("GET", &silent, b"").await,
            Err(Failure::TimedOut)
        );
        drop(listener);
        assert_eq!(
            client.send("GET", &silent, b"").await,
            Err(Failure::Refused)
        );
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_by_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            for close_after in [true, false] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 4096];
                let _ = stream.read(&mut request).await.unwrap();
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                if close_after {
                    drop(stream);
                } else {
                    let _ = stream.read(&mut request).await;
                }
            }
        });
        let client = Client::new(Duration::from_secs(5));
        assert_eq!(
            client
                .send("GET", &format!("{base}/a"), b"")
                .await
                .map(|a| a.status),
            Ok(200)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;

        let again = client.send("GET", &format!("{base}/b"), b"").await;

        assert_eq!(again.map(|a| a.status), Ok(200));
        server.abort();
    }
}
