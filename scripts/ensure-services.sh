#!/usr/bin/env bash
# Makes sure PostgreSQL is installed, running on 127.0.0.1:5432, and lets the
# user `postgres` in from 127.0.0.1 without a password (what the lab's
# defaults and tests expect). Installs with apt-get where it is missing.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
say() { echo "ensure-services: $*"; }

pg_answers() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
pg_lets_us_in() { psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    say "installing PostgreSQL"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
if ! pg_answers; then
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
        || as_root pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 60); do pg_answers && break; sleep 0.5; done
pg_answers || { say "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }

if ! pg_lets_us_in; then
    # A fresh Debian install asks for a password over TCP; the lab runs locally with trust.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    say "allowing local TCP logins without a password in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_postgres "psql -qc 'SELECT pg_reload_conf()'" >/dev/null
    sleep 1
fi
pg_lets_us_in || { say "cannot log in to PostgreSQL as postgres on 127.0.0.1"; exit 1; }
say "PostgreSQL $version is up on 127.0.0.1:5432"

# RabbitMQ for async mode, with the management and Prometheus plugins.
answers() { timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null; }
rabbit_answers() { answers 5672; }
if ! rabbit_answers; then
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        say "installing RabbitMQ"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    if ! rabbit_answers; then
        say "starting RabbitMQ"
        as_root rabbitmq-server -detached >/dev/null 2>&1 || true
        as_root rabbitmqctl await_startup >/dev/null
    fi
fi
for _ in $(seq 1 60); do rabbit_answers && break; sleep 0.5; done
rabbit_answers || { say "RabbitMQ does not answer on 127.0.0.1:5672"; exit 1; }
as_root rabbitmq-plugins enable --quiet rabbitmq_prometheus rabbitmq_management >/dev/null 2>&1 || true
# The tests read queue and exchange properties through the management API.
for _ in $(seq 1 60); do answers 15672 && break; sleep 0.5; done
answers 15672 || { say "RabbitMQ's management API does not answer on 127.0.0.1:15672"; exit 1; }
say "RabbitMQ is up on 127.0.0.1:5672 (management API on 15672)"
