"""Run the book's benchmarks and record the results (``make bench``).

Discovers ``benchmarks/bench_*.py``; each module exposes ``run(quick: bool) -> list[dict]``
returning rows ``{name, metric, value, unit, spread, notes}`` (extra keys are kept). Results
are merged into ``benchmarks/results.json``: rows of benchmarks that were not run this time
are kept, rows of the benchmarks that ran are replaced. Each run also records the machine
(torch version, threads, CPU count, date) so numbers can be compared honestly.

Usage::

    .venv/bin/python benchmarks/run.py            # all benchmarks, full size
    .venv/bin/python benchmarks/run.py --quick    # small sizes, for a smoke test
    .venv/bin/python benchmarks/run.py --only throughput
    .venv/bin/python benchmarks/run.py --skip book          # all but bench_book (the slow full book build)
    .venv/bin/python benchmarks/run.py --skip book --skip lab
    .venv/bin/python benchmarks/run.py --only rmsnorm    # RMSNorm vs LayerNorm (chapter 4)

``bench_lab`` (slider latency in JupyterLab) and ``bench_book`` (``make book`` time, page
sizes, first render) drive headless Chromium; ``bench_book`` builds the whole book in full
mode twice and takes several minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results.json"
REQUIRED_KEYS = ("name", "metric", "value", "unit", "spread", "notes")


def discover(directory: Path = HERE, only: str | None = None, skip: list[str] | None = None) -> list[Path]:
    """``bench_*.py`` files in ``directory`` whose stem contains ``only`` (if given) and none of ``skip``, sorted."""
    paths = sorted(directory.glob("bench_*.py"))
    if only:
        paths = [p for p in paths if only.lower() in p.stem.lower()]
    for s in skip or []:
        paths = [p for p in paths if s.lower() not in p.stem.lower()]
    return paths


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"{path.name} has no run(quick: bool) -> list[dict] function")
    return module


def check_rows(bench: str, rows) -> list[dict]:
    """Rows as returned by a benchmark, checked for the required keys and a finite value."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TypeError(f"{bench}.run() must return a list of dicts, got {type(rows).__name__}")
    for r in rows:
        missing = [k for k in REQUIRED_KEYS if k not in r]
        if missing:
            raise ValueError(f"{bench}: row {r.get('name', r)!r} lacks keys {missing}")
        if not isinstance(r["value"], (int, float)) or not math.isfinite(r["value"]):
            raise ValueError(f"{bench}: row {r['name']!r} has a non-finite value {r['value']!r}")
    return rows


def machine_info() -> dict:
    """Where and with what the numbers were measured."""
    import torch

    info = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def load_results(path: Path) -> dict:
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("rows"), list):
                data.setdefault("runs", {})
                return data
        except json.JSONDecodeError:
            print(f"warning: {path} is not valid JSON; starting a new one", file=sys.stderr)
    return {"rows": [], "runs": {}}


def merge(results: dict, bench: str, rows: list[dict], run_info: dict) -> dict:
    """Replace ``bench``'s rows and run info in ``results``; keep every other benchmark's."""
    kept = [r for r in results["rows"] if r.get("bench") != bench]
    results["rows"] = kept + [{"bench": bench, **r} for r in rows]
    results["runs"][bench] = run_info
    return results


def format_value(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(rows: list[dict]) -> str:
    """A plain-text table of the rows (name, value with unit, spread), then the notes."""
    head = ("benchmark", "name", "value", "unit", "spread")
    body = [
        (
            r.get("bench", ""),
            r["name"],
            format_value(r["value"]),
            str(r["unit"]),
            "-" if r["spread"] is None else str(r["spread"]),
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for cells in body:
        lines.append("  ".join(c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    notes = [f"- {r['name']}: {r['notes']}" for r in rows if r.get("notes")]
    if notes:
        lines += ["", "notes:"] + notes
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, noisier numbers)")
    parser.add_argument("--only", metavar="SUBSTR", help="run only benchmarks whose file name contains SUBSTR")
    parser.add_argument(
        "--skip",
        metavar="SUBSTR",
        action="append",
        default=[],
        help="skip benchmarks whose file name contains SUBSTR (repeatable), e.g. --skip book",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file (JSON)")
    args = parser.parse_args(argv)

    paths = discover(HERE, args.only, args.skip)
    if not paths:
        print(f"no benchmarks match --only {args.only!r} / --skip {args.skip!r} in {HERE}", file=sys.stderr)
        return 2
    results = load_results(args.output)
    machine = machine_info()
    results["machine"] = machine
    failed, ran = [], []
    for path in paths:
        bench = path.stem
        print(f"running {bench} ({'quick' if args.quick else 'full'}) ...", flush=True)
        start = time.perf_counter()
        try:
            rows = check_rows(bench, load_module(path).run(quick=args.quick))
        except Exception:  # report and go on with the other benchmarks
            traceback.print_exc()
            failed.append(bench)
            continue
        seconds = time.perf_counter() - start
        merge(results, bench, rows, {**machine, "quick": args.quick, "seconds": round(seconds, 1)})
        ran.append(bench)
        print(f"  done in {seconds:.1f} s", flush=True)

    if ran:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.output}")
    print(
        f"torch {machine['torch']}, {machine['torch_threads']} threads, "
        f"{machine['cpu_count']} CPUs, {machine['processor']}, {machine['date']}\n"
    )
    print(table([r for r in results["rows"] if r.get("bench") in ran]))
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
