#!/usr/bin/env bash
# Connections per second for small requests (one request per connection),
# measured in one lab run: Shoal's splice mode on the VIP (SYN cookie,
# request read, URL dispatch, handover to the chosen server's kernel,
# translated flow) against nginx as a reverse proxy (srv1's own address,
# port 8080, proxying round-robin to the three servers' nginx), same client,
# same wrk settings. Bounded: DURATION seconds per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
LAB=deploy/lab/lab
export SHOAL_BIN_DIR=${SHOAL_BIN_DIR:-$PWD/target/release}
$LAB down >/dev/null 2>&1 || true
$LAB up --nodes 3 --backend dpdk --mode splice >/dev/null
trap '$LAB down >/dev/null 2>&1 || true' EXIT

# nginx reverse proxy on srv1's own address.
conf=/run/shoal-lab/proxy.conf
cat > "$conf" <<NGINX
worker_processes 1;
pid /run/shoal-lab/proxy.pid;
error_log /run/shoal-lab/proxy-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream shoal { server 198.18.0.11:80; server 198.18.0.12:80; server 198.18.0.13:80; }
    server {
        listen 198.18.0.11:8080;
        location / { proxy_pass http://shoal; proxy_http_version 1.1; }
    }
}
NGINX
$LAB exec srv1 nginx -c "$conf"

rate() { # URL -> requests/s (one connection each)
    $LAB client wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 5s -H "Connection: close" "$1" \
        | awk '/Requests\/sec/ {print $2}'
}
shoal=$(rate http://198.18.0.100/whoami)
proxy=$(rate http://198.18.0.11:8080/whoami)
$LAB exec srv1 sh -c 'kill $(cat /run/shoal-lab/proxy.pid)'
python3 - "$shoal" "$proxy" <<'PY'
import sys
s, p = float(sys.argv[1]), float(sys.argv[2])
print(f"shoal splice (VIP, handover per connection): {s:8.0f} connections/s")
print(f"nginx reverse proxy (srv1:8080):            {p:8.0f} connections/s")
print(f"ratio shoal / nginx proxy:                  {s / p:8.2f}")
PY
