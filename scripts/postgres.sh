#!/usr/bin/env bash
# A local PostgreSQL for development and CI: a throwaway cluster on
# 127.0.0.1 only, owned by the `postgres` system user, with a password-
# protected `layercake` role and database.
#
#   scripts/postgres.sh start DIR [PORT]   # prints the env to use it
#   scripts/postgres.sh stop DIR           # fast shutdown
#
# The cluster, its log (DIR/run/postgres.log) and its socket live in DIR
# (made world-traversable so that `postgres` can own DIR/pgdata and
# DIR/run). PORT defaults to 15432. Needs the
# PostgreSQL server binaries (Debian: postgresql-15, or PG_BIN=/path/bin)
# and root or the postgres user. The role `layercake` may create databases
# (the tests make one per test).
set -euo pipefail

cmd=${1:?usage: postgres.sh start|stop DIR [PORT]}
dir=${2:?usage: postgres.sh start|stop DIR [PORT]}
port=${3:-15432}
bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  for v in 17 16 15 14; do
    [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ] && { bin=/usr/lib/postgresql/$v/bin; break; }
  done
fi
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found (set PG_BIN)" >&2; exit 1; }
password=${PG_PASSWORD:-layercake-test}
# It goes into SQL and a URL unescaped: keep it to safe characters.
[[ $password =~ ^[A-Za-z0-9._-]+$ ]] || { echo "PG_PASSWORD: use letters, digits, . _ -" >&2; exit 2; }

# initdb and pg_ctl refuse to run as root: they run as `postgres`.
as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    "$@"
  elif [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres -- "$@"
  fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 755 "$dir"
  for sub in pgdata run; do
    [ -d "$dir/$sub" ] && continue
    if [ "$(id -un)" = postgres ]; then
      mkdir "$dir/$sub"
    elif [ "$(id -u)" -eq 0 ]; then
      install -d -o postgres -m 700 "$dir/$sub"
    else
      sudo install -d -o postgres -m 700 "$dir/$sub"
    fi
  done
  if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
    as_postgres "$bin/initdb" -D "$dir/pgdata" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      as_postgres "$bin/initdb" -D "$dir/pgdata" -U postgres -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # TCP on loopback only, with a password; the socket stays in DIR/run.
    cat >"$dir/pgdata/pg_hba.conf" <<HBA
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
  fi
  as_postgres "$bin/pg_ctl" -D "$dir/pgdata" -l "$dir/run/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/run -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { cat "$dir/run/postgres.log" >&2; exit 1; }
  as_postgres "$bin/psql" -h "$dir/run" -p "$port" -U postgres -q -v ON_ERROR_STOP=1 postgres <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'layercake') THEN
    CREATE ROLE layercake LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE layercake OWNER layercake'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'layercake') \gexec
SQL
  echo "LAYERCAKE_META__URL=postgres://layercake:$password@127.0.0.1:$port/layercake"
  ;;
stop)
  [ -f "$dir/pgdata/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$dir/pgdata" -m fast -w stop >/dev/null || true
  ;;
*)
  echo "usage: postgres.sh start|stop DIR [PORT]" >&2
  exit 2
  ;;
esac
