#!/bin/sh
# Stand-in for sessionfs in the harness's own tests (test_harness.py): takes
# the same arguments, "mounts" a tmpfs on the mount point, logs to stderr and
# unmounts on SIGTERM. FAKE_EXIT=N makes it fail before mounting.
for arg; do mnt=$arg; done
echo "fake sessionfs: $*" >&2
if [ -n "$FAKE_EXIT" ]; then
	echo "fake sessionfs: failing on purpose" >&2
	exit "$FAKE_EXIT"
fi
# The trap first: the harness may send SIGTERM as soon as the mount shows.
trap 'umount "$mnt"; exit 0' TERM
mount -t tmpfs sessionfs-fake "$mnt" || exit 1
while :; do
	sleep 0.1
done
