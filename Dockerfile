# Rivulet in one image: `rivulet broker`, `rivulet gen`, `rivulet run`, `rivulet up`, ...
#
#   docker build -t rivulet .                       # builds the binary in the Rust image
#   docker build --target prebuilt -t rivulet .     # uses target/release/rivulet built before
#                                                   # (`--build-arg BINARY=target/debug/rivulet`)
#
# The runtime image is `FROM scratch` with the binary, the libraries it loads, bash (for the
# health check) and a non-root user (deploy/rootfs.sh collects them from Debian slim); /data
# is the volume. Compose runs it with `init: true` so Ctrl-C and `docker stop` reach rivulet
# as SIGTERM.

ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
RUN groupadd --system --gid 10001 rivulet \
    && useradd --system --uid 10001 --gid rivulet --home-dir /data --no-create-home rivulet
COPY deploy/rootfs.sh /usr/local/bin/rootfs.sh

# The binary made outside the image (CI, or a machine where the Rust image cannot be pulled).
# Before the build stage, so that even the classic builder, which builds every stage up to
# the target, never needs the Rust image for it.
FROM base AS prebuilt-rootfs
ARG BINARY=target/release/rivulet
COPY ${BINARY} /usr/local/bin/rivulet
RUN /usr/local/bin/rootfs.sh

FROM scratch AS prebuilt
COPY --from=prebuilt-rootfs /rootfs/ /
USER rivulet
WORKDIR /data
VOLUME ["/data"]
# 9092: Kafka protocol (broker); 8080: dashboard and /api (run, up).
EXPOSE 9092 8080
# Healthy when the dashboard says so on /api/health (run, up), else when the broker's port
# takes a connection: bash's /dev/tcp and builtins only.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=6 \
    CMD ["/bin/bash", "-c", "if (: </dev/tcp/127.0.0.1/8080) 2>/dev/null; then exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET /api/health HTTP/1.0\\r\\n\\r\\n' >&3; while IFS= read -r line <&3; do [[ $line == *'\"status\":\"healthy\"'* ]] && exit 0; done; exit 1; else (: </dev/tcp/127.0.0.1/9092) 2>/dev/null; fi"]
ENTRYPOINT ["/usr/local/bin/rivulet"]
# The dashboard listens beyond loopback, so it needs a token:
# docker run -e RIVULET_DASHBOARD_TOKEN=$(openssl rand -hex 16) -p 127.0.0.1:8080:8080 rivulet
CMD ["up", "--listen", "0.0.0.0:9092", "--dashboard-listen", "0.0.0.0:8080", "--data-dir", "/data"]

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# librdkafka is built from source by rdkafka-sys.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential python3 perl \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p rivulet --bin rivulet \
    && cp target/release/rivulet /usr/local/bin/rivulet \
    && strip /usr/local/bin/rivulet

FROM base AS runtime-rootfs
COPY --from=build /usr/local/bin/rivulet /usr/local/bin/rivulet
RUN /usr/local/bin/rootfs.sh

# The default target: the same image around the binary built above.
FROM scratch AS runtime
COPY --from=runtime-rootfs /rootfs/ /
USER rivulet
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9092 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=6 \
    CMD ["/bin/bash", "-c", "if (: </dev/tcp/127.0.0.1/8080) 2>/dev/null; then exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET /api/health HTTP/1.0\\r\\n\\r\\n' >&3; while IFS= read -r line <&3; do [[ $line == *'\"status\":\"healthy\"'* ]] && exit 0; done; exit 1; else (: </dev/tcp/127.0.0.1/9092) 2>/dev/null; fi"]
ENTRYPOINT ["/usr/local/bin/rivulet"]
# The dashboard listens beyond loopback, so it needs a token:
# docker run -e RIVULET_DASHBOARD_TOKEN=$(openssl rand -hex 16) -p 127.0.0.1:8080:8080 rivulet
CMD ["up", "--listen", "0.0.0.0:9092", "--dashboard-listen", "0.0.0.0:8080", "--data-dir", "/data"]
