# Rivulet in one image: `rivulet broker`, `rivulet gen`, `rivulet run`, `rivulet up`, ...
#
#   docker build -t rivulet .                       # builds the binary in the Rust image
#   docker build --target prebuilt -t rivulet .     # uses target/release/rivulet built before
#                                                   # (`--build-arg BINARY=target/debug/rivulet`)
#
# The runtime stage is Debian slim with the binary, a non-root user and /data as the volume;
# compose runs it with `init: true` so Ctrl-C and `docker stop` reach rivulet as SIGTERM.

ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
RUN groupadd --system --gid 10001 rivulet \
    && useradd --system --uid 10001 --gid rivulet --home-dir /data --no-create-home rivulet \
    && mkdir -p /data \
    && chown rivulet:rivulet /data
WORKDIR /data
VOLUME ["/data"]
# 9092: Kafka protocol (broker); 8080: dashboard and /api (run, up).
EXPOSE 9092 8080
USER rivulet
# Healthy when the dashboard says so on /api/health (run, up), else when the broker's port
# takes a connection; bash's /dev/tcp, so the image needs no curl.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=6 \
    CMD ["/bin/bash", "-c", "if (: </dev/tcp/127.0.0.1/8080) 2>/dev/null; then exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET /api/health HTTP/1.0\\r\\n\\r\\n' >&3; grep -q '\"status\":\"healthy\"' <&3; else (: </dev/tcp/127.0.0.1/9092) 2>/dev/null; fi"]
ENTRYPOINT ["/usr/local/bin/rivulet"]
CMD ["up", "--listen", "0.0.0.0:9092", "--dashboard-listen", "0.0.0.0:8080", "--data-dir", "/data"]

# The binary made outside the image (CI, or a machine where the Rust image cannot be pulled).
# Before the build stage, so that even the classic builder, which builds every stage up to
# the target, never needs the Rust image for it.
FROM base AS prebuilt
ARG BINARY=target/release/rivulet
COPY --chown=root:root ${BINARY} /usr/local/bin/rivulet

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys (cmake-free: its own configure script).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential python3 perl \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p rivulet --bin rivulet \
    && cp target/release/rivulet /usr/local/bin/rivulet \
    && strip /usr/local/bin/rivulet

FROM base AS runtime
COPY --from=build /usr/local/bin/rivulet /usr/local/bin/rivulet
