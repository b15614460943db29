#!/usr/bin/env bash
# Reserve hugepages and mount hugetlbfs for shoal-dataplane (DPDK).
#
# Idempotent: run it at every boot (shoal-hugepages.service does) or by
# hand; it only raises the reservation when it is below the target and only
# mounts when nothing is mounted there. It never lowers a reservation another
# program may be using.
#
# Settings (environment, or /etc/default/shoal-hugepages under systemd):
#   SHOAL_HUGEPAGES       pages to reserve in total (default 1024)
#   SHOAL_HUGEPAGE_KB     page size in kB: 2048 (2 MiB, default) or 1048576 (1 GiB;
#                         1 GiB pages are usually only reliable when reserved on the
#                         kernel command line: hugepagesz=1G hugepages=N)
#   SHOAL_HUGEPAGE_MOUNT  hugetlbfs mount point (default /dev/hugepages)
#
# Size it for dataplane.mbufs (about 2.2 KiB each) plus the flow tables; the
# EAL prints how much it got. Needs root. Exit status 0 when the target is
# reserved and mounted, 1 otherwise (the message says what is missing).
#
# Usage: deploy/hugepages.sh [--check]
#   --check   only report; change nothing (exit 1 if not ready)
set -euo pipefail

pages=${SHOAL_HUGEPAGES:-1024}
size_kb=${SHOAL_HUGEPAGE_KB:-2048}
mnt=${SHOAL_HUGEPAGE_MOUNT:-/dev/hugepages}
check_only=false
[[ ${1:-} == --check ]] && check_only=true

sys=/sys/kernel/mm/hugepages/hugepages-${size_kb}kB
if [[ ! -d $sys ]]; then
    echo "hugepages.sh: this kernel has no ${size_kb} kB hugepages ($sys missing);" \
         "supported sizes: $(ls /sys/kernel/mm/hugepages 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
fi

have=$(cat "$sys/nr_hugepages")
if (( have < pages )); then
    if $check_only; then
        echo "hugepages.sh: $have of $pages ${size_kb} kB pages reserved" >&2
        exit 1
    fi
    # Compact memory first so the kernel can find contiguous pages.
    echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
    echo "$pages" > "$sys/nr_hugepages"
    have=$(cat "$sys/nr_hugepages")
    if (( have < pages )); then
        echo "hugepages.sh: asked for $pages ${size_kb} kB pages, the kernel gave $have" \
             "(memory too fragmented: reserve them at boot with hugepages=$pages on the kernel" \
             "command line, or lower SHOAL_HUGEPAGES)" >&2
        exit 1
    fi
fi
echo "hugepages.sh: $have ${size_kb} kB pages reserved"

if mountpoint -q "$mnt" && [[ $(stat -f -c %T "$mnt") == hugetlbfs ]]; then
    echo "hugepages.sh: hugetlbfs already mounted on $mnt"
elif $check_only; then
    echo "hugepages.sh: no hugetlbfs mounted on $mnt" >&2
    exit 1
else
    mkdir -p "$mnt"
    mount -t hugetlbfs -o "pagesize=${size_kb}K" nodev "$mnt"
    echo "hugepages.sh: mounted hugetlbfs (pagesize ${size_kb} kB) on $mnt"
fi
