#!/bin/sh
# Collects what the runtime image holds into /rootfs: the rivulet binary and the shared
# libraries it loads (found by ldd, so whatever the architecture), bash and its libraries for
# the health check, the rivulet user, /data and /tmp. The image is `FROM scratch` plus this:
# nothing else of Debian, so no shell tools, no package manager.
set -eu
mkdir -p /rootfs/usr/local/bin /rootfs/bin /rootfs/etc /rootfs/tmp /rootfs/data
cp /usr/local/bin/rivulet /rootfs/usr/local/bin/rivulet
cp /bin/bash /rootfs/bin/bash
for f in /usr/local/bin/rivulet /bin/bash; do
    ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do
    cp --parents -L "$lib" /rootfs
done
grep -E '^(root|rivulet):' /etc/passwd > /rootfs/etc/passwd
grep -E '^(root|rivulet):' /etc/group > /rootfs/etc/group
# How host names are looked up (Docker's own DNS for the compose services).
cp /etc/nsswitch.conf /rootfs/etc/nsswitch.conf
chmod 1777 /rootfs/tmp
chown rivulet:rivulet /rootfs/data
