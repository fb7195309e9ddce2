//! `nhi-drift broker`: the embedded Kafka-protocol broker of `nhi-drift run` (librdkafka's
//! mock cluster) as a process of its own, with the service's topics created, so several
//! `nhi-drift run` instances, `produce` and other Kafka clients can share it on one
//! machine (contract §5, §8). For development and tests only: it keeps records in memory,
//! nothing survives its exit, and each partition holds at most 5 MiB or 100 000 produce
//! batches (older batches are dropped).
//!
//! The mock cluster cannot bind a chosen address: it always listens on a loopback port
//! the kernel picks. `--listen HOST:PORT` therefore binds that address here, relays every
//! connection to the cluster's own port, and makes the cluster advertise `HOST:PORT` in
//! its metadata, so clients that bootstrap there keep talking through the relay.

use std::net::SocketAddr;

use rdkafka::error::KafkaError;
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::service::kafka::{EmbeddedBroker, TopicNames};

/// What the command line asks for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--listen HOST:PORT`: the address to serve and advertise (port 0: any free one).
    pub listen: Option<String>,
    /// `--partitions N`; default `kafka.embedded_partitions`.
    pub partitions: Option<i32>,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("--listen `{0}`: expected HOST:PORT (e.g. 127.0.0.1:9092)")]
    Address(String),
    #[error(
        "--listen `{0}`: the broker tells clients to reconnect to this address, so it must \
         be one they can reach, not an unspecified one (0.0.0.0 or ::); give a host name \
         or an interface address"
    )]
    Unspecified(String),
    #[error("--listen `{listen}`: {source}")]
    Bind {
        listen: String,
        source: std::io::Error,
    },
    #[error("--partitions must be at least 1, not {0}")]
    Partitions(i32),
}

/// Every topic the service reads or writes, `[[sources]]` topics included.
pub fn topics(config: &Config) -> Vec<String> {
    let names = TopicNames::from_config(config);
    let mut all: Vec<String> = names.all().into_iter().map(str::to_owned).collect();
    all.extend(config.sources.iter().map(|s| s.topic.clone()));
    all
}

/// Starts the broker, calls `ready` with its bootstrap address, and serves until
/// `shutdown` completes; the broker and everything in it is gone when this returns.
pub async fn serve(
    config: &Config,
    options: &Options,
    ready: impl FnOnce(&str),
    shutdown: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    let partitions = options
        .partitions
        .unwrap_or(config.kafka.embedded_partitions);
    if partitions < 1 {
        return Err(BrokerError::Partitions(partitions));
    }
    let topics = topics(config);
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let listener = match &options.listen {
        Some(listen) => Some(bind(listen).await?),
        None => None,
    };
    let mut broker = EmbeddedBroker::start(&names, partitions)?;
    let relaying = match listener {
        Some((listener, host, port)) => {
            broker.advertise(&host, port)?;
            Some(tokio::spawn(relay(listener, broker.listening().to_owned())))
        }
        None => None,
    };
    let address = broker.bootstrap_servers();
    tracing::info!(
        bootstrap = %address,
        partitions,
        topics = %names.join(","),
        "Kafka-protocol broker started (in memory only: nothing survives its exit; at most \
         5 MiB or 100 000 produce batches per partition)"
    );
    ready(&address);
    shutdown.await;
    if let Some(relaying) = relaying {
        relaying.abort();
    }
    drop(broker);
    tracing::info!("broker stopped");
    Ok(())
}

/// Binds `listen` (`HOST:PORT`): the listener, the host to advertise and the bound port.
async fn bind(listen: &str) -> Result<(TcpListener, String, u16), BrokerError> {
    let address = || BrokerError::Address(listen.to_owned());
    let (host, port) = listen.rsplit_once(':').ok_or_else(address)?;
    let port: u16 = port.parse().map_err(|_| address())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(address());
    }
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|source| BrokerError::Bind {
            listen: listen.to_owned(),
            source,
        })?;
    let bound: SocketAddr = listener.local_addr().map_err(|source| BrokerError::Bind {
        listen: listen.to_owned(),
        source,
    })?;
    if bound.ip().is_unspecified() {
        return Err(BrokerError::Unspecified(listen.to_owned()));
    }
    Ok((listener, host.to_owned(), bound.port()))
}

/// Forwards every connection accepted on `listener` to `target`, both ways, until either
/// side closes.
async fn relay(listener: TcpListener, target: String) {
    loop {
        let mut inbound = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "accepting a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let target = target.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&target).await {
                Ok(mut outbound) => {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(error) => tracing::warn!(%error, %target, "relaying a connection"),
            }
        });
    }
}
