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

/// Chunks smaller than this are gathered before they are kept.
const SEGMENT: usize = 64 * 1024;

/// The whole body of `response`, or [`FetchError::TooLarge`] once it
/// passes `limit` bytes.
///
/// The chunks are kept as they arrive and copied once, into a buffer of the
/// body's exact size, at its end (a single chunk is returned as it is): a
/// buffer grown by doubling copies the body again at every step and, with
/// an allocator that keeps freed memory a while, holds every size it went
/// through at once (a 32 MiB body peaked at 130 MiB of RSS that way). At
/// most twice the body is held, and only for the final copy.
pub(super) async fn read_limited(mut response: Response, limit: u64) -> Result<Bytes, FetchError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(FetchError::TooLarge { limit });
    }
    let mut chunks: Vec<Bytes> = Vec::new();
    // Small chunks (a server may send its body a byte at a time) are
    // gathered into segments, so the list holds at most about two entries
    // per SEGMENT of body.
    let mut small = BytesMut::new();
    let mut total: usize = 0;
    while let Some(chunk) = response.chunk().await.map_err(classify_transport)? {
        total = total.saturating_add(chunk.len());
        if u64::try_from(total).unwrap_or(u64::MAX) > limit {
            return Err(FetchError::TooLarge { limit });
        }
        if chunk.len() >= SEGMENT {
            if !small.is_empty() {
                chunks.push(small.split().freeze());
            }
            chunks.push(chunk);
        } else {
            if small.is_empty() {
                small.reserve(SEGMENT);
            }
            small.extend_from_slice(&chunk);
            if small.len() >= SEGMENT {
                chunks.push(small.split().freeze());
            }
        }
    }
    if !small.is_empty() {
        chunks.push(small.freeze());
    }
    if chunks.len() == 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    let mut body = BytesMut::with_capacity(total);
    for chunk in chunks {
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
