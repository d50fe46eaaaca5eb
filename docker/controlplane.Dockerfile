# The EdgeFleet control plane (API, dashboard, MQTT bridge, rollout driver) and edgectl:
# no inference runtime, non-root, its data directory (blobs) on a volume.
#   make images   (docker/images.sh: wheels, the debootstrap base, then this)
# With a registry, --build-arg BASE=debian:bookworm-slim works too.
ARG BASE=edgefleet/base:bookworm

FROM ${BASE} AS build
COPY docker/install-venv.sh /usr/local/bin/
# the dependencies first: this layer stays cached while only EdgeFleet's own code changes
COPY build/wheels /wheels
RUN install-venv.sh controlplane deps
COPY build/edgefleet-wheel /wheels/edgefleet
RUN install-venv.sh controlplane edgefleet

FROM ${BASE}
RUN command -v python3 >/dev/null || (apt-get update -qq \
      && apt-get install -y -qq --no-install-recommends python3 ca-certificates \
      && rm -rf /var/lib/apt/lists/*) \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/edgefleet \
      --shell /usr/sbin/nologin edgefleet \
    && install -d -o edgefleet -g edgefleet -m 0700 /var/lib/edgefleet
COPY --from=build /opt/edgefleet/venv /opt/edgefleet/venv
COPY docker/entrypoints/controlplane.sh /usr/local/bin/edgefleet-entrypoint
ENV PATH=/opt/edgefleet/venv/bin:$PATH \
    EDGEFLEET_DATA_DIR=/var/lib/edgefleet \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1
USER edgefleet
WORKDIR /var/lib/edgefleet
VOLUME ["/var/lib/edgefleet"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import sys,urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["/usr/local/bin/edgefleet-entrypoint"]
CMD ["edgefleet-controlplane", "--host", "0.0.0.0", "--port", "8080"]
