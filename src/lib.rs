//! nhi-drift: streaming detection of non-human identity drift.
//!
//! # Layout
//! One module per stage of the pipeline, in the order events flow:
//!
//! - [`adapt`]: adapters of real-world sources (contract §7) — framing once
//!   (`adapt::framing`), one pure mapping per source (`adapt::cloudtrail`,
//!   `adapt::entra`, `adapt::inventory`, …), classification as config
//!   (`adapt::classify`, `[adapt]`), and running them with ids, decoder validation,
//!   counts and the contract's order (`adapt::run`, `adapt::input`).
//! - [`event`]: the event model of the contract, decoding and validation, dead letters.
//! - [`clock`]: event time — watermark, tumbling windows, lateness.
//! - [`inventory`]: per-identity state (credentials, grants, baselines, owners, vendors),
//!   applied as a merge by event time, forgotten once ended (`inventory::forget`), its
//!   snapshots as Arrow rows, and activity rows enriched with the state at event time;
//!   posture counts for the gauges kept as it changes (`inventory::posture`); one
//!   identity's view for the API (`inventory::view`).
//! - [`engine`]: rules as data — `queries/*.sql` with a metadata header, planned once with
//!   DataFusion over swappable Arrow tables, re-executed per evaluation batch; each state
//!   rule's footprint of activity timestamps read from its plan (`engine::footprint`).
//! - [`alert`]: the alert lifecycle (open / resolve / dedup, deterministic ids) and the
//!   JSON and OCSF formats.
//! - [`pipeline`]: the shared pipeline tying the stages together, and its checkpointable
//!   state; `replay` and `service` only add edges. `pipeline::deferral` is incremental
//!   evaluation: uses that can only delay a finding skip re-judging their identity.
//! - [`replay`]: the file source and sinks of `nhi-drift replay`.
//! - [`service`]: `nhi-drift run` — Kafka consumer thread, producer, checkpoints,
//!   embedded broker, `/healthz` `/readyz` `/metrics`, the adapted `[[sources]]`
//!   topics (`service::adapted`), the input topics' partition-count check
//!   (`service::partitions`), the tasks — one pipeline per input partition number,
//!   with the directory of cross-identity events every task is given (`service::tasks`) —
//!   each task's state and progress on the group's topics (`service::state_topic`),
//!   and the `/v1` API (`service::api`) with its bearer-token access off loopback
//!   (`service::access`).
//! - [`ask`]: asking the state (contract §9) — the identity view (`ask::identity`, built
//!   by `inventory::view`), the findings log (`ask::findings`), request-time decisions by
//!   the window rules' SQL over a one-row activity table (`ask::decide`), the questions
//!   the pipeline task answers (`ask::answer`), and `nhi-drift inspect` (`ask::inspect`).
//! - [`produce`]: `nhi-drift produce` — fixtures to their topics, partitioned as the
//!   Java clients partition.
//! - [`broker`]: `nhi-drift broker` — the embedded broker as a standalone development
//!   process, with a relay for `--listen`.
//! - [`fixtures`]: rule fixtures (`tests/fixtures/rules/<RULE-ID>/<case>/`) for
//!   `rules test` and the test suite.
//! - [`generate`]: the deterministic synthetic event stream of `nhi-drift generate`.
//! - [`metrics`]: the Prometheus metrics, names and help in one place.
//! - [`config`]: configuration loading.
//! - [`throttle`]: rate-limited logging of repeating conditions.
//! - `hashing`: the hash maps of the engine's keys (foldhash).
//! - `pairs`: serde helper writing maps with non-string keys as `[key, value]` lists.
//! - [`cli`]: the command line; `main.rs` only calls [`cli::main`].
//!
//! Memory comes from mimalloc, for every binary linking the crate (the service, its
//! tests and benchmarks alike): events are decoded on one thread and dropped on
//! another, and the pipeline allocates many small strings and buffers, a load glibc's
//! allocator serves markedly slower (`cargo bench --bench replay`).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod adapt;
pub mod alert;
pub mod ask;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod event;
pub mod fixtures;
pub mod generate;
mod hashing;
pub mod inventory;
pub mod metrics;
mod pairs;
pub mod pipeline;
pub mod produce;
pub mod replay;
pub mod service;
pub mod throttle;
