# ocigate: the gateway binary on a small, non-root runtime image.
#
#   docker build -t ocigate .
#   (charts/ocigate runs it; see "Deploying" in README.md)
#
# Build stage: Rust on Debian 12 (cmake builds zlib-ng for Pingora).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gateway --bin ocigate \
 && install -D -m 0755 target/release/ocigate /out/ocigate

# Runtime: glibc and CA certificates, nothing else; uid 65532 ("nonroot"), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ocigate /usr/local/bin/ocigate
USER 65532:65532
EXPOSE 5000 9090
ENTRYPOINT ["/usr/local/bin/ocigate"]
CMD ["serve", "--config", "/etc/ocigate/config/ocigate.yaml"]
