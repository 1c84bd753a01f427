#!/usr/bin/env bash
# Service benchmarks (run by `make bench`, as root with LXC), baselines measured in the
# same run:
#  a. Install time of a ~200 MB package: `package.install {path}` of a file already on
#     the server (no upload), then `package.start`, until statusInfo.state is `running`
#     (verify every hash + signature, copy the archive, extract the root image, start
#     the container). Baseline: what the bytes alone cost — `b3sum` of the package,
#     plus `cp` + fsync of the package and of its root image (the two copies an
#     install writes and syncs). Best of $RUNS each; prints seconds and the ratio.
#  b. Start-to-healthy latency of the nginx package (sdk/examples/nginx) over $CYCLES
#     stop/start cycles: from the `package.start` call to its `web` health check
#     reported `success` in the state (polled every 5 ms over one keep-alive
#     connection); p50/p90 in ms, target p50 <= 300 ms. Baseline: the same nginx binary
#     (the package's image, unpacked) started directly on the host in a chroot, to its
#     first HTTP 200.
# The ~200 MB package is the nginx project with 150 MiB of random bytes added to its
# image (incompressible, so the squashfs stays that big).
# Knobs: RUNS (default 3), CYCLES (default 20), BALLAST_MIB (default 150).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

[ "$(id -u)" = 0 ] || { echo "bench services: needs root (LXC containers, pack)" >&2; exit 1; }
for tool in lxc-start mksquashfs unsquashfs mmdebstrap b3sum curl python3 chroot; do
  command -v "$tool" >/dev/null || { echo "bench services: needs $tool" >&2; exit 1; }
done
RUNS="${RUNS:-3}"
CYCLES="${CYCLES:-20}"
BALLAST_MIB="${BALLAST_MIB:-150}"
export HEARTH_CACHE_DIR="${HEARTH_CACHE_DIR:-/var/cache/hearth/pack-cache}"

cargo build --release -q -p hearthd -p hearth-cli
MUSL="$(uname -m)-unknown-linux-musl"
rustup target list --installed | grep -x "$MUSL" >/dev/null || rustup target add "$MUSL"
cargo build --release -q -p hearth-container --target "$MUSL"
BIN="$CARGO_TARGET_DIR/release"
INIT="$CARGO_TARGET_DIR/$MUSL/release/hearth-container"

WORK="$(mktemp -d "${BENCH_DIR:-/tmp}/services-bench.XXXXXX")"
chmod 711 "$WORK"
DATA="$WORK/data"
HEARTHD_PID=""
NGINX_PID=""
cleanup() {
  [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null
  if [ -n "$HEARTHD_PID" ]; then
    kill -TERM "$HEARTHD_PID" 2>/dev/null || true
    wait "$HEARTHD_PID" 2>/dev/null || true
  fi
  for c in nginx big; do lxc-stop -k -P "$DATA/containers" -n "$c" >/dev/null 2>&1 || true; done
  awk -v w="$WORK" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "bench services: $*" >&2
  [ -f "$WORK/hearthd.err" ] && tail -n 20 "$WORK/hearthd.err" >&2
  exit 1
}

echo "packing nginx and a ~$((BALLAST_MIB + 50)) MB package ..."
"$BIN/hearth" key generate --out "$WORK/key.pem" >/dev/null
"$BIN/hearth" key public "$WORK/key.pem" >"$WORK/pub.pem"
"$BIN/hearth" s9pk pack sdk/examples/nginx --key "$WORK/key.pem" -o "$WORK/nginx.s9pk" 2>"$WORK/pack.err" \
  || { cat "$WORK/pack.err" >&2; fail "pack nginx"; }
cp -r sdk/examples/nginx "$WORK/big"
sed -i 's/^id = "nginx"/id = "big"/' "$WORK/big/hearth.toml"
mkdir -p "$WORK/big/overlay/opt/ballast"
head -c "$((BALLAST_MIB * 1024 * 1024))" /dev/urandom >"$WORK/big/overlay/opt/ballast/random.bin"
"$BIN/hearth" s9pk pack "$WORK/big" --key "$WORK/key.pem" -o "$WORK/big.s9pk" 2>"$WORK/pack.err" \
  || { cat "$WORK/pack.err" >&2; fail "pack big"; }
rm -rf "$WORK/big"
BIG_BYTES=$(stat -c %s "$WORK/big.s9pk")

"$BIN/hearthd" --data-dir "$DATA" --listen 127.0.0.1:0 --container-init "$INIT" \
  >"$WORK/hearthd.out" 2>"$WORK/hearthd.err" &
HEARTHD_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^hearthd listening on \(http:[^ ]*\).*/\1/p' "$WORK/hearthd.out" | head -n 1)"
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || fail "hearthd did not start"

# The driver: JSON-RPC over one keep-alive connection, timing in Python.
cat >"$WORK/driver.py" <<'PY'
import http.client, json, os, shutil, signal, socket, subprocess, sys, time, urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
data = sys.argv[2]
cookie = open(os.path.join(data, "run/local.cookie")).read().strip()
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)

