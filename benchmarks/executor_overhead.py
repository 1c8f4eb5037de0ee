"""Executor overhead per step: a dry run of 10 000 one-second steps on one simulated channel.

    python benchmarks/executor_overhead.py [--steps 10000]

Everything a step costs besides the physics: planning, the transaction that opens it, the
technique start, the poll, storing its points and checkpoint, the journal line. Prints wall time
and CPU time per step (CPU time is less sensitive to other load on the machine). Target: 150 us
per step.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sequencer.runner import run_simulated

PROTOCOL = """campaign: overhead
cells:
  - {{id: s1, kind: symmetric_li, electrolyte: AIOSE, thickness: 300 um, diameter: 16 mm}}
experiments:
  - name: short-steps
    cells: [s1]
    steps:
      - kind: loop
        count: {half}
        steps:
          - {{kind: rest, duration: 1 s, record_every: 1 s}}
          - {{kind: rest, duration: 1 s, record_every: 1 s}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        protocol = Path(tmp) / "overhead.yaml"
        protocol.write_text(PROTOCOL.format(half=args.steps // 2))
        start, cpu = time.perf_counter(), time.process_time()
        outcome = run_simulated(protocol, Path(tmp) / "run", seed=1)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.steps} steps: {total:.2f} s wall including planning and set-up,"
          f" dry run {outcome.wall_s:.2f} s -> {1e6 * outcome.wall_s / args.steps:.0f} us"
          f" per step; CPU {1e6 * cpu / args.steps:.0f} us per step with planning and set-up"
          " (target 150 us)")


if __name__ == "__main__":
    main()
