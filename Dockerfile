# syntax=docker/dockerfile:1
# The apisense agent image, built from the repository root:
#
#   docker build -t apisense:dev .
#
# The build stage compiles the kernel programs and embeds them in the `apisense` binary, which is
# all the runtime stage carries. See deploy/kubernetes/daemonset.yaml for how it runs.

# Stable builds the agent; the eBPF programs need a nightly whose LLVM bpf-linker links against
# (DESIGN.md, "Build"). The nightly is pinned to the one the programs are verified with: a moving
# `nightly` can change LLVM major on any day and break bpf-linker's build.
ARG RUST_VERSION=1.95
ARG RUST_NIGHTLY=nightly-2026-05-20

FROM rust:${RUST_VERSION}-bookworm AS build
ARG RUST_NIGHTLY
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src

# aya-build runs `cargo +nightly`: install the pinned nightly (with rust-src for
# `-Z build-std=core`) and make it answer to that name, as `rustup toolchain link` would.
RUN rustup toolchain install "${RUST_NIGHTLY}" --profile minimal --component rust-src \
    && host="$(rustc -vV | sed -n 's/^host: //p')" \
    && ln -s "${RUSTUP_HOME}/toolchains/${RUST_NIGHTLY}-${host}" "${RUSTUP_HOME}/toolchains/nightly-${host}" \
    && cargo +nightly --version

# bpf-linker built against the nightly's own libLLVM, exactly as `cargo xtask setup` does
# (xtask/src/setup.rs, whose pinned version is read here so the two cannot drift). xtask itself is
# not run: it also mounts tracefs, which a build container may not do. Only setup.rs is copied so
# this slow layer survives source changes.
COPY xtask/src/setup.rs /tmp/setup.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    version="$(sed -n 's/^const BPF_LINKER_VERSION: &str = "\(.*\)";$/\1/p' /tmp/setup.rs)" \
    && test -n "${version}" \
    && llvm="$(rustc +nightly -vV | sed -n 's/^LLVM version: //p')" \
    && lib="$(find "$(rustc +nightly --print sysroot)/lib" -maxdepth 1 -name 'libLLVM.so.*' | head -n 1)" \
    && test -n "${llvm}" && test -n "${lib}" \
    && prefix=/opt/llvm-prefix \
    && mkdir -p "${prefix}/bin" "${prefix}/lib" \
    && printf '#!/bin/sh\necho %s\n' "${llvm}" > "${prefix}/bin/llvm-config" \
    && chmod 0755 "${prefix}/bin/llvm-config" \
    && ln -s "${lib}" "${prefix}/lib/libLLVM.so" \
    && ln -s "${lib}" "${prefix}/lib/$(basename "${lib}")" \
    && LLVM_PREFIX="${prefix}" cargo +nightly install bpf-linker --version "${version}" \
        --no-default-features --features "llvm-${llvm%%.*}" \
    && bpf-linker --version

COPY . .
# Without bpf-linker the build script embeds an empty object and the binary refuses to run; a
# release image must never be that binary, so its warning fails the build.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sensor-agent 2>&1 | tee /tmp/build.log \
    && ! grep -q 'eBPF programs not built' /tmp/build.log \
    && install -D -m 0755 target/release/apisense /out/apisense

# glibc and libgcc from Debian 12 (matching the build stage), CA roots for OTLP over TLS, no shell
# and no package manager. `kubectl exec POD -- apisense inventory` still works without a shell.
# distroless publishes no versioned tags; pin a digest (`@sha256:...`) for reproducible images.
# hadolint ignore=DL3007
FROM gcr.io/distroless/cc-debian12:latest
COPY --from=build /out/apisense /usr/local/bin/apisense
# Root, on purpose: the agent loads eBPF programs, reads every process's /proc entries and refuses
# to start under another uid. Kubernetes cannot give a non-root process capabilities (no ambient
# capabilities), so the DaemonSet keeps uid 0 and drops every capability except the few it needs.
# hadolint ignore=DL3002
USER 0:0
ENTRYPOINT ["/usr/local/bin/apisense"]
CMD ["run", "--config", "/etc/apisense/config.yaml"]
