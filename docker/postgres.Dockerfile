# PostgreSQL 15 from Debian, non-root, its cluster on a volume. The first start makes the
# cluster with superuser $POSTGRES_USER (password from $POSTGRES_PASSWORD_FILE or
# $POSTGRES_PASSWORD) and database $POSTGRES_DB; password (scram) logins over TCP.
ARG BASE=edgefleet/base:bookworm
FROM ${BASE}
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/edgefleet.conf \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc /usr/share/man \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 0775 /var/run/postgresql
COPY docker/entrypoints/postgres.sh /usr/local/bin/edgefleet-postgres
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
  CMD ["sh", "-c", "pg_isready -q -h 127.0.0.1 -U \"${POSTGRES_USER:-postgres}\""]
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/edgefleet-postgres"]
