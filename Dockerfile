# syntax=docker/dockerfile:1
# coldstore in one container: `coldstore daemon` (scheduler, WebDAV browser, dashboard, JSON API) with
# the configuration in /config and the cache, run journal and state in /cache.
#
#   docker compose up -d            (compose.yaml; the README's "Docker" section walks through it)
#   docker build -t coldstore .     (this file alone)
#
# Two stages: the build stage compiles the native modules (zstd-napi builds with node-gyp when no
# prebuilt binary can be fetched) and the TypeScript, then drops the dev dependencies; the runtime stage
# holds only the program, its production node_modules, and restic, ssh and CA certificates from Debian.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY scripts/ scripts/
COPY bin/ bin/
COPY compliance/ compliance/
COPY engine/ engine/
COPY cli/ cli/
COPY server/ server/
COPY bench/ bench/
# `npm install`, not `npm ci`: the lockfile lists optional builds of other platforms that some registries
# lack. Its `prepare` script builds (tsc, then the esbuild bundle in dist/bundle). Install scripts must
# run (native modules), so no --ignore-scripts.
RUN npm install --no-audit --no-fund \
 && test -f dist/bundle/coldstore.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE}
# restic: `type: restic` jobs; openssh-client: restic's sftp: repositories (restic runs ssh) and
# ssh-keyscan for known_hosts files; ca-certificates: TLS to S3, GCS and SMTP servers; tini: PID 1 that
# forwards SIGTERM and reaps the children of hooks and restic.
RUN apt-get update \
 && apt-get install -y --no-install-recommends restic openssh-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/bin/ bin/
COPY --from=build /app/compliance/ compliance/
COPY scripts/docker-entrypoint.sh /usr/local/bin/coldstore-entrypoint
COPY scripts/docker-healthcheck.mjs /app/scripts/docker-healthcheck.mjs
RUN ln -s /app/bin/coldstore /usr/local/bin/coldstore \
 && chmod 0755 /usr/local/bin/coldstore-entrypoint /app/bin/coldstore \
 && mkdir -p /config /cache \
 && chown node:node /cache \
 && coldstore --version
# PUID/PGID: the user coldstore runs as (the image's `node` user, 1000:1000, by default); the entry point
# starts as root only to hand /cache to that user, then drops to it. PUID=0 keeps root (host backups).
ENV COLDSTORE_CONFIG=/config/coldstore.yaml \
    COLDSTORE_CACHE_DIR=/cache \
    XDG_CACHE_HOME=/cache \
    HOME=/cache \
    PUID=1000 \
    PGID=1000 \
    COLDSTORE_HEALTH_URL=http://127.0.0.1:8088/healthz
EXPOSE 8088
# Healthy while the daemon answers HTTP on its port (any status below 500: 401 with authentication on).
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m --retries=3 CMD ["node", "/app/scripts/docker-healthcheck.mjs"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/coldstore-entrypoint"]
CMD ["daemon", "--config", "/config/coldstore.yaml"]
