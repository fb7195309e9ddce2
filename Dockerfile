# The nhi-drift service: release build of the binary (with librdkafka built from its
# bundled sources), on a slim runtime image.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev perl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY queries queries
COPY config config
COPY benches benches
RUN cargo build --release --locked --bin nhi-drift

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/nhi-drift --create-home nhi-drift \
    && mkdir /var/lib/nhi-drift/state && chown nhi-drift /var/lib/nhi-drift/state
COPY --from=build /src/target/release/nhi-drift /usr/local/bin/nhi-drift
COPY examples /usr/share/nhi-drift/examples
USER nhi-drift
WORKDIR /var/lib/nhi-drift
ENV NHI_DRIFT_HTTP__LISTEN=0.0.0.0:9898 \
    NHI_DRIFT_CHECKPOINT__DIR=/var/lib/nhi-drift/state
EXPOSE 9898
ENTRYPOINT ["nhi-drift"]
CMD ["run"]
