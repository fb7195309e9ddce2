//! Answering questions about the state where the pipeline lives (contract §9).
//!
//! The pipeline has one owner, its task; HTTP handlers send it a [`Query`] with a reply
//! channel and it answers between two batches of records, from its own inventory and
//! findings, pausing only for as long as the answer takes: a decision's tables take
//! tens of microseconds (its SQL runs on the handler's side, [`super::decide::Decider`]);
//! an identity view well under a millisecond on a state of 200 000 credentials (its
//! ended credentials are found by a scan; `cargo bench --bench decide`).

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::decide::{DecideRequest, Prepared, Refusal, prepare};
use super::findings::{Filter, FindingsLog};
use super::identity::IdentityView;
use super::placement::Placement;
use crate::alert::Alert;
use crate::event::Decoder;
use crate::event::time::format_rfc3339;
use crate::pipeline::Pipeline;

/// A question for the pipeline task.
#[derive(Debug)]
pub enum Query {
    /// `GET /v1/identities/{identity}`.
    Identity {
        identity: String,
        reply: oneshot::Sender<Result<IdentityView, Refusal>>,
    },
    /// `GET /v1/findings`: a page after `cursor`.
    Findings {
        filter: Filter,
        cursor: Option<u64>,
        limit: usize,
        reply: oneshot::Sender<Value>,
    },
    /// `POST /v1/decide`: the request's tables, decided by the caller.
    Prepare {
        request: DecideRequest,
        reply: oneshot::Sender<Result<Prepared, Refusal>>,
    },
}

/// What the pipeline task keeps to answer: the findings log, and what it reads.
#[derive(Debug)]
pub struct Answerer {
    pub findings: FindingsLog,
    /// The input partitions this instance reads (the service keeps it up to date).
    pub placement: Placement,
    decoder: Decoder,
}

impl Answerer {
    /// An answerer keeping `findings_kept` resolved and window findings; `decoder`
    /// validates decision requests as input events are validated.
    pub fn new(findings_kept: usize, decoder: Decoder) -> Self {
        Answerer {
            findings: FindingsLog::new(findings_kept),
            placement: Placement::default(),
            decoder,
        }
    }

    /// Lists the open state findings `pipeline` holds (after a restore).
    pub fn seed(&mut self, pipeline: &Pipeline) {
        self.findings.seed(&pipeline.open_state_alerts(None));
    }

    /// Records alerts the pipeline emitted.
    pub fn record(&mut self, pipeline: &Pipeline, alerts: &[Alert]) {
        self.findings.record(pipeline.rules(), alerts);
    }

    /// The identity view from the pipeline that holds the identity, or why there is none.
    pub fn identity(
        &self,
        pipelines: &[&Pipeline],
        identity: &str,
    ) -> Result<IdentityView, Refusal> {
        let pipeline = self.holder(pipelines, identity)?;
        let as_of = pipeline.as_of().ok_or(Refusal::NoState)?;
        let inventory = pipeline
            .inventory()
            .view(identity, as_of)
            .ok_or_else(|| Refusal::UnknownIdentity(self.unknown(identity)))?;
        Ok(IdentityView {
            as_of: format_rfc3339(as_of),
            inventory,
            open_findings: self.findings.open_of(identity),
        })
    }

    /// Of this instance's pipelines (one per task), the one holding `identity`; none has
    /// state yet, or none holds it, is said as such.
    fn holder<'a>(
        &self,
        pipelines: &[&'a Pipeline],
        identity: &str,
    ) -> Result<&'a Pipeline, Refusal> {
        if pipelines.iter().all(|p| p.as_of().is_none()) {
            return Err(Refusal::NoState);
        }
        pipelines
            .iter()
            .find(|p| p.inventory().identity(identity).is_some())
            .copied()
            .ok_or_else(|| Refusal::UnknownIdentity(self.unknown(identity)))
    }

    /// A page of findings as the API's body.
    pub fn findings(
        &self,
        pipelines: &[&Pipeline],
        filter: &Filter,
        cursor: Option<u64>,
        limit: usize,
    ) -> Value {
        let page = self.findings.page(filter, cursor, limit);
        json!({
            "as_of": pipelines.iter().filter_map(|p| p.as_of()).max().map(format_rfc3339),
            "total": page.total,
            "next_cursor": page.next_cursor,
            "findings": page.findings,
        })
    }

    /// Answers one query (a reply nobody waits for any more is dropped).
    pub fn answer(&self, pipelines: &[&Pipeline], query: Query) {
        match query {
            Query::Identity { identity, reply } => {
                let _ = reply.send(self.identity(pipelines, &identity));
            }
            Query::Findings {
                filter,
                cursor,
                limit,
                reply,
            } => {
                let _ = reply.send(self.findings(pipelines, &filter, cursor, limit));
            }
            Query::Prepare { request, reply } => {
                let prepared = match self.holder(pipelines, &request.identity) {
                    Ok(pipeline) => prepare(pipeline, &request, &self.decoder),
                    // A bad request is refused as such, whoever holds the identity.
                    Err(refusal) => match request.to_event(&self.decoder, 0) {
                        Err(error) => Err(Refusal::Invalid(error)),
                        Ok(_) => Err(refusal),
                    },
                }
                .map_err(|r| match r {
                    Refusal::UnknownIdentity(_) => {
                        Refusal::UnknownIdentity(self.unknown(&request.identity))
                    }
                    other => other,
                });
                let _ = reply.send(prepared);
            }
        }
    }
}

impl Answerer {
    /// The 404 text: an unknown identity is never an allow, and with several instances
    /// the identity may be another instance's (contract §8).
    fn unknown(&self, identity: &str) -> String {
        format!(
            "identity `{identity}` is not in this instance's state: {}",
            self.placement.explain(identity)
        )
    }
}
