//! Kafka clients and topics: client settings from config, the embedded broker, and the
//! mapping from (topic, partition, offset) to the pipeline's streams and total order.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
#[cfg(doc)]
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};

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
    /// `<group_id>.state`: each task's state (contract §8, `service::state_topic`).
    pub state: String,
    /// `<group_id>.progress`: each task's largest event time, read by every instance
    /// (`service::tasks`, one event time).
    pub progress: String,
}

impl TopicNames {
    /// The names configured under `[topics]`.
    pub fn from_config(config: &Config) -> Self {
        let t = &config.topics;
        TopicNames {
            inputs: [t.identity.clone(), t.credential.clone(), t.toolcall.clone()],
            alerts: t.alerts.clone(),
            deadletter: t.deadletter.clone(),
            state: format!("{}.state", config.kafka.group_id),
            progress: format!("{}.progress", config.kafka.group_id),
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
        all.push(&self.state);
        all.push(&self.progress);
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

/// The in-process Kafka-protocol broker (librdkafka's mock cluster), listening on a
/// loopback port of its own choosing. It keeps records in memory only, at most 5 MiB or
/// 100 000 produce batches per partition (older batches are dropped).
pub struct EmbeddedBroker {
    /// The client owning the cluster: created with `test.mock.num.brokers`, so the cluster
    /// lives (and is destroyed) with it and its native handle can be reached, which
    /// [`MockCluster::new`] keeps private.
    owner: BaseProducer,
    /// Where the cluster itself listens (`127.0.0.1:port`), whatever it advertises.
    listening: String,
    /// The address it gives clients (librdkafka computes its own bootstrap list once, at
    /// creation, so an advertised address is kept here).
    advertised: String,
}

impl EmbeddedBroker {
    /// Starts one broker and creates `topics` with `partitions` partitions each.
    pub fn start(topics: &[&str], partitions: i32) -> KafkaResult<Self> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .create()?;
        let listening = {
            let cluster = owner
                .client()
                .mock_cluster()
                .ok_or(KafkaError::MockCluster(RDKafkaErrorCode::Fail))?;
            for topic in topics {
                cluster.create_topic(topic, partitions, 1)?;
            }
            cluster.bootstrap_servers()
        };
        Ok(EmbeddedBroker {
            owner,
            advertised: listening.clone(),
            listening,
        })
    }

    /// Its bootstrap address as clients are told it: where it listens, or what
    /// [`EmbeddedBroker::advertise`] set.
    pub fn bootstrap_servers(&self) -> String {
        self.advertised.clone()
    }

    /// Where the broker itself accepts connections (`127.0.0.1:port`).
    pub fn listening(&self) -> &str {
        &self.listening
    }

    /// Makes the broker name `host:port` as its address in metadata and coordinator
    /// answers, so clients reconnect there (a relay listening on it forwards to
    /// [`EmbeddedBroker::listening`]). The mock cluster cannot bind a chosen address
    /// itself: it always listens on a loopback port the kernel picks.
    pub fn advertise(&mut self, host: &str, port: u16) -> KafkaResult<()> {
        let c_host = CString::new(host)
            .map_err(|_| KafkaError::MockCluster(RDKafkaErrorCode::InvalidArgument))?;
        // SAFETY: the client pointer is valid while `owner` lives; the cluster it returns
        // (checked for null) is owned by that client and destroyed only with it; the host
        // is a NUL-terminated string the call copies; broker 1 is the only broker
        // (`test.mock.num.brokers = 1`), and the call takes the cluster's lock.
        unsafe {
            let cluster =
                rdkafka::bindings::rd_kafka_handle_mock_cluster(self.owner.client().native_ptr());
            if cluster.is_null() {
                return Err(KafkaError::MockCluster(RDKafkaErrorCode::Fail));
            }
            rdkafka::bindings::rd_kafka_mock_broker_set_host_port(
                cluster,
                1,
                c_host.as_ptr(),
                i32::from(port),
            );
        }
        self.advertised = if host.as_bytes().contains(&b':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(())
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
