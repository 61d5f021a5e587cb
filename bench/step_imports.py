"""Per-step import time of a kfp.local run: what each step's fresh interpreter spent importing.

    PYTHONPROFILEIMPORTTIME=1 mlcycle demo --rows 20000 --registry /tmp/reg --runs /tmp/runs
    python bench/step_imports.py /tmp/runs/mlcycle-training-*/pipeline.log

kfp.local copies every step's output (stderr included) into ``pipeline.log``; ``-X importtime`` lines there are
summed per step over the top-level imports (their cumulative time), and the costliest are named. Timings taken
with importtime on are inflated by it, and by the machine's load: compare steps within one run.
"""

import argparse
import re
from collections import defaultdict

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([\w-]+)'")
IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\S+)\s*$")  # top level: no indent before the name


def step_imports(lines) -> dict[str, dict[str, float]]:
    """{step: {top-level module: cumulative seconds}} in run order."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    step = None
    for raw in lines:
        line = ANSI.sub("", raw)
        if m := STARTED.search(line):
            step = m.group(1)
        elif step and (m := IMPORT.search(line)):
            out[step][m.group(3)] = out[step].get(m.group(3), 0.0) + int(m.group(2)) / 1e6
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="pipeline.log of a run made with PYTHONPROFILEIMPORTTIME=1")
    parser.add_argument("--top", type=int, default=4, help="costliest imports named per step")
    args = parser.parse_args()
    with open(args.log, errors="replace") as f:
        found = step_imports(f)
    if not found:
        raise SystemExit(f"{args.log}: no import times (run the pipeline with PYTHONPROFILEIMPORTTIME=1)")
    for step, mods in found.items():
        top = sorted(mods.items(), key=lambda kv: -kv[1])[: args.top]
        print(f"{step:<16} {sum(mods.values()):6.2f} s  " + ", ".join(f"{n} {s:.2f}" for n, s in top))


if __name__ == "__main__":
    main()
