# natsring in a container: built with the official Rust image on Debian bookworm, run on
# distroless's glibc image (bookworm's glibc, no shell, no package manager) as a non-root user.
#
#   docker build -t natsring .
#   docker run --security-opt seccomp=deploy/seccomp-io_uring.json -p 4222:4222 natsring
#
# Docker's default seccomp profile blocks io_uring: without a profile that allows it (the one
# above is Docker's default plus the three io_uring calls), natsring exits at start with one
# line saying so. See README.md, "Running in containers and under systemd".

# The toolchain natsring is built and tested with (Cargo.toml's rust-version is the oldest).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directory are cache mounts (BuildKit), so the binary is copied out
# in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin natsring \
    && cp target/release/natsring /usr/local/bin/natsring

# glibc and libgcc_s (all the binary links), as the nonroot user (uid and gid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/natsring /usr/local/bin/natsring
COPY deploy/natsring.conf /etc/natsring/natsring.conf
USER 65532:65532
# Clients; 8222 is the monitoring port to come (`-m 8222` once monitoring lands).
EXPOSE 4222 8222
# natsring handles SIGTERM (`docker stop`) itself: it stops accepting, closes the clients and
# exits 0, so it runs as PID 1 without an init.
ENTRYPOINT ["/usr/local/bin/natsring"]
# The configuration file, as in nats-server's image; mount another over it, or give flags
# (they win over the file).
CMD ["-c", "/etc/natsring/natsring.conf"]
