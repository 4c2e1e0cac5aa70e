"""Guest image figures: build time (cold, in a scratch cache, and cached), file sizes, the accelerator
the probe chooses, and the bare QEMU boot of the image (no cloud, no network) to its first console
marker and to "ssh ready" — the physical limit the cloud's boot benchmark compares against.

Run:  .venv/bin/python bench/boot_bare.py [--runs 5] [--accel tcg|kvm]

`bare_boot(runs, accel)` is importable for other benchmarks (bench/boot.py measures it in the same
run as the cloud's boots).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stratus.guest import GuestImage, accel, build  # noqa: E402
from stratus.guest.boot import MARKER, bare_boot_marker_times  # noqa: E402

SSH_READY = "STRATUS-GUEST: ssh ready"


def bare_boot(guest: GuestImage, accel_name: str, runs: int) -> dict[str, list[float]]:
    """Seconds to the first marker and to "ssh ready" for `runs` sequential bare boots."""
    first, ssh = [], []
    for _ in range(runs):
        times = bare_boot_marker_times(guest, accel_name, [MARKER, SSH_READY])
        first.append(times[MARKER])
        ssh.append(times[SSH_READY])
    return {"first_marker": first, "ssh_ready": ssh}


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accel", choices=["kvm", "tcg"], default=None, help="default: what the probe chooses")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="stratus-bench-guest-"))
    try:
        started = time.monotonic()
        build(scratch)
        cold = time.monotonic() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    build()  # the shared cache, so that the cached figure is a real hit
    started = time.monotonic()
    guest = build()
    cached = time.monotonic() - started
    print(f"build: cold {cold:.1f} s, cached {cached:.2f} s")
    print(f"files: disk {_mib(guest.disk)} (qcow2), kernel {_mib(guest.kernel)} ({guest.kernel.name}), "
          f"initrd {_mib(guest.initrd)}")
    started = time.monotonic()
    chosen = args.accel or accel.choose()
    print(f"accelerator: {chosen} (choice took {time.monotonic() - started:.1f} s; /dev/kvm opens: "
          f"{accel.kvm_device_opens()})")
    figures = bare_boot(guest, chosen, args.runs)
    for name, values in figures.items():
        print(f"bare boot to {name.replace('_', ' ')} ({chosen}, {args.runs} runs): "
              f"p50 {statistics.median(values):.2f} s, min {min(values):.2f} s, max {max(values):.2f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
