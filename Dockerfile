# syntax=docker/dockerfile:1
#
# The images of Convene's three services, from one file: pick one with --target.
#
#   docker build --target ac-service -t convene/ac-service:dev .
#   docker build --target gc-service -t convene/gc-service:dev .
#   docker build --target mc-service -t convene/mc-service:dev .
#
# One builder compiles the three binaries in release mode; the three targets share it, so the
# workspace compiles once however many images are built. The dependencies are compiled in a
# layer of their own (cargo-chef), which a change to Convene's code does not invalidate. The
# migrations (sqlx::migrate!), the Lua scripts and the protobuf files are compiled into the
# binaries; the protobuf compiler is protox, in Rust, so no system protoc is needed.
#
# The runtime is distroless (glibc, CA certificates, no shell, no package manager), as the
# non-root user 65532. The builder is Debian bookworm like the runtime, so the binaries need no
# newer glibc than the runtime has.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /build

# The recipe: the manifests and the lock file, nothing that changes with the code.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ENV CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p ac-service -p gc-service -p mc-service \
 && mkdir -p /out \
 && cp target/release/ac-service target/release/gc-service target/release/mc-service /out/

# The meeting page GC serves (web/, docs/web.md): plain TypeScript compiled by tsc.
FROM docker.io/library/node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.vendor="Convene" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
WORKDIR /

# Auth controller: HTTP 8082, ops 9082 (health and metrics; what HEALTHCHECK probes). Also
# `ac-service migrate` and `ac-service seed --file PATH`.
FROM runtime AS ac-service
LABEL org.opencontainers.image.title="ac-service" \
      org.opencontainers.image.description="Convene auth controller"
COPY --from=builder /out/ac-service /usr/local/bin/ac-service
EXPOSE 8082 9082
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/ac-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ac-service"]
CMD ["serve"]

# Global controller: HTTP 8080, gRPC 50051, ops 9080 (health and metrics; what HEALTHCHECK
# probes). Also `gc-service migrate`.
FROM runtime AS gc-service
LABEL org.opencontainers.image.title="gc-service" \
      org.opencontainers.image.description="Convene global controller"
COPY --from=builder /out/gc-service /usr/local/bin/gc-service
COPY --from=web /web/dist /usr/share/convene/web
ENV GC_WEB_DIR=/usr/share/convene/web
EXPOSE 8080 50051 9080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/gc-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gc-service"]
CMD ["serve"]

# Meeting controller: HTTP 8081 (signaling WebSocket, health, metrics), gRPC 50052, ops 9081
# (health and metrics; what HEALTHCHECK probes).
FROM runtime AS mc-service
LABEL org.opencontainers.image.title="mc-service" \
      org.opencontainers.image.description="Convene meeting controller"
COPY --from=builder /out/mc-service /usr/local/bin/mc-service
EXPOSE 8081 50052 9081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/mc-service", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mc-service"]
