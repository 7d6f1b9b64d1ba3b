# Watcher daemon image: slim Python, non-root, config and data as volumes.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    WATCHER_CONFIG=/config/watcher.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip install . && useradd --system --uid 10001 --home-dir /data watcher \
    && mkdir -p /config /data && chown watcher /data
COPY config/watcher.toml /config/watcher.toml

USER watcher
WORKDIR /data
VOLUME ["/config", "/data"]

# [serve] endpoints (Atom per topic, /healthz, /metrics) when enabled with host = "0.0.0.0".
EXPOSE 8080

# Healthy while the database takes a write and the last poll cycle is recent (see `watcher health`): the
# same rule as /healthz, without needing [serve] enabled or an HTTP client in the image.
HEALTHCHECK --interval=1m --timeout=10s --start-period=2m --retries=3 CMD ["watcher", "health"]

ENTRYPOINT ["watcher"]
CMD ["run"]
