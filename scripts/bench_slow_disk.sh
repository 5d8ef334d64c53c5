#!/usr/bin/env bash
# A first run over a corpus on a slow disk (issue #19): `cptc run --only tokenize:big@base --only
# split:big` on a fresh store and a cold page cache, with the disk's reads throttled to MBPS MB/s
# (a cgroup-v1 blkio limit), for each cptc binary given, interleaved, N rounds; prints wall and CPU
# seconds, peak RSS and the 512-byte blocks read from the disk. Needs root and cgroup v1's blkio
# controller; DIR holds a corpus, `hf/` and `recipe.cpt` as `scripts/bench_stream.sh` writes
# them. Not part of CI.
# Usage: scripts/bench_slow_disk.sh DIR MBPS N BIN...
set -euo pipefail
dir=$1 mbps=$2 n=$3
shift 3
dev=$(findmnt -no MAJ:MIN -T "$dir" | tr -d ' ')
cg=/sys/fs/cgroup/blkio/cptc_slow_disk
mkdir -p "$cg"
echo "$dev $((mbps * 1000000))" > "$cg/blkio.throttle.read_bps_device"
trap 'echo "$dev 0" > "$cg/blkio.throttle.read_bps_device"; rm -rf "$dir/st_slow"' EXIT
cd "$dir"
echo "reads limited to $mbps MB/s on $dev; $(nproc) cores; corpus $(du -sh --apparent-size corpus | cut -f1)"
for _ in $(seq "$n"); do
  for bin in "$@"; do
    rm -rf st_slow
    sync
    echo 3 > /proc/sys/vm/drop_caches
    bash -c "echo \$\$ > $cg/cgroup.procs; exec /usr/bin/time -f '$bin %e s %U user %S sys %M KB %I blocks-in' \
      $bin run recipe.cpt --only tokenize:big@base --only split:big --store st_slow" 2>&1 >/dev/null | tail -1
  done
done
