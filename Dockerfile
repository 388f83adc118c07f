# syntax=docker/dockerfile:1
#
# crypto-operator container image.
#
#   docker build -t <registry>/crypto-operator:0.1.0 .
#
# Build stage: the release binary, with the dependencies compiled in a layer
# of their own (rebuilt only when Cargo.toml, Cargo.lock, build.rs, proto/,
# benches/ or tests/fake-kube/ change). Runtime stage: distroless "cc" (glibc, libgcc, CA
# certificates, a nonroot user) plus the one binary; no shell, no package
# manager, runs as uid 65532.
#
# No Docker engine runs on the project's development or CI machines, so this
# file is never built there. Every build step is therefore a plain command
# that runs the same outside Docker: the one compile command is
# `cargo build --release --locked --bin crypto-operator`, the same cargo
# build of the same crate and lockfile that the test suite performs
# (`cargo test --locked` builds the crypto-operator binary and tests/it/cli.rs
# runs it), and tests/helm/test_image.py checks this file statically (stages,
# that command, USER, EXPOSE, what the runtime stage copies).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# 1. Dependencies: the manifests, the build script and what it compiles
#    (proto/), the bench targets Cargo.toml names, the workspace's other
#    member (the tests' fake API server: cargo reads its manifest; it is
#    not built), and a stub main.rs.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY benches ./benches
COPY tests/fake-kube ./tests/fake-kube
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs
RUN cargo build --release --locked --bin crypto-operator

# 2. The operator itself (touch: newer than the stub's build).
COPY src ./src
RUN touch src/main.rs src/lib.rs
RUN cargo build --release --locked --bin crypto-operator

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /src/target/release/crypto-operator /usr/local/bin/crypto-operator
USER 65532:65532
# gRPC (clients, commands, health, reflection) and HTTP (/metrics, /healthz, /readyz).
EXPOSE 50051 8080
ENTRYPOINT ["/usr/local/bin/crypto-operator"]
CMD ["serve"]
