#!/usr/bin/env bash
# Install the system services HLTHZ's tests and stack use, from Debian packages.
# Idempotent: only what is missing is installed. Needs root (CI and dev machines run as root);
# without root it prints what to install and exits non-zero.
set -euo pipefail

# binary -> Debian package
declare -A want=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [redis-server]=redis-server
  [nginx]=nginx-light
  [chromium]=chromium
  [ip]=iproute2
  [unshare]=util-linux
  [taskset]=util-linux
)
missing=()
for bin in "${!want[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${want[$bin]}")
done
# PostgreSQL's server binaries live outside PATH.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing Debian packages: ${pkgs[*]} (run as root: apt-get install ${pkgs[*]})" >&2
  exit 1
fi
echo "install-system-deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps package scripts from starting services: tests start their own on loopback.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
