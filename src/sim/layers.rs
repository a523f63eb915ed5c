//! Middleware shared by all vendor simulators: the request log around every
//! route, and fault injection in front of the data routes.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION, USER_AGENT};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;

use super::state::{SavedPage, Shared};
use super::{Fault, RequestRecord, SAME_ORIGIN_REDIRECT_MARKER};

/// What a reverse proxy in front of a vendor shows when the backend dies;
/// pollers must cope with a non-JSON 500.
const PROXY_ERROR_PAGE: &str = "<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n\
<body>\r\n<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n\
</body>\r\n</html>\r\n";

/// Logs every request with the status it was answered with, so tests can
/// assert on what the poller actually sent (paths, queries, user-agent).
pub(crate) async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let received = Instant::now();
    let at = Utc::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let user_agent = request.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let response = next.run(request).await;
    shared.record(RequestRecord {
        method,
        path,
        query,
        user_agent,
        status: response.status().as_u16(),
        at,
        received,
    });
    response
}

/// Refuses a data request that breaks the enforced rate limit (the
/// vendor's 429), else replaces its answer with the next queued fault.
pub(crate) async fn inject_fault(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(retry_after_secs) = shared.admit(Instant::now()) {
        return shared.vendor().rate_limited(retry_after_secs);
    }
    let Some(fault) = shared.next_fault() else {
        return remember(&shared, next.run(request).await).await;
    };
    match fault {
        Fault::RateLimited { retry_after_secs } => shared.vendor().rate_limited(retry_after_secs),
        Fault::Unauthorized => shared.vendor().unauthorized(),
        Fault::ErrorIn200 => shared.vendor().error_in_200(),
        Fault::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            "Service Unavailable",
        )
            .into_response(),
        Fault::HtmlError => (StatusCode::INTERNAL_SERVER_ERROR, Html(PROXY_ERROR_PAGE)).into_response(),
        Fault::Slow(delay) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shared.stopped().cancelled() => {}
            }
            remember(&shared, next.run(request).await).await
        }
        Fault::TruncatedJson => truncate(next.run(request).await).await,
        Fault::MalformedItem => rewrite(next.run(request).await, |body| shared.vendor().malform(body)).await,
        Fault::RepeatPreviousPage => match shared.last_page() {
            Some(page) => {
                let mut response = Response::new(Body::from(page.body));
                if let Some(content_type) = page.content_type {
                    response.headers_mut().insert(CONTENT_TYPE, content_type);
                }
                response
            }
            None => remember(&shared, next.run(request).await).await,
        },
        Fault::HollowItems => rewrite(next.run(request).await, |body| shared.vendor().hollow(body)).await,
        Fault::SameOriginRedirect => {
            let uri = request.uri();
            let location = match uri.query() {
                Some(query) => format!("{}?{query}&{SAME_ORIGIN_REDIRECT_MARKER}", uri.path()),
                None => format!("{}?{SAME_ORIGIN_REDIRECT_MARKER}", uri.path()),
            };
            (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, location)]).into_response()
        }
        Fault::NextLinkTo(origin) => {
            rewrite(next.run(request).await, |body| {
                shared.vendor().link_to(body, &origin);
            })
            .await
        }
        Fault::NotFound => {
            (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"message": "Not Found"}))).into_response()
        }
        Fault::PageOf(n) => {
            rewrite(next.run(request).await, |body| {
                if let Some(items) = page_items(body)
                    && let Some(first) = items.first().cloned()
                {
                    items.resize(n, first);
                }
            })
            .await
        }
        Fault::BigItem(bytes) => {
            rewrite(next.run(request).await, |body| {
                if let Some(Value::Object(item)) = page_items(body).and_then(|items| items.first_mut()) {
                    item.insert("x_padding".into(), Value::String("x".repeat(bytes)));
                }
            })
            .await
        }
        Fault::BrokenItems(n) => {
            rewrite(next.run(request).await, |body| {
                if let Some(items) = page_items(body) {
                    items.extend((0..n).map(|i| serde_json::json!({ "broken": i })));
                }
            })
            .await
        }
    }
}

/// The item list of a page, whatever the vendor's envelope: the first array
/// of objects within two levels of the top (`data`, `incidents`,
/// `data.alerts`, ...).
fn page_items(body: &mut Value) -> Option<&mut Vec<Value>> {
    fn is_items(v: &Value) -> bool {
        v.as_array().is_some_and(|a| a.first().is_some_and(Value::is_object))
    }
    let path: Vec<String> = {
        let top = body.as_object()?;
        if let Some((k, _)) = top.iter().find(|(_, v)| is_items(v)) {
            vec![k.clone()]
        } else {
            let (k, inner) =
                top.iter().find(|(_, v)| v.as_object().is_some_and(|o| o.values().any(is_items)))?;
            let (k2, _) = inner.as_object()?.iter().find(|(_, v)| is_items(v))?;
            vec![k.clone(), k2.clone()]
        }
    };
    let mut at = body;
    for key in &path {
        at = at.get_mut(key)?;
    }
    at.as_array_mut()
}

/// Keeps a successful answer so [`Fault::RepeatPreviousPage`] can serve it
/// again.
async fn remember(shared: &Shared, response: Response) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    shared
        .save_page(SavedPage { content_type: parts.headers.get(CONTENT_TYPE).cloned(), body: bytes.clone() });
    Response::from_parts(parts, Body::from(bytes))
}

/// Cuts the body in half, as when a connection drops mid-transfer behind a
/// proxy that already sent the headers.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
}

/// Lets the vendor change a successful JSON page (break an item, hollow
/// the items, redirect the next link).
async fn rewrite(response: Response, change: impl FnOnce(&mut Value)) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    change(&mut json);
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json.to_string()))
}
