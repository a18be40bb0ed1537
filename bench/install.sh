#!/bin/sh
# What `npm run bench` needs from Debian beyond a fresh machine: SuSE's
# ftp-proxy (the third-party FTP proxy it compares against), nftables (the
# kernel FTP helper case in namespaces) and the tools it drives.
#
#   sudo sh bench/install.sh        (as root)
#
# The bench runs ftp-proxy itself, in the foreground, from a config file in
# a temporary folder, on a port of loopback, and kills it by PID. It never
# needs the system daemon, so this script makes sure none runs: the package
# ships an init script (disabled by RUN_DAEMON=no in /etc/default/ftp-proxy)
# and no inetd entry; policy-rc.d keeps apt from starting any daemon at all.
set -eu

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (apt-get install, namespaces and nftables need it)" >&2
  exit 1
fi

# Keep apt from starting daemons on install (LAB.md): create policy-rc.d if missing.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  echo "install.sh: created /usr/sbin/policy-rc.d (daemons are not started on install)"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ftp-proxy nftables conntrack iproute2 curl procps >/dev/null

# No ftp-proxy daemon: the default file says RUN_DAEMON=no; keep it so and
# take the init script out of the boot sequence.
if [ -f /etc/default/ftp-proxy ] && ! grep -q '^RUN_DAEMON=no' /etc/default/ftp-proxy; then
  sed -i 's/^RUN_DAEMON=.*/RUN_DAEMON=no/' /etc/default/ftp-proxy
fi
update-rc.d ftp-proxy disable >/dev/null 2>&1 || true
# ...and none from inetd, should a super-server be installed.
if [ -f /etc/inetd.conf ] && grep -q '^[^#].*ftp-proxy' /etc/inetd.conf; then
  sed -i 's|^\([^#].*ftp-proxy.*\)$|#\1|' /etc/inetd.conf
  echo "install.sh: commented out the ftp-proxy line in /etc/inetd.conf"
fi
# Anything listening that is ftp-proxy (should be nothing): stop it through its own init script.
if ss -Hltnp 2>/dev/null | grep -q '"ftp-proxy"'; then
  /etc/init.d/ftp-proxy stop || true
fi
if ss -Hltnp 2>/dev/null | grep '"ftp-proxy"'; then
  echo "install.sh: an ftp-proxy daemon is still listening (above); stop it before benchmarking" >&2
  exit 1
fi

echo "install.sh: $(/usr/sbin/ftp-proxy -V 2>&1 | head -1); nft $(nft --version | awk '{print $2}'); no ftp-proxy daemon listening"
