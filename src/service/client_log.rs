//! What the Kafka clients say: librdkafka's own log lines and its client errors, passed
//! to `tracing` rate-limited (one line per kind per period, with a count of the repeats),
//! and reported to [`Health`] so `/readyz` names the broker problem. librdkafka retries a
//! connection every few hundred milliseconds; unthrottled, an outage of an hour would write
//! about a hundred thousand lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::health::Health;
use crate::throttle::Throttle;

/// At most one line per kind of client message in this period.
pub const CLIENT_LOG_PERIOD: Duration = Duration::from_secs(30);

/// The client context shared by the consumer and the producer.
pub struct ClientLog {
    health: Arc<Health>,
    throttles: Mutex<HashMap<String, Throttle>>,
}

impl ClientLog {
    /// Client messages reported to `health`.
    pub fn new(health: Arc<Health>) -> Self {
        ClientLog {
            health,
            throttles: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(repeats since the last line)` when a message of `kind` is to be logged now.
    /// Kinds are bounded: librdkafka facilities and error codes.
    pub fn allow(&self, kind: &str) -> Option<u64> {
        let mut throttles = self.throttles.lock().ok()?;
        throttles
            .entry(kind.to_owned())
            .or_insert_with(|| Throttle::new(CLIENT_LOG_PERIOD))
            .hit(Instant::now())
    }
}

/// Reports a client problem to `health`: `what` describes it (it includes `error`).
pub fn report(health: &Health, error: &KafkaError, what: &str) {
    if unreachable(error) {
        health.broker_unreachable(what);
    } else {
        health.broker_error(what);
    }
}

/// Whether `error` says no broker can be reached (as opposed to a broker that answered
/// with an error).
fn unreachable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
        )
    )
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let serious = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        );
        if !serious {
            tracing::debug!(target: "librdkafka", facility = fac, "{message}");
        } else if let Some(repeats) = self.allow(&format!("log:{fac}")) {
            tracing::warn!(target: "librdkafka", facility = fac, repeats, "{message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report(&self.health, &error, &format!("{error}: {reason}"));
        let kind = format!("error:{:?}", error.rdkafka_error_code());
        if let Some(repeats) = self.allow(&kind) {
            tracing::warn!(%error, reason, repeats, "kafka client error");
        }
    }

    fn stats(&self, _: rdkafka::Statistics) {}
}
