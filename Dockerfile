# The bot's own image. Build:   docker build -t slackbot .
# Run (it starts task sandboxes on the host's Docker, so it needs the socket):
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /srv/slackbot:/srv/slackbot -e SLACKBOT_DATA_DIR=/srv/slackbot --env-file slackbot.env slackbot
# Mount the data directory at the same path inside and out: workspaces are bind-mounted into
# sandboxes by the host's engine, which resolves paths on the host.
# Behind a TLS-intercepting proxy, put its CA certificates (*.crt) in ca-certs/ before building.
ARG BASE=python:3.12-slim
FROM ${BASE}

ARG DEBIAN_FRONTEND=noninteractive
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/slackbot/bin:$PATH \
    SLACKBOT_DATA_DIR=/data

# git for the mirrors; a bare Debian base also lacks venv/pip (the python images have them).
RUN set -eux; \
    pkgs="git ca-certificates"; \
    python3 -c 'import ensurepip, venv' 2>/dev/null || pkgs="$pkgs python3-venv python3-pip"; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*

COPY . /src
RUN set -eux; \
    if ls /src/ca-certs/*.crt >/dev/null 2>&1; then \
        cp /src/ca-certs/*.crt /usr/local/share/ca-certificates/ && update-ca-certificates; \
    fi; \
    python3 -m venv /opt/slackbot; \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/slackbot/bin/pip install --no-cache-dir \
        --disable-pip-version-check /src; \
    mkdir -p /opt/slackbot/share/slackbot; \
    cp -r /src/skills /opt/slackbot/share/slackbot/skills; \
    rm -rf /src

# Database, workspaces and repository mirrors live here.
VOLUME /data
EXPOSE 3000
ENTRYPOINT ["slackbot"]
CMD ["run"]
