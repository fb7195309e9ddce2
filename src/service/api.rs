//! The `/v1` API (contract §9) on the `/metrics` listener: JSON in, JSON out, 4xx with a
//! message saying what was wrong. Questions go to the pipeline task over a channel
//! ([`Query`]); a decision's SQL then runs here, beside the pipeline.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::access::Access;
use crate::alert::Status;
use crate::ask::answer::Query;
use crate::ask::decide::{DecideRequest, Decider, Refusal, to_json};
use crate::ask::findings::Filter;

/// How long a request waits for the pipeline task (busy with a large batch, say).
const PIPELINE_WAIT: Duration = Duration::from_secs(10);
/// Default page size of `/v1/findings`.
const DEFAULT_PAGE: usize = 100;
/// Longest identity accepted in a path (contract §1.1).
const MAX_IDENTITY: usize = 512;

/// The `/v1` endpoints of one service.
pub struct Api {
    pub queries: mpsc::Sender<Query>,
    pub decider: Arc<Decider>,
    pub access: Access,
    pub max_body: usize,
    pub max_page: usize,
    /// Rule ids, to check `rule=` filters.
    pub rule_ids: Vec<String>,
}

type Answer = Response<Full<Bytes>>;

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    json_response(status, &json!({ "error": message.into() }))
}

fn refused(refusal: Refusal) -> Answer {
    let status = match refusal {
        Refusal::UnknownIdentity(_) => StatusCode::NOT_FOUND,
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::NoState => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, refusal.to_string())
}

impl Api {
    /// Answers one `/v1` request.
    pub async fn handle(&self, req: Request<Incoming>) -> Answer {
        if let Err(why) = self.access.check(req.headers()) {
            let mut answer = error(StatusCode::UNAUTHORIZED, why);
            answer.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return answer;
        }
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let allow = |methods: &'static str| {
            let mut answer = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} answers {methods} only"),
            );
            answer
                .headers_mut()
                .insert("allow", hyper::header::HeaderValue::from_static(methods));
            answer
        };
        if let Some(rest) = path.strip_prefix("/v1/identities/") {
            if method != Method::GET {
                return allow("GET");
            }
            return self.identity(rest).await;
        }
        match path.as_str() {
            "/v1/findings" if method == Method::GET => self.findings(req.uri().query()).await,
            "/v1/findings" => allow("GET"),
            "/v1/decide" if method == Method::POST => self.decide(req).await,
            "/v1/decide" => allow("POST"),
            _ => error(
                StatusCode::NOT_FOUND,
                format!(
                    "no endpoint {path}: try GET /v1/identities/{{identity}}, \
                     GET /v1/findings or POST /v1/decide"
                ),
            ),
        }
    }

    /// Sends `query` to the pipeline task and waits for its reply.
    async fn ask<T>(&self, query: Query, reply: oneshot::Receiver<T>) -> Result<T, Answer> {
        let unavailable = |what: &str| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the pipeline {what}"),
            )
        };
        if self.queries.send(query).await.is_err() {
            return Err(unavailable("has stopped"));
        }
        match tokio::time::timeout(PIPELINE_WAIT, reply).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(unavailable("has stopped")),
            Err(_) => Err(unavailable("is busy: try again")),
        }
    }

    async fn identity(&self, raw: &str) -> Answer {
        let identity = match percent_decode(raw) {
            Ok(i) if !i.is_empty() && i.len() <= MAX_IDENTITY => i,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the identity must be 1 to {MAX_IDENTITY} bytes"),
                );
            }
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        };
        let (reply, answer) = oneshot::channel();
        match self.ask(Query::Identity { identity, reply }, answer).await {
            Ok(Ok(view)) => json_response(
                StatusCode::OK,
                &serde_json::to_value(&view).unwrap_or(Value::Null),
            ),
            Ok(Err(refusal)) => refused(refusal),
            Err(answer) => answer,
        }
    }

    async fn findings(&self, query: Option<&str>) -> Answer {
        let (filter, cursor, limit) = match self.parse_findings_query(query.unwrap_or_default()) {
            Ok(parsed) => parsed,
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        };
        let (reply, answer) = oneshot::channel();
        let query = Query::Findings {
            filter,
            cursor,
            limit,
            reply,
        };
        match self.ask(query, answer).await {
            Ok(page) => json_response(StatusCode::OK, &page),
            Err(answer) => answer,
        }
    }

    fn parse_findings_query(&self, query: &str) -> Result<(Filter, Option<u64>, usize), String> {
        let mut filter = Filter::default();
        let mut cursor = None;
        let mut limit = DEFAULT_PAGE.min(self.max_page);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            let empty = || format!("`{name}` needs a value");
            if value.is_empty() {
                return Err(empty());
            }
            match name {
                "rule" => {
                    if !self.rule_ids.contains(&value) {
                        return Err(format!(
                            "rule `{value}` is not a rule id: one of {}",
                            self.rule_ids.join(", ")
                        ));
                    }
                    filter.rule = Some(value);
                }
                "status" => {
                    filter.status = Some(match value.as_str() {
                        "open" => Status::Open,
                        "resolved" => Status::Resolved,
                        _ => return Err(format!("status `{value}` is not one of: open, resolved")),
                    });
                }
                "identity" => filter.identity = Some(value),
                "severity" => {
                    if !["low", "medium", "high", "critical"].contains(&value.as_str()) {
                        return Err(format!(
                            "severity `{value}` is not one of: low, medium, high, critical"
                        ));
                    }
                    filter.severity = Some(value);
                }
                "limit" => {
                    limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=self.max_page).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "limit `{value}` is not a number from 1 to {}",
                                self.max_page
                            )
                        })?;
                }
                "cursor" => {
                    cursor = Some(value.parse().map_err(|_| {
                        format!("cursor `{value}` is not one this API gave (`next_cursor`)")
                    })?);
                }
                other => {
                    return Err(format!(
                        "unknown parameter `{other}`: one of rule, status, identity, severity, \
                         limit, cursor"
                    ));
                }
            }
        }
        Ok((filter, cursor, limit))
    }

    async fn decide(&self, req: Request<Incoming>) -> Answer {
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", self.max_body),
            )
        };
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            return too_large();
        }
        let body = match Limited::new(req.into_body(), self.max_body).collect().await {
            Ok(body) => body.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large();
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        let request: DecideRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                let text: String = e.to_string().chars().take(300).collect();
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not a decision request: {text}"),
                );
            }
        };
        let (reply, answer) = oneshot::channel();
        let prepared = match self.ask(Query::Prepare { request, reply }, answer).await {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(refusal)) => return refused(refusal),
            Err(answer) => return answer,
        };
        match self.decider.decide(prepared).await {
            Ok(decision) => json_response(StatusCode::OK, &to_json(&decision)),
            Err(e) => {
                tracing::warn!(error = %e, "a decision failed");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the decision failed; see the log",
                )
            }
        }
    }
}

/// Decodes `%XX` escapes (a path segment or a query value); the result must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` not followed by two hex digits".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decoded text is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("arn%3Aaws%3Aiam%3A%3A1%3Auser%2Fci").as_deref(),
            Ok("arn:aws:iam::1:user/ci")
        );
        assert_eq!(percent_decode("a/b:c").as_deref(), Ok("a/b:c"));
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err());
    }
}
