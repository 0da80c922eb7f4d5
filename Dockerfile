# syntax=docker/dockerfile:1
#
# Pipewright's container image: the binary and git, run as an unprivileged user, with the
# data directory in a volume.
#
#   docker build -t pipewright .
#   docker run -d --name pipewright -p 8929:8929 -v pipewright:/var/lib/pipewright \
#     -e PIPEWRIGHT_EXTERNAL_URL=https://ci.example.com -e PIPEWRIGHT_ROOT_PASSWORD=… pipewright
#   docker exec pipewright pipewright backup --to /var/lib/pipewright/backup-$(date +%F).zip
#
# A test (crates/pipewright/tests/cli/deploy.rs) starts the binary with this file's ENTRYPOINT,
# CMD and ENV, and runs its HEALTHCHECK, so what the image runs is what is tested.

FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pipewright \
 && install -m 0755 target/release/pipewright /usr/local/bin/pipewright

FROM debian:bookworm-slim
# git serves the repositories and fetches jobs' sources; the CA certificates let webhooks and
# remote runners reach https URLs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# /var/lib/pipewright holds the data directory (0700) and, next to it, the embedded runner's
# builds directory data-builds.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pipewright \
        --shell /usr/sbin/nologin pipewright \
 && install -d -o pipewright -g pipewright -m 0711 /var/lib/pipewright \
 && install -d -o pipewright -g pipewright -m 0700 /var/lib/pipewright/data
COPY --from=build /usr/local/bin/pipewright /usr/local/bin/pipewright
ENV PIPEWRIGHT_DATA_DIR=/var/lib/pipewright/data \
    PIPEWRIGHT_LISTEN=0.0.0.0:8929 \
    PIPEWRIGHT_LOG_FORMAT=json
VOLUME ["/var/lib/pipewright"]
EXPOSE 8929
USER pipewright:pipewright
WORKDIR /var/lib/pipewright
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["pipewright", "health-check"]
ENTRYPOINT ["pipewright"]
CMD ["serve"]