def rpc(method, params=None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
    conn.request("POST", "/rpc/v1", body, {"content-type": "application/json",
                                          "x-hearth-local-auth": cookie})
    reply = json.loads(conn.getresponse().read())
    if "error" in reply:
        raise SystemExit(f"{method}: {reply['error']}")
    return reply["result"]

def get(pointer):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "db.dump",
                       "params": {"pointer": pointer}})
    conn.request("POST", "/rpc/v1", body, {"content-type": "application/json",
                                          "x-hearth-local-auth": cookie})
    reply = json.loads(conn.getresponse().read())
    if "error" in reply:
        if reply["error"].get("data", {}).get("what") == "pointer":
            return None  # nothing there
        raise SystemExit(f"db.dump {pointer}: {reply['error']}")
    return reply["result"]["value"]

def wait(pred, what, limit=180.0, step=0.005):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return time.monotonic()
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")

def status(pid, key):
    return (get(f"/packageData/{pid}/statusInfo") or {}).get(key)

def health(pid, check):
    h = status(pid, "health") or {}
    return (h.get(check) or {}).get("result")

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def http_ok(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

def timed(cmd):
    t = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t

cmd = sys.argv[3]
if cmd == "setup":
    rpc("setup.complete", {"password": "password123", "hostname": "bench"})
    rpc("package.trust.add", {"publicKey": open(sys.argv[4]).read()})
elif cmd == "install":
    pkg, runs, work = sys.argv[4], int(sys.argv[5]), sys.argv[6]
    installs, baselines = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        shutil.copy(pkg, os.path.join(data, "import"))  # {path}: only <data>/import
        rpc("package.install", {"path": os.path.basename(pkg)})
        t1 = time.monotonic()
        rpc("package.start", {"id": "big"})
        t2 = wait(lambda: status("big", "state") == "running", "big running")
        installs.append((t2 - t0, t1 - t0))
        image = os.path.join(data, "packages/images/big/main.squashfs")
        subprocess.run(["cp", image, os.path.join(work, "image.copy")], check=True)
        rpc("package.stop", {"id": "big"})
        wait(lambda: status("big", "state") == "stopped", "big stopped", step=0.05)
        rpc("package.uninstall", {"id": "big"})
        wait(lambda: get("/packageData/big") is None, "big removed", step=0.05)
        # Baseline: hash once, write the two copies an install writes, durably (cp +
        # fsync, as the install syncs both before it records them).
        b = timed(["b3sum", "--num-threads", "1", pkg])
        b += timed(["cp", pkg, os.path.join(work, "pkg.copy")])
        b += timed(["sync", os.path.join(work, "pkg.copy")])
        b += timed(["cp", os.path.join(work, "image.copy"), os.path.join(work, "image.copy2")])
        b += timed(["sync", os.path.join(work, "image.copy2")])
        baselines.append(b)
        for f in ("pkg.copy", "image.copy", "image.copy2"):
            os.remove(os.path.join(work, f))
        subprocess.run(["sync"], check=True)
    best = min(installs)
    base = min(baselines)
    print(f"install + start to running: best {best[0]:6.2f} s of {runs} "
          f"(package.install alone {best[1]:.2f} s; all: "
          + ", ".join(f"{i[0]:.2f}" for i in installs) + ")")
    print(f"baseline b3sum + 2 x cp+fsync: best {base:6.2f} s (all: "
          + ", ".join(f"{b:.2f}" for b in baselines) + ")")
    print(f"ratio install / baseline: {best[0] / base:.2f}x")
elif cmd == "nginx-install":
    rpc("package.install", {"path": sys.argv[4]})
elif cmd == "nginx":
    cycles, rootfs = int(sys.argv[4]), sys.argv[5]
    index = get("/packageData/nginx/container/index")
    addr = f"10.88.0.{index}"
    rpc("package.start", {"id": "nginx"})
    wait(lambda: health("nginx", "web") == "success", "nginx healthy")
    lat, page = [], []
    for _ in range(cycles):
        rpc("package.stop", {"id": "nginx"})
        wait(lambda: status("nginx", "state") == "stopped" and status("nginx", "health") is None,
             "nginx stopped", step=0.02)
        t0 = time.monotonic()
        rpc("package.start", {"id": "nginx"})
        t1 = wait(lambda: health("nginx", "web") == "success", "nginx healthy")
        lat.append((t1 - t0) * 1000)
    if not http_ok(addr, 80):
        raise SystemExit("nginx page not served after the cycles")
    # Baseline: the same binary and files, straight on the host (chroot, no container).
    base = []
    for _ in range(cycles):
        t0 = time.monotonic()
        p = subprocess.Popen(["chroot", rootfs, "nginx", "-c", "/etc/nginx/bench.conf",
                              "-g", "daemon off;"])
        wait(lambda: http_ok("127.0.0.1", 18080), "host nginx answering", limit=30, step=0.001)
        base.append((time.monotonic() - t0) * 1000)
        p.send_signal(signal.SIGQUIT)
        p.wait()
    p50, p90 = pct(lat, 50), pct(lat, 90)
    print(f"nginx package start -> healthy over {cycles} cycles: p50 {p50:.0f} ms, "
          f"p90 {pct(lat, 90):.0f} ms, min {min(lat):.0f} ms, max {max(lat):.0f} ms "
          f"(target p50 <= 300 ms: {'ok' if p50 <= 300 else 'OVER TARGET'})")
    print(f"baseline nginx on the host (chroot) -> first HTTP 200: p50 {pct(base, 50):.0f} ms, "
          f"p90 {pct(base, 90):.0f} ms")
    print(f"ratio p50 package / host: {p50 / pct(base, 50):.1f}x")
    if p50 > 300:
        raise SystemExit("TARGET MISSED: nginx start-to-healthy p50 > 300 ms")
PY
drive() { python3 "$WORK/driver.py" "$URL" "$DATA" "$@"; }
drive setup "$WORK/pub.pem"

echo "== a. install of a $((BIG_BYTES / 1000000)) MB package (package.install {path} + start to running)"
cat "$WORK/big.s9pk" >/dev/null
drive install "$WORK/big.s9pk" "$RUNS" "$WORK"

echo "== b. nginx start-to-healthy, $CYCLES cycles"
drive nginx-install "$WORK/nginx.s9pk"
# The baseline's root: the package's own image as installed, unpacked, with the same
# nginx.conf except that the site listens on a loopback port (the host may use 80).
unsquashfs -q -no-progress -d "$WORK/nginx-root" "$DATA/packages/images/nginx/main.squashfs" >/dev/null
sed 's|include /etc/nginx/sites-enabled/\*;|server { listen 127.0.0.1:18080; root /var/www/html; }|' \
  "$WORK/nginx-root/etc/nginx/nginx.conf" >"$WORK/nginx-root/etc/nginx/bench.conf"
grep 18080 "$WORK/nginx-root/etc/nginx/bench.conf" >/dev/null || fail "no bench.conf"
drive nginx "$CYCLES" "$WORK/nginx-root"
