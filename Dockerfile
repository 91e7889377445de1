# The wscluster image: `scripts/image.sh` builds it (docker or podman); docs/deployment.md.
#
# Builder: Debian 12 (bookworm) with the Rust version Cargo.toml asks for (rust-version), so the
# binary is linked against bookworm's glibc 2.36, the same glibc the runtime base carries.
#
# Runtime: gcr.io/distroless/cc-debian12, Debian 12's glibc plus libgcc_s, and nothing else: no
# shell, no package manager. The binary links only libraries of that base (checked by
# tests/deploy.rs against `ldd` of the built binary). distroless/static lacks libgcc_s (which Rust
# needs for unwinding), debian:bookworm-slim would add a shell and ~75 MB the node does not use.
# base-libraries: linux-vdso.so.1 libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libutil.so.1 ld-linux-x86-64.so.2 ld-linux-aarch64.so.1 libgcc_s.so.1 libstdc++.so.6 libgomp.so.1

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# The commit `wscluster version` reports (scripts/image.sh passes `git rev-parse --short HEAD`).
ARG WSCLUSTER_COMMIT=""
ENV WSCLUSTER_COMMIT=${WSCLUSTER_COMMIT}
COPY . .
RUN cargo build --release --locked --bin wscluster \
    && install -D -m 0755 target/release/wscluster /out/wscluster

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/wscluster /usr/local/bin/wscluster
# distroless' "nonroot" user (uid and gid 65532); deploy/k8s runs the pods as the same user.
USER 65532:65532
# server.listen (WebSocket, HTTP operations routes) and cluster.mesh.port (mesh links).
EXPOSE 8080 5410
# No shell or curl in the image: the binary asks its own GET /health (server.listen's port).
HEALTHCHECK --interval=10s --timeout=6s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/wscluster", "health", "--url", "http://127.0.0.1:8080/health"]
# SIGTERM drains (server.shutdown_timeout_ms); give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wscluster"]
