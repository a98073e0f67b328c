# One image per mode holding the ten service binaries (and the load driver and
# the race page, `showdown`):
#
#   docker build --build-arg MODE=sync  -t sync-vs-async-lab:sync  .
#   docker build --build-arg MODE=async -t sync-vs-async-lab:async .
#
# A service is chosen by its binary, e.g. `/usr/local/bin/user-service`; the
# same binary with `--healthcheck` is the container's health check.
#
# Dependency caching uses cargo-chef rather than BuildKit cache mounts: the
# compiled dependencies are an ordinary image layer, so the cache also works
# with the classic builder (Debian's docker-compose v1 builds without
# BuildKit, where `RUN --mount` is an error) and can be shared through a
# registry (`--cache-from`); cache mounts need BuildKit and stay on one
# machine. That layer is rebuilt only when a manifest or Cargo.lock changes.

FROM rust:1.95.0-slim-bookworm AS chef
# Pinned so that a new cargo-chef release never changes a build silently.
RUN cargo install cargo-chef --version 0.1.78 --locked \
    && rm -rf "${CARGO_HOME}/registry"
WORKDIR /src

# The recipe: every manifest and Cargo.lock, nothing else, so the next
# stage's dependency layer stays cached while only our code changes.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# sync: blocking HTTP between services; async: RabbitMQ (the cargo feature).
ARG MODE=sync
COPY --from=planner /src/recipe.json recipe.json
# The whole workspace once, exactly as the repository builds a mode; `set --`
# carries the feature flag for async without an unquoted variable.
RUN case "${MODE}" in \
        sync) set -- ;; \
        async) set -- --features lab-tests/async ;; \
        *) echo "MODE must be sync or async, not '${MODE}'" >&2; exit 1 ;; \
    esac \
    && cargo chef cook --release --locked --workspace --bins --recipe-path recipe.json "$@"
COPY . .
RUN case "${MODE}" in \
        sync) set -- ;; \
        *) set -- --features lab-tests/async ;; \
    esac \
    && cargo build --release --locked --workspace --bins "$@" \
    && mkdir /out \
    && find target/release -maxdepth 1 -type f -perm -u+x \
        \( -name '*-service' -o -name lab-load -o -name showdown \) -exec cp {} /out/ \; \
    && test "$(find /out -name '*-service' | wc -l)" -eq 10

# glibc and libgcc only: no shell, no package manager, no curl, no OpenSSL
# (the binaries speak plain HTTP and AMQP inside the lab).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG MODE=sync
LABEL org.opencontainers.image.title="sync-vs-async-lab" \
      org.opencontainers.image.description="The ten lab services, ${MODE} mode" \
      lab.mode="${MODE}"
COPY --from=builder /out/ /usr/local/bin/
# A service in a container must listen beyond its own loopback.
ENV BIND_HOST=0.0.0.0
# The image's `nonroot` user, by number so that a runtime can tell it is not root.
USER 65532:65532
