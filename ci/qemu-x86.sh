# Sourced by the x86_64 boot tests (ci/vm-test.sh, init/tests/mbr-boot.sh): qemu TCG +
# OVMF on "$tmp/disk.img" with "$tmp/vars.fd", the serial console in "$log", hearthd's
# port 80 forwarded to 127.0.0.1:$port, a monitor socket at "$tmp/monitor". The caller
# defines tmp, log, port, qpid (empty), fail() and VM_NAME (the prefix of printed lines).

boot_vm() { # LIMIT_SECONDS
  rm -f "$tmp/monitor"
  : >"$log"
  timeout "$1" qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -smp 2 \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
    -drive if=pflash,format=raw,file="$tmp/vars.fd" \
    -drive file="$tmp/disk.img",format=raw,if=virtio \
    -netdev user,id=n,hostfwd=tcp:127.0.0.1:"$port"-:80 -device virtio-net-pci,netdev=n \
    -display none -serial file:"$log" -monitor unix:"$tmp/monitor",server,nowait &
  qpid=$!
}
# One qemu monitor command, waiting for the prompt that follows its execution: closing the
# socket before qemu has read the command can drop it (a lost Ctrl-Alt-Del).
monitor_cmd() {
  python3 - "$tmp/monitor" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
def until_prompt(buf=b""):
    while b"(qemu)" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("qemu monitor closed the connection")
        buf += chunk
    return buf
until_prompt()
s.sendall(sys.argv[2].encode() + b"\n")
until_prompt()
s.close()
PY
}
stop_vm() { [ -n "$qpid" ] && { kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; }; qpid=""; }
# Waits for qemu to exit by itself (power off).
wait_poweroff() {
  for _ in $(seq 1 120); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$qpid" 2>/dev/null && fail "qemu still running 60 s after the power-off request"
  wait "$qpid" 2>/dev/null || true
  qpid=""
}
cookies="$tmp/cookies"
rpc() { # BODY [TIMEOUT]
  curl -s -m "${2:-2}" -b "$cookies" -c "$cookies" "http://127.0.0.1:$port/rpc/v1" \
    -H 'content-type: application/json' -d "$1" || true
}
wait_for_hearthd() { # WHAT [T0] [TRIES]
  local answer="" t0
  t0=$(date +%s.%N)
  for _ in $(seq 1 "${3:-200}"); do
    answer="$(rpc '{"jsonrpc":"2.0","id":1,"method":"server.echo","params":{"message":"hello"}}')"
    case "$answer" in *'"result":"hello"'*) break ;; esac
    kill -0 "$qpid" 2>/dev/null || fail "qemu exited"
    sleep 1
  done
  case "$answer" in *'"result":"hello"'*) ;; *) fail "hearthd did not answer ($1)" ;; esac
  printf '%s: %s: hearthd answered server.echo after %.1f s (TCG)\n' "$VM_NAME" "$1" \
    "$(echo "$(date +%s.%N) - ${2:-$t0}" | bc)"
}
hearth_lines() { grep -a 'hearth-init:' "$log" | tr -d '\r' | sed 's/^/    /'; }
