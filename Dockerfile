# pushwire in a container: a builder stage that compiles the release binary, and a
# small final stage that holds only that binary (the pages, pushwire.js and the
# other web/ assets are built into it) on Debian's slim image, run as a non-root
# user. docs/operations.md ("Container image") says how to build and run it, what
# was built where, and its size.
#
#   podman build --format docker --build-arg PUSHWIRE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) -t pushwire .
#   podman run --rm -p 8888:8888 pushwire
#
# Settings: PUSHWIRE_* variables (`-e PUSHWIRE_BROKER=redis://redis:6379/0`), flags
# after the image name (`pushwire serve --history-size 500`), or a settings file
# mounted and named with PUSHWIRE_CONFIG. scripts/packaging parses every
# instruction of this file and checks the facts above (a step of ./scripts/test);
# scripts/image-test builds it with podman and starts it (see docs/operations.md).
# With podman, --format docker keeps the HEALTHCHECK (OCI images have none).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# The context has no .git (.dockerignore): build.rs takes the commit from here.
ARG PUSHWIRE_GIT_COMMIT=unknown
ENV PUSHWIRE_GIT_COMMIT=${PUSHWIRE_GIT_COMMIT}
COPY . .
RUN cargo build --release --locked --bin pushwire \
 && strip target/release/pushwire \
 && ./target/release/pushwire --version

FROM debian:${DEBIAN_RELEASE}-slim
COPY --from=builder /src/target/release/pushwire /usr/local/bin/pushwire
# Any user but root; no entry in /etc/passwd is needed.
USER 10001:10001
# Every interface (the container's own), the default port.
ENV PUSHWIRE_BIND=0.0.0.0 \
    PUSHWIRE_PORT=8888
EXPOSE 8888
# SIGTERM starts the graceful stop (drain, then exit within the grace period).
STOPSIGNAL SIGTERM
# No curl in the slim image: bash's /dev/tcp asks /healthz over plain HTTP (with
# --tls-cert, use the orchestrator's own https check instead).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PUSHWIRE_PORT:-8888} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/pushwire"]
CMD ["serve"]
