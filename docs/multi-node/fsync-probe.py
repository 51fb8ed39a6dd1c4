"""The disk reference for the Redis figures: fdatasync after each 700-byte append.

  fsync-probe.py [FILE]   (default /tmp/fsync-probe, removed afterwards)
"""
import os
import sys
import time

path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fsync-probe"
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
xs = []
for _ in range(300):
    os.write(fd, b"x" * 700)
    t = time.perf_counter()
    os.fdatasync(fd)
    xs.append((time.perf_counter() - t) * 1e6)
os.close(fd)
os.unlink(path)
xs.sort()
print(f"fdatasync after a 700-byte append: median {xs[150]:.0f} us, p99 {xs[297]:.0f} us")
