# syntax=docker/dockerfile:1
# The operator image: built with the Rust toolchain, shipped on distroless (glibc, CA
# certificates, no shell, no package manager) as the unprivileged user 65532.
#   docker build -t jobqueue-operator:dev .

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the
# cache because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin jobqueue-operator \
    && cp target/release/jobqueue-operator /jobqueue-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /jobqueue-operator /usr/local/bin/jobqueue-operator
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/jobqueue-operator"]
CMD ["run"]
