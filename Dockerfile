# syntax=docker/dockerfile:1
#
# The pod-identity-webhook image:
#
#   docker build -t registry.example.com/pod-identity-webhook:0.1.0 .
#
# Stage "build" compiles a stripped release binary on Debian bookworm. The final stage is
# FROM scratch and holds only that binary, the shared libraries `ldd` lists for it, the
# dynamic loader, and /etc/passwd + /etc/group for the user 65532. No shell, no package
# manager, no CA bundle: the webhook trusts the cluster CA that Kubernetes mounts with its
# ServiceAccount token. tests/chart/image_contents.sh assembles that file set here, and run
# without --rootfs it lists the same files and their size on any Debian machine, no build
# needed (docs/deployment.md, "Image size").

# Pin by digest for reproducible builds, e.g. debian:bookworm-slim@sha256:...
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libmicrohttpd-dev libgnutls28-dev libcurl4-gnutls-dev \
        libcjson-dev libinih-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only the sources the binary is built from (see .dockerignore); the test suite is off.
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY include/ include/
COPY src/ src/
COPY profiles/stackit.ini profiles/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DPIW_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && /build/pod-identity-webhook --version

# The runtime file set: binary (stripped), its libraries at the paths ldd prints (symlinks
# resolved), the loader, the user database. Printed once more for the build log.
COPY tests/chart/image_contents.sh /usr/local/bin/image_contents.sh
RUN image_contents.sh --rootfs /rootfs /build/pod-identity-webhook \
 && image_contents.sh /build/pod-identity-webhook

FROM scratch
COPY --from=build /rootfs/ /
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
# No per-thread cache of freed blocks in glibc's malloc: each thread's cache (up to 7
# blocks of each size to 1 KiB) filled over tens of minutes and held memory that
# malloc_trim cannot return, the soak's slow RSS rise; without it resident memory is
# flat and the throughput the same (docs/performance.md, Soak). glibc reads it at start.
ENV GLIBC_TUNABLES=glibc.malloc.tcache_count=0
# 8443: HTTPS /mutate, /healthz, /readyz. 9090: plain-HTTP /metrics, /healthz, /readyz.
EXPOSE 8443 9090
ENTRYPOINT ["/pod-identity-webhook"]
CMD ["serve"]
LABEL org.opencontainers.image.title="pod-identity-webhook" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook for federated cloud workload identity (STACKIT, AWS IRSA, Vultr, INI profiles)"
