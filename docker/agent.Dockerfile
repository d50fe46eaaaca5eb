# The EdgeFleet edge agent: ONNX Runtime and OpenVINO (CPU), non-root, its state on a volume.
#   make images   (docker/images.sh: wheels, the debootstrap base, then this)
# With a registry, --build-arg BASE=debian:bookworm-slim works too.
ARG BASE=edgefleet/base:bookworm

FROM ${BASE} AS build
COPY docker/install-venv.sh /usr/local/bin/
# the dependencies first: this layer stays cached while only EdgeFleet's own code changes
COPY build/wheels /wheels
RUN install-venv.sh agent deps
COPY build/edgefleet-wheel /wheels/edgefleet
RUN install-venv.sh agent edgefleet

FROM ${BASE}
RUN command -v python3 >/dev/null || (apt-get update -qq \
      && apt-get install -y -qq --no-install-recommends python3 ca-certificates \
      && rm -rf /var/lib/apt/lists/*) \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/edgefleet-agent \
      --shell /usr/sbin/nologin edgefleet \
    && install -d -o edgefleet -g edgefleet -m 0700 /var/lib/edgefleet-agent \
    && install -d -m 0755 /etc/edgefleet-agent
COPY --from=build /opt/edgefleet/venv /opt/edgefleet/venv
COPY docker/entrypoints/agent.sh /usr/local/bin/edgefleet-agent-entrypoint
ENV PATH=/opt/edgefleet/venv/bin:$PATH \
    ORT_DISABLE_TELEMETRY=1 \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1
USER edgefleet
WORKDIR /var/lib/edgefleet-agent
# data_dir: identity, trust, the spool and the installed bundles outlive the container.
VOLUME ["/var/lib/edgefleet-agent"]
# The local inference API listens on loopback only (it has no authentication), so the
# probe runs inside the container.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import os,sys,urllib.request as u; a=os.environ.get('EDGEFLEET_LOCAL_API','127.0.0.1:8500'); sys.exit(u.urlopen(f'http://{a}/v2/health/live', timeout=4).status != 200)"]
ENTRYPOINT ["/usr/local/bin/edgefleet-agent-entrypoint"]
CMD ["run"]
