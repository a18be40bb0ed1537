#!/usr/bin/env bash
# Unpacks ProFTPD and Pure-FTPd next to the installed vsftpd, for the interop
# matrix (test/e2e/interop-matrix.test.ts). Both conflict with vsftpd through
# `ftp-server`, so apt cannot install them: `apt-get download` + `dpkg -x`
# into one folder, run with LD_LIBRARY_PATH pointing inside it (LAB.md).
# Nothing is configured or started, no maintainer script runs.
# Idempotent: a folder whose stamp names the same packages is kept. Needs root.
set -euo pipefail

dest=${FTP_ALG_PEERS:-/opt/ftp-alg-peers}
# proftpd-core and pure-ftpd, plus the libraries they link that Debian's
# base image lacks (checked with ldd after unpacking, below).
packages=(proftpd-core pure-ftpd libhiredis0.14 libmemcached11 libmemcachedutil2 libhashkit2 libpcre2-posix3 libsodium23)
stamp="$dest/.packages"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-ftp-peers: needs root (unpacks ${packages[*]} into $dest)" >&2
  exit 2
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${packages[*]}" ] &&
  [ -x "$dest/usr/sbin/proftpd" ] && [ -x "$dest/usr/sbin/pure-ftpd" ]; then
  echo "install-ftp-peers: present in $dest"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder; _apt must be able to write there.
chmod 0777 "$work"
cd "$work"
if ! apt-get download -qq "${packages[@]}" >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get download -qq "${packages[@]}" >/dev/null
fi
rm -rf "$dest.new"
mkdir -p "$dest.new"
for deb in ./*.deb; do dpkg -x "$deb" "$dest.new"; done

libs="$dest.new/usr/lib/x86_64-linux-gnu"
for bin in usr/sbin/proftpd usr/sbin/pure-ftpd; do
  if LD_LIBRARY_PATH=$libs ldd "$dest.new/$bin" | grep -q 'not found'; then
    echo "install-ftp-peers: $bin misses libraries:" >&2
    LD_LIBRARY_PATH=$libs ldd "$dest.new/$bin" | grep 'not found' >&2
    exit 1
  fi
done
echo "${packages[*]}" > "$dest.new/.packages"
rm -rf "$dest"
mv "$dest.new" "$dest"
echo "install-ftp-peers: unpacked ${packages[*]} into $dest"
