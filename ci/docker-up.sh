#!/usr/bin/env bash
# Makes sure a Docker engine is running on this machine (Debian's docker.io, started as root).
# Idempotent: does nothing when `docker info` already works.
set -euo pipefail

WAIT_S=${DOCKER_WAIT_S:-60}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
  echo "docker-up: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) iptables ca-certificates >/dev/null
fi

if docker info >/dev/null 2>&1; then
  echo "docker-up: engine already running"
  exit 0
fi

# A dockerd that is still starting has written its pid file: give it time before starting another.
pid_file=/var/run/docker.pid
if [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "docker-up: dockerd (pid $(cat "$pid_file")) is starting; waiting"
else
  echo "docker-up: starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for ((i = 0; i < WAIT_S; i++)); do
  if docker info >/dev/null 2>&1; then
    echo "docker-up: engine ready after ${i}s"
    exit 0
  fi
  sleep 1
done
echo "docker-up: dockerd did not answer within ${WAIT_S}s; last log lines:" >&2
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
