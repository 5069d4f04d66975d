#!/usr/bin/env bash
# Make sure the real servers the tests talk to are up: PostgreSQL, Redis, RabbitMQ, and Chromium for
# browser tests. Starts what is stopped and installs with apt what is missing. Idempotent.
set -euo pipefail

apt_updated=0
need() {  # package...
  if [ $apt_updated = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_port() {  # port name
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  echo "ensure_services: $2 did not start on port $1" >&2; exit 1
}

if ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null || need postgresql
  ver=$(ls /etc/postgresql | head -1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  wait_port 5432 PostgreSQL
fi
if command -v psql >/dev/null; then
  psql -h 127.0.0.1 -U postgres -lqt 2>/dev/null | cut -d'|' -f1 | grep -qw test \
    || createdb -h 127.0.0.1 -U postgres test 2>/dev/null || true
fi

if ! port_open 6379; then
  command -v redis-server >/dev/null || need redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi

if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || need rabbitmq-server
  rabbitmq-server -detached || true
  wait_port 5672 RabbitMQ
fi

if [ ! -x /usr/bin/chromium ]; then
  need chromium chromium-driver
fi

# axe-core for the browser tests' accessibility checks (pinned in tests/app/ui/axe/package.json).
# Optional: without npm or a network the tests that need it skip and say why.
axe_dir="$(dirname "$0")/../tests/app/ui/axe"
if command -v npm >/dev/null && [ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]; then
  (cd "$axe_dir" && npm ci --no-audit --no-fund >/dev/null) \
    || echo "ensure_services: npm ci for axe-core failed; accessibility checks will skip" >&2
fi
