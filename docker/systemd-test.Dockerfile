# The agent image booted under a real systemd as PID 1: what tests/system/test_systemd_pid1.py
# runs packaging/systemd/edge-agent.service in (docs/agent.md, "Running under systemd").
#   DOCKER_BUILDKIT=0 docker build -t edgefleet/agent-systemd:test \
#     --build-arg AGENT_IMAGE=edgefleet/agent:latest - < docker/systemd-test.Dockerfile
# It needs no build context: the test copies the unit and agent.toml in at run time, so
# the unit under test is always the working tree's.
ARG AGENT_IMAGE=edgefleet/agent:latest
FROM ${AGENT_IMAGE} AS agent

# The agent image's files (its venv in /opt/edgefleet/venv, as `make images` built it)
# without its container settings: its VOLUME on /var/lib/edgefleet-agent would be a mount
# point, which systemd cannot move to /var/lib/private/ for DynamicUser=yes; its USER,
# ENTRYPOINT and HEALTHCHECK belong to the plain agent container.
FROM scratch
COPY --from=agent / /
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        systemd systemd-sysv dbus >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    # a host installed from docs/agent.md has neither the container's user nor its data dir
    && userdel edgefleet \
    && rm -rf /var/lib/edgefleet-agent /usr/local/bin/edgefleet-agent-entrypoint \
    # nothing to log in on, nothing to set up for a network the host owns
    && systemctl mask getty.target console-getty.service systemd-networkd.service \
        systemd-resolved.service systemd-timesyncd.service systemd-udevd.service \
        systemd-udev-trigger.service systemd-remount-fs.service \
    && install -d -m 0755 /etc/edgefleet-agent
ENV container=docker
# systemd shuts down cleanly (stopping its units) on SIGRTMIN+3, not SIGTERM
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
