//! Reading a body with a bound.
//!
//! `Response::bytes()` keeps reading for as long as the server sends: an
//! endpoint that streamed a 200 forever once grew the daemon to 7 GiB. A
//! body is therefore read chunk by chunk and dropped (closing the
//! connection) as soon as it passes the source's `max_response_bytes`, and
//! refused before the first chunk when its `Content-Length` already says
//! so. Only a request's timeout bounds how long a slow body may take.

use bytes::{Bytes, BytesMut};
use reqwest::Response;

use super::{FetchError, classify_transport};

pub use crate::config::{DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES_LIMIT};

/// The first allocation, whatever `Content-Length` claims: a header costs
/// the server nothing to lie in.
const FIRST_CAPACITY: usize = 64 * 1024;

/// The whole body of `response`, or [`FetchError::TooLarge`] once it
/// passes `limit` bytes.
pub(super) async fn read_limited(mut response: Response, limit: u64) -> Result<Bytes, FetchError> {
    let declared = response.content_length();
    if declared.is_some_and(|len| len > limit) {
        return Err(FetchError::TooLarge { limit });
    }
    let first = declared.and_then(|len| usize::try_from(len).ok()).unwrap_or(0).min(FIRST_CAPACITY);
    let mut body = BytesMut::with_capacity(first);
    while let Some(chunk) = response.chunk().await.map_err(classify_transport)? {
        let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > limit {
            return Err(FetchError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A server that answers every connection with `head` and then writes
    /// `chunk` `times` times (`usize::MAX`: until the client hangs up).
    async fn server(head: &'static str, chunk: &'static [u8], times: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    for _ in 0..times {
                        if socket.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    async fn read(url: &str, limit: u64) -> Result<Bytes, FetchError> {
        let response = reqwest::get(url).await.unwrap();
        read_limited(response, limit).await
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit() {
        let url =
            server("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n", &[b'['; 8192], usize::MAX)
                .await;
        assert_eq!(read(&url, 100_000).await.unwrap_err(), FetchError::TooLarge { limit: 100_000 });
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let url = server("HTTP/1.1 200 OK\r\ncontent-length: 1000001\r\n\r\n", b"", 0).await;
        assert_eq!(read(&url, 1_000_000).await.unwrap_err(), FetchError::TooLarge { limit: 1_000_000 });
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let url = server("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", &[b' '; 100], 10).await;
        assert_eq!(read(&url, 1000).await.unwrap().len(), 1000);
        let url = server("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", &[b' '; 100], 10).await;
        assert_eq!(read(&url, 1000).await.unwrap().len(), 1000, "no Content-Length, closed at the end");
        let url = server("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", &[b' '; 100], 11).await;
        assert_eq!(read(&url, 1000).await.unwrap_err(), FetchError::TooLarge { limit: 1000 });
    }
}
