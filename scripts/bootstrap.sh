#!/usr/bin/env bash
# Idempotent setup for tests, the demo and benchmarks, from any cwd:
#   1. system packages: MariaDB server (the sandbox runs real mariadbd), and what building
#      mysqlclient and the Cython extension needs (gcc, pkg-config, libmariadb-dev, headers);
#   2. MySQL 9.7 for the MySQL sandbox: a Debian sid chroot at $MTS_MYSQL_CHROOT
#      (default /opt/mts-mysql-sid) with mysql-server-core (as root; otherwise it says
#      what to run and goes on: MariaDB does not need it);
#   3. .venv with an editable install of the package and its test/bench extras.
# Re-running is cheap: apt runs only when something is missing, the chroot is made only
# when its mysqld is missing, pip only when the build inputs (pyproject.toml, setup.py,
# native/ sources) changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'bootstrap: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

# --- system packages ------------------------------------------------------------------
missing=()
have mariadbd || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server mariadb-client)
have gcc || missing+=(gcc)
have pkg-config || missing+=(pkg-config)
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)  # crc32 in native/_scan.pyx (frame_events)
if ! have pkg-config || ! pkg-config --exists libmariadb 2>/dev/null; then
    missing+=(libmariadb-dev)
fi
"$PY" -c 'import sysconfig, os, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null || missing+=(python3-dev)
[ -x .venv/bin/python ] || python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        say "missing system packages: ${missing[*]}"
        say "install them as root:  apt-get update && apt-get install -y ${missing[*]} sysbench"
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
    # sysbench only feeds optional benchmarks; not every distribution/release ships it.
    have sysbench || apt-get install -y -qq sysbench >/dev/null 2>&1 \
        || say "sysbench not available; sysbench benchmarks will be skipped"
fi

# --- MySQL 9.7 in a Debian sid chroot --------------------------------------------------
# Debian 12 has no MySQL and sid's binaries need a newer glibc than the host's, so the
# sandbox runs sid's mysqld in a chroot (applier/harness/mysql.py). The host's apt
# sources are never touched: debootstrap fetches sid into the chroot only.
mysql_chroot=${MTS_MYSQL_CHROOT:-/opt/mts-mysql-sid}
mysql_stamp="$mysql_chroot/.mts-mysql-chroot"

chroot_install_mysql() {  # $1: chroot
    local pkgs=(mysql-server-core mysql-client-core)
    chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${pkgs[@]}" && return 0
    # The package lists debootstrap left may be stale (an expired Release file too).
    chroot "$1" apt-get -q -o Acquire::Check-Valid-Until=false update \
        && chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${pkgs[@]}"
}

make_mysql_chroot() {  # $1: chroot to create; all output goes to the caller's log
    local dir=$1 work mnt
    if ! have debootstrap; then
        apt-get install -y -q debootstrap || { apt-get update -q && apt-get install -y -q debootstrap; }
    fi
    if [ -x "$dir/usr/bin/apt-get" ] && [ ! -d "$dir/debootstrap" ]; then
        work=$dir  # a finished debootstrap that lacks only mysqld
    else
        if [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
            echo "$dir is neither empty nor a finished debootstrap: remove it or set MTS_MYSQL_CHROOT"
            return 1
        fi
        work="$dir.partial"  # ours: a run that was interrupted left it
        for mnt in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
            umount -l "$mnt" || true
        done
        rm -rf --one-file-system "$work"
        mkdir -p "$(dirname "$dir")"
        debootstrap --variant=minbase sid "$work" || return 1
    fi
    printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"  # no daemons start
    chmod 755 "$work/usr/sbin/policy-rc.d"
    chroot_install_mysql "$work" || return 1
    chroot "$work" apt-get clean
    mkdir -p "$work/var/lib/mts-sandbox"
    chmod 1777 "$work/var/lib/mts-sandbox"  # server homes; non-root users run via unshare
    if [ "$work" != "$dir" ]; then
        rmdir "$dir" 2>/dev/null || true
        mv "$work" "$dir"
    fi
}

if [ -x "$mysql_chroot/usr/sbin/mysqld" ]; then
    if [ ! -f "$mysql_stamp" ] && [ "$(id -u)" -eq 0 ]; then  # made by hand or an older script
        mkdir -p "$mysql_chroot/var/lib/mts-sandbox"
        chmod 1777 "$mysql_chroot/var/lib/mts-sandbox"
        chroot "$mysql_chroot" /usr/sbin/mysqld --version >"$mysql_stamp" 2>&1 || true
    fi
elif [ "$(id -u)" -ne 0 ]; then
    say "no MySQL 9.7 at $mysql_chroot: MySQL tests will be skipped (MariaDB is unaffected)"
    say "create it as root:  MTS_MYSQL_CHROOT=$mysql_chroot bash scripts/bootstrap.sh"
else
    say "creating a Debian sid chroot with MySQL 9.7 at $mysql_chroot (debootstrap + mysql-server-core, ~1-2 min, ~560 MB)"
    mysql_log=$(mktemp)
    if (make_mysql_chroot "$mysql_chroot") >"$mysql_log" 2>&1 \
            && [ -x "$mysql_chroot/usr/sbin/mysqld" ]; then
        chroot "$mysql_chroot" /usr/sbin/mysqld --version >"$mysql_stamp" 2>&1 || true
        rm -f "$mysql_log"
    else
        tail -n 15 "$mysql_log" >&2
        say "creating the MySQL chroot failed (full log: $mysql_log); MySQL tests will"
        say "skip locally and fail under CI; MariaDB is unaffected"
    fi
fi

# --- virtualenv -----------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { say "python3 >= 3.11 is required, found $(python3 --version 2>&1)"; exit 1; }
    say "creating .venv"
    python3 -m venv .venv
fi

stamp=.venv/.bootstrap-stamp
inputs=$(for f in pyproject.toml setup.py native/*.pyx native/*.pxd native/*.h; do
    if [ -f "$f" ]; then sha256sum "$f"; fi
done | sha256sum)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
    exit 0
fi

say "installing the package into .venv (editable, with test and bench extras)"
pip_log=$(mktemp)
trap 'rm -f "$pip_log"' EXIT
if .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]' >"$pip_log" 2>&1; then
    printf '%s\n' "$inputs" >"$stamp"
elif [ ! -f setup.py ]; then
    # Expected until setup.py (which builds native/) lands; run from the source tree.
    say "editable install failed and setup.py is absent (expected for now); continuing"
    tail -n 5 "$pip_log" >&2
else
    say "pip install -e '.[test,bench]' failed:"
    tail -n 40 "$pip_log" >&2
    exit 1
fi
