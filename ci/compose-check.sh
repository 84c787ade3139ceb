#!/usr/bin/env bash
# Checks docker-compose.yml: it parses, interpolates with a .env like the one people write, and has
# the services it documents. Needs no engine, no registry and nothing real. Installs Debian's
# `docker-compose` when no Compose is on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "compose-check: installing docker-compose"
  log=$(mktemp)
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker-compose; } >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  rm -f "$log"
  compose=(docker-compose)
fi
echo "compose-check: $("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -n 1)"

# A copy beside a dummy .env, so a real .env in the checkout is neither needed nor read.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp docker-compose.yml Dockerfile "$dir/"
cat >"$dir/.env" <<'ENV'
SLACK_BOT_TOKEN=xoxb-compose-check
SLACK_APP_TOKEN=xapp-compose-check
OPENAI_BASE_URL=http://model.invalid/v1
OPENAI_API_KEY=sk-compose-check
POSTGRES_PASSWORD=composecheck
SLACKBOT_DATA_DIR=/srv/compose-check-data
ENV
same_path() {  # same_path CONFIG PATH: PATH is bind-mounted at PATH (short or long syntax)
  grep -qF -- "$2:$2" <<<"$1" || { grep -qF -- "source: $2" <<<"$1" && grep -qF -- "target: $2" <<<"$1"; }
}
(
  cd "$dir"
  # Only the .env above: no variable of this shell's environment changes what is checked.
  env -i PATH="$PATH" HOME="$dir" "${compose[@]}" -p slackbot-check config -q
  services=$(env -i PATH="$PATH" HOME="$dir" "${compose[@]}" -p slackbot-check config --services | sort | tr '\n' ' ')
  [[ $services == "front postgres worker-1 worker-2 " ]] || {
    echo "compose-check: services are '$services'" >&2
    exit 1
  }
  config=$(env -i PATH="$PATH" HOME="$dir" "${compose[@]}" -p slackbot-check config)
  for path in /srv/compose-check-data /var/run/docker.sock; do
    same_path "$config" "$path" || { echo "compose-check: $path is not mounted at the same path" >&2; exit 1; }
  done
  for want in "SLACKBOT_DATA_DIR: /srv/compose-check-data" \
    "DATABASE_URL: postgresql+psycopg://slackbot:composecheck@postgres:5432/slackbot"; do
    grep -qF -- "$want" <<<"$config" || { echo "compose-check: '$want' is not in the configuration" >&2; exit 1; }
  done
  # Workers get no Slack tokens (the front renders their output).
  tokens=$(grep -cE "SLACK_BOT_TOKEN: ''" <<<"$config" || true)
  ((tokens == 2)) || { echo "compose-check: the workers are given a Slack token" >&2; exit 1; }
)
echo "compose-check: docker-compose.yml is valid (services: front, postgres, worker-1, worker-2)"
