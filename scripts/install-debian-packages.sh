#!/usr/bin/env bash
# Installs the Debian packages the end-to-end and scenario tests use.
# Idempotent: packages already present are not fetched again. Needs root.
set -euo pipefail

packages=(python3-pyftpdlib python3-openssl lftp tnftp ncftp wget vsftpd haproxy nftables conntrack tcpdump tshark iproute2 procps util-linux)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-debian-packages: needs root (packages: ${packages[*]})" >&2
  exit 2
fi

# Debian's images ship a policy-rc.d that keeps daemons (vsftpd) from starting
# on install (vsftpd, haproxy); a stock vsftpd would otherwise listen on every interface.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-debian-packages: all present"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-debian-packages: installed ${missing[*]}"
fi

# ProFTPD and Pure-FTPd for the interop matrix: they conflict with vsftpd,
# so they are unpacked into a folder of their own, not installed.
bash "$(dirname "$0")/install-ftp-peers.sh"
