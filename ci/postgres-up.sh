#!/usr/bin/env bash
# Makes sure a PostgreSQL server is running on this machine for the tests (Debian's `postgresql`,
# as root, without a service manager) and that root may connect as the `postgres` role over the
# unix socket without a password:
#   psql -h /var/run/postgresql -U postgres postgres
#   postgresql+psycopg://postgres@/postgres?host=/var/run/postgresql   (SLACKBOT_TEST_PG in .ci/run)
# Idempotent: with the server up and the access in place it changes nothing.
set -euo pipefail

WAIT_S=${POSTGRES_WAIT_S:-60}
SOCKET_DIR=/var/run/postgresql
CLUSTER=main
MAP=slackbot_ci  # pg_ident map: these OS users may connect as the postgres role

if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q 'ok installed'; then
  echo "postgres-up: installing postgresql"
  # Without a service manager, the package's own attempt to start the server is refused or fails:
  # it is started below either way.
  log=$(mktemp)
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >"$log" 2>&1 || {
    cat "$log" >&2
    exit 1
  }
  rm -f "$log"
fi

version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)
[[ -n $version ]] || { echo "postgres-up: no PostgreSQL server under /usr/lib/postgresql" >&2; exit 1; }
cluster() {  # cluster FIELD: a column of this cluster's line in pg_lsclusters (empty: no such cluster)
  pg_lsclusters --no-header | awk -v v="$version" -v c="$CLUSTER" -v f="$1" '$1 == v && $2 == c { print $f }'
}
if [[ -z $(cluster 1) ]]; then
  echo "postgres-up: creating cluster $version/$CLUSTER"
  pg_createcluster "$version" "$CLUSTER" >/dev/null
fi
port=$(cluster 3)
conf=/etc/postgresql/$version/$CLUSTER

# Peer authentication, with root mapped to the postgres role (and postgres to itself). The line
# goes first in pg_hba.conf, since the first matching line decides.
changed=0
if ! grep -q "map=$MAP" "$conf/pg_hba.conf"; then
  sed -i "1i local   all   postgres   peer map=$MAP   # added by slackbot's ci/postgres-up.sh" "$conf/pg_hba.conf"
  changed=1
fi
for user in root postgres; do
  if ! grep -qE "^$MAP[[:space:]]+$user[[:space:]]+postgres\$" "$conf/pg_ident.conf"; then
    echo "$MAP $user postgres" >>"$conf/pg_ident.conf"
    changed=1
  fi
done

if [[ $(cluster 4) == online* ]]; then
  if ((changed)); then
    echo "postgres-up: cluster $version/$CLUSTER running; reloading its access rules"
    pg_ctlcluster "$version" "$CLUSTER" reload
  else
    echo "postgres-up: cluster $version/$CLUSTER already running"
  fi
else
  echo "postgres-up: starting cluster $version/$CLUSTER (log: /var/log/postgresql/postgresql-$version-$CLUSTER.log)"
  install -d -o postgres -g postgres -m 2775 "$SOCKET_DIR"
  pg_ctlcluster "$version" "$CLUSTER" start
fi

for ((i = 0; i < WAIT_S; i++)); do
  if pg_isready -q -h "$SOCKET_DIR" -p "$port"; then
    break
  fi
  sleep 1
done
if ! pg_isready -q -h "$SOCKET_DIR" -p "$port"; then
  echo "postgres-up: the server did not accept connections within ${WAIT_S}s; last log lines:" >&2
  tail -n 30 "/var/log/postgresql/postgresql-$version-$CLUSTER.log" >&2 || true
  exit 1
fi
server=$(psql -X -h "$SOCKET_DIR" -p "$port" -U postgres -d postgres -Atc 'SHOW server_version')
echo "postgres-up: PostgreSQL $server ready on $SOCKET_DIR, port $port"
if [[ $port != 5432 ]]; then
  echo "postgres-up: note: not the default port; add &port=$port to SLACKBOT_TEST_PG" >&2
fi
