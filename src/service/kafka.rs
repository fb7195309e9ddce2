//! Kafka clients and topics: client settings from config, the embedded broker, and the
//! mapping from (topic, partition, offset) to the pipeline's streams and total order.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::Config;
use crate::event::TopicRole;

/// `kafka.brokers` value that starts the in-process broker.
pub const EMBEDDED: &str = "embedded";

/// The input topics in order: their index is part of each partition's stream id.
pub const INPUT_ROLES: [TopicRole; 3] = [
    TopicRole::Identity,
    TopicRole::Credential,
    TopicRole::ToolCall,
];

/// Topic names from config.
#[derive(Debug, Clone)]
pub struct TopicNames {
    /// Input topics, in [`INPUT_ROLES`] order.
    pub inputs: [String; 3],
    pub alerts: String,
    pub deadletter: String,
}

impl TopicNames {
    /// The names configured under `[topics]`.
    pub fn from_config(config: &Config) -> Self {
        let t = &config.topics;
        TopicNames {
            inputs: [t.identity.clone(), t.credential.clone(), t.toolcall.clone()],
            alerts: t.alerts.clone(),
            deadletter: t.deadletter.clone(),
        }
    }

    /// Index of an input topic.
    pub fn input_index(&self, topic: &str) -> Option<usize> {
        self.inputs.iter().position(|t| t == topic)
    }

    /// The input topic events of `role` belong on.
    pub fn for_role(&self, role: TopicRole) -> &str {
        let i = INPUT_ROLES.iter().position(|r| *r == role).unwrap_or(0);
        &self.inputs[i]
    }

    /// Every topic the service reads or writes.
    pub fn all(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.inputs.iter().map(String::as_str).collect();
        all.push(&self.alerts);
        all.push(&self.deadletter);
        all
    }
}

/// The stream id of an input partition.
pub fn stream_of(topic: usize, partition: i32) -> u32 {
    ((topic as u32) << 16) | (partition as u32 & 0xffff)
}

/// The input topic index and partition of a stream id (see [`stream_of`]).
pub fn partition_of(stream: u32) -> (usize, i32) {
    ((stream >> 16) as usize, (stream & 0xffff) as i32)
}

/// Client settings shared by consumer and producer: bootstrap servers plus every
/// `kafka.properties` entry as it is.
pub fn client_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers);
    cfg.set("client.id", "nhi-drift");
    for (key, value) in properties {
        cfg.set(key, value);
    }
    cfg
}

/// librdkafka's partitioner for keyed records that Java clients use (murmur2 of the key,
/// modulo the partition count), so records keyed by `identity` land on the partition a
/// Java or Kafka Streams producer would pick (contract §8). librdkafka's own default
/// (`consistent_random`, CRC32) picks other partitions.
pub const JAVA_PARTITIONER: &str = "murmur2_random";

/// Settings of a producer writing keyed records: [`client_config`] with the Java clients'
/// partitioner unless `kafka.properties` names another.
pub fn producer_config(brokers: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut cfg = client_config(brokers, properties);
    if !properties.contains_key("partitioner") {
        cfg.set("partitioner", JAVA_PARTITIONER);
    }
    cfg
}

/// The in-process Kafka-protocol broker (librdkafka's mock cluster) on loopback.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts one broker and creates `topics` with `partitions` partitions each.
    pub fn start(topics: &[&str], partitions: i32) -> rdkafka::error::KafkaResult<Self> {
        let cluster = MockCluster::new(1)?;
        for topic in topics {
            cluster.create_topic(topic, partitions, 1)?;
        }
        Ok(EmbeddedBroker { cluster })
    }

    /// Its bootstrap address (`127.0.0.1:port`).
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// How long clients wait for the broker on shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_partition_as_java_clients_unless_told_otherwise() {
        let mut properties = BTreeMap::new();
        let cfg = producer_config("localhost:9092", &properties);
        assert_eq!(cfg.get("partitioner"), Some(JAVA_PARTITIONER));
        properties.insert("partitioner".to_owned(), "consistent_random".to_owned());
        let cfg = producer_config("localhost:9092", &properties);
        assert_eq!(cfg.get("partitioner"), Some("consistent_random"));
    }
}
