"""Compile the pipelines to KFP IR YAML: ``python -m pipelines.compile [--out DIR]``."""

import argparse
from pathlib import Path

from kfp import compiler

from pipelines.training import PIPELINE_NAME, training_pipeline

PIPELINES = {PIPELINE_NAME: training_pipeline}


def compile_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, func in PIPELINES.items():
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline_func=func, package_path=str(path))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("build/pipelines"), help="output directory")
    args = parser.parse_args(argv)
    for path in compile_all(args.out):
        print(path)


if __name__ == "__main__":
    main()
