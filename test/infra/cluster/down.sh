# `cluster.sh down DIR`, sourced by ../cluster.sh (its helpers and settings are in scope). Idempotent: a second run,
# or a run after a failed `up`, finds nothing to stop and removes what is left. Order matters: pods are deleted while
# the kubelet runs (their sandboxes stop through CRI: CNI DEL, netns removed), then the kubelet, then the sandboxes
# it left, then containerd and its shims, then the rest; mounts, the bridge and host leftovers last.
[[ -d "$dir" ]] || exit 0
bin="$("$here/build-kubernetes.sh" --path)"
socket="$dir/containerd/containerd.sock"
crictl_() { "$bin/crictl" --runtime-endpoint "unix://$socket" --image-endpoint "unix://$socket" --timeout 10s "$@"; }

if our_pid kubelet >/dev/null && our_pid kube-apiserver >/dev/null && [[ -x "$bin/kubectl" ]]; then
  KUBECACHEDIR="$dir/kubectl-cache" "$bin/kubectl" --kubeconfig "$dir/kubeconfig" delete pods --all --all-namespaces --grace-period=0 --force \
    --wait=false >/dev/null 2>&1 || true
  for _ in $(seq 100); do
    [[ -z "$(crictl_ pods --state ready -q 2>/dev/null)" ]] && break
    sleep 0.2
  done
fi
stop_daemon kubelet

if our_pid containerd >/dev/null && [[ -x "$bin/crictl" ]]; then
  for sandbox in $(crictl_ pods -q 2>/dev/null); do
    crictl_ stopp "$sandbox" >/dev/null 2>&1 || true
    crictl_ rmp --force "$sandbox" >/dev/null 2>&1 || true
  done
fi
stop_daemon containerd
# Shims outlive containerd by design; ours are the ones started with our socket.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $socket( |\$)" || true); do kill -KILL "$pid" 2>/dev/null || true; done

for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[i]}"; done

# Mounts below DIR (the kubelet's volumes, containerd's rootfs and shm), deepest first.
awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r mount; do
  umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || say "cannot unmount $mount"
done

# What the kubelet and CNI leave on the host: only ours.
if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then ip link delete "$CNI_BRIDGE" || say "cannot delete the bridge $CNI_BRIDGE"; fi
rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null || true
[[ -d /var/log/containers ]] && find /var/log/containers -maxdepth 1 -lname "$dir/*" -delete 2>/dev/null
if [[ -f "$dir/run/sysctls" ]]; then
  while read -r sysctl value; do
    [[ "$(cat "/proc/sys/$sysctl")" == "$value" ]] || echo "$value" >"/proc/sys/$sysctl" || say "cannot restore $sysctl=$value"
  done <"$dir/run/sysctls"
fi
if [[ -f "$dir/run/host-dirs-created" ]]; then
  while read -r host_dir; do
    [[ -d "$host_dir" ]] || continue
    if [[ "$host_dir" == /var/lib/kubelet || "$host_dir" == /var/log/pods ]]; then
      # Only this cluster's kubelet ever wrote there (up refused to start beside another one).
      awk -v d="$host_dir/" 'index($2, d) == 1 {found = 1} END {exit !found}' /proc/self/mounts ||
        rm -rf --one-file-system "$host_dir"
    else
      # Shared with other runtimes (another containerd may be running): remove only what is empty.
      find "$host_dir" -depth -type d -empty -delete 2>/dev/null || true
    fi
  done <"$dir/run/host-dirs-created"
fi

# Everything but the logs, unless something is still mounted there (never delete through a mount).
if awk -v d="$dir/" 'index($2, d) == 1 {found = 1} END {exit !found}' /proc/self/mounts; then
  say "mounts remain below $dir; leaving its files in place"
  exit 1
fi
find "$dir" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} +
say "down: $dir (logs kept in $dir/logs)"
