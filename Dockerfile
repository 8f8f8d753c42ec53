# syntax=docker/dockerfile:1
# Nexus Hub: one image with the three binaries.
#   nexusd                     the rpc-server (:2026)
#   nexus-mcp                  the MCP frontend (:8081), without any database code
#                              (the same server as `nexus mcp serve`)
#   nexus                      the operator CLI (`nexus hub …`)
#
#   docker build -t nexus-hub .
#
# Used by docker-compose.hub.yml and the Helm chart in deploy/helm/nexus-hub.

############################ builder ############################
# Matches the channel pinned in rust-toolchain.toml.
FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependency cache: the manifests and lock file only, with stub sources, so this
#    layer (every crates.io dependency, compiled) is reused until a manifest or
#    Cargo.lock changes. Every workspace member must be listed here.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY wire/Cargo.toml wire/
COPY authz/Cargo.toml authz/
COPY serve/Cargo.toml serve/
COPY providers/Cargo.toml providers/
COPY blobs/Cargo.toml blobs/
COPY bus/Cargo.toml bus/
COPY cluster/Cargo.toml cluster/
COPY text/Cargo.toml text/
COPY oauth/Cargo.toml oauth/
COPY search/Cargo.toml search/
COPY rpc-server/Cargo.toml rpc-server/
COPY mcp-frontend/Cargo.toml mcp-frontend/
COPY hub-cli/Cargo.toml hub-cli/
COPY bench/Cargo.toml bench/
RUN set -eux; \
    for crate in wire authz serve providers blobs bus cluster text oauth search rpc-server mcp-frontend hub-cli bench; do \
        mkdir -p "$crate/src"; \
        echo '// dependency-cache stub' > "$crate/src/lib.rs"; \
    done; \
    echo 'fn main() {}' > rpc-server/src/main.rs; \
    echo 'fn main() {}' > mcp-frontend/src/main.rs; \
    echo 'fn main() {}' > hub-cli/src/main.rs; \
    cargo build --release --locked --bin nexus --bin nexusd; \
    cargo build --release --locked -p mcp-frontend --bin nexus-mcp; \
    rm -rf wire authz serve providers blobs bus cluster text oauth search rpc-server mcp-frontend hub-cli bench

# 2. The real sources. Migrations are embedded at compile time (sqlx::migrate!).
COPY wire wire
COPY authz authz
COPY serve serve
COPY providers providers
COPY blobs blobs
COPY bus bus
COPY cluster cluster
COPY text text
COPY oauth oauth
COPY search search
COPY rpc-server rpc-server
COPY mcp-frontend mcp-frontend
COPY hub-cli hub-cli
COPY bench bench
COPY migrations migrations
# Newer mtimes than the stubs', so cargo rebuilds the workspace crates (only those).
# nexus-mcp is built on its own so that it gets the features of its own dependencies
# only (built with the others it would also carry what the CLI enables in them).
# The release profile keeps line tables (for profiling); the image drops them to stay
# small. Symbols stay, and panic messages keep their file:line.
RUN find wire authz serve providers blobs bus cluster text oauth search rpc-server mcp-frontend hub-cli bench -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin nexus --bin nexusd \
    && cargo build --release --locked -p mcp-frontend --bin nexus-mcp \
    && strip --strip-debug target/release/nexus target/release/nexusd target/release/nexus-mcp \
    && ./target/release/nexus --version \
    && ./target/release/nexusd --version \
    && ./target/release/nexus-mcp --version

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# ca-certificates for TLS to Postgres/Redis; curl only for health checks
# (docker-compose.hub.yml probes /healthz/ready and /health with it).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user: uid/gid 10001, no login shell, owns only /data.
RUN groupadd --system --gid 10001 nexus \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data \
        --no-create-home --shell /usr/sbin/nologin nexus \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0700 /data

COPY --from=builder /src/target/release/nexusd /usr/local/bin/nexusd
COPY --from=builder /src/target/release/nexus-mcp /usr/local/bin/nexus-mcp
COPY --from=builder /src/target/release/nexus /usr/local/bin/nexus

ENV NEXUS_DATA_DIR=/data \
    NEXUS_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
EXPOSE 2026 8081

# No HEALTHCHECK here: the same image runs the rpc-server (nexusd, GET /healthz/ready on
# :2026) and the frontend (nexus-mcp, GET /health on :8081); docker-compose.hub.yml and
# the Helm chart give each its own check.
STOPSIGNAL SIGTERM
CMD ["nexusd", "--host", "0.0.0.0", "--port", "2026"]
