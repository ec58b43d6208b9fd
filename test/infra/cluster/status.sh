# `cluster.sh status DIR`, sourced by ../cluster.sh: each process `up` started, the containerd shims and the pods'
# processes under them, with their resident memory, and the sum (what the cluster costs the machine).
socket="$dir/containerd/containerd.sock"
total=0
line() { # NAME PID
  local rss
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$2/status" 2>/dev/null)" || return 0
  [[ -n "$rss" ]] || return 0
  total=$((total + rss))
  printf '%-16s %8s %8d MiB\n' "$1" "$2" $((rss / 1024))
}
printf '%-16s %8s %12s\n' PROCESS PID RSS
for daemon in "${DAEMONS[@]}"; do
  if pid="$(our_pid "$daemon")"; then line "$daemon" "$pid"; fi
done
for shim in $(pgrep -f "containerd-shim-runc-v2 .*-address $socket( |\$)" || true); do
  line shim "$shim"
  for child in $(pgrep -P "$shim" || true); do line "  $(cat "/proc/$child/comm" 2>/dev/null)" "$child"; done
done
printf '%-16s %8s %8d MiB\n' total "" $((total / 1024))
