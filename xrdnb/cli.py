"""Command line: ``xrdnb peaks``, ``xrdnb pattern``, ``xrdnb sweep``, ``xrdnb relax`` and ``xrdnb landscapes``.

Every command takes many structures (CIF paths or benchmark names). A structure that
cannot be used gives one line on stderr naming it and the problem; the others are still
processed, and the exit code is 2 if any failed.

Examples::

    xrdnb peaks BPO4 my.cif --wavelength MoKa
    xrdnb pattern data/*.cif --out patterns/
    xrdnb sweep --profile book --results results/book --workers 2
    xrdnb sweep --config my-sweep.yml --scheduler tcp://10.0.0.5:8786
    xrdnb relax --profile book results/book --workers 2
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT = 2


def _wavelength(text: str) -> float:
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    if text in WAVELENGTHS:
        return float(WAVELENGTHS[text])
    try:
        value = float(text)
    except ValueError:
        names = ", ".join(WAVELENGTHS)
        raise argparse.ArgumentTypeError(f"not a wavelength in Å nor one of {names}: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"wavelength must be a positive finite number of Å, got {text!r}")
    return value


def _number(low: float, high: float, what: str):
    """An argparse type: a finite float with ``low < x <= high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not (math.isfinite(value) and low < value <= high):
            raise argparse.ArgumentTypeError(f"{what} must be in ({low:g}, {high:g}], got {text!r}")
        return value

    return parse


def _workers(text: str) -> int | str:
    from .workers import resolve_workers

    if text == "auto":
        return text
    try:
        return resolve_workers(text, 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_grid_options(parser: argparse.ArgumentParser, *, grid: str, spec: str, runs: str, steps: str) -> None:
    """The options ``xrdnb sweep`` and ``xrdnb relax`` share: which grid, where its results go, where it runs."""
    parser.add_argument("--profile", default="smoke", help=f"named {grid}: smoke, book or paper (default smoke)")
    parser.add_argument("--config", type=Path, help=f"YAML or JSON file of {spec} fields (overrides the profile)")
    parser.add_argument("--results", type=Path, help="results folder (default results/<profile>)")
    parser.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="local worker processes, 0 for in-process (default auto: one per core)",
    )
    parser.add_argument("--device", default="cpu", help=f"where {runs} runs: cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--structures", nargs="+", help="override the structures")
    parser.add_argument("--copies", type=int, dest="n_copies", help="override copies per cell")
    parser.add_argument("--max-steps", type=int, help=f"override the {steps}")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    parser.add_argument("--list", action="store_true", help="list the cells and whether they are done, run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``xrdnb`` command line: ``peaks``, ``pattern``, ``sweep``, ``relax`` and ``landscapes``."""
    parser = argparse.ArgumentParser(
        prog="xrdnb", description="Differentiable powder XRD (Segal et al. 2026, SI §1.2)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("structures", nargs="+", metavar="CIF", help="CIF files or benchmark names (e.g. BPO4)")
        p.add_argument(
            "--wavelength",
            type=_wavelength,
            default=1.54184,
            help="Å, or a name such as CuKa, MoKa (default CuKa 1.54184)",
        )
        p.add_argument(
            "--two-theta-max",
            type=_number(0, 179.999, "--two-theta-max (degrees)"),
            default=90.0,
            help="upper end of 2θ in degrees (default 90)",
        )
        p.add_argument("--out", type=Path, help="folder for one CSV per structure")

    peaks = sub.add_parser("peaks", help="list reflections merged as pymatgen does (h k l, 2θ, d, intensities)")
    common(peaks)
    peaks.set_defaults(run=_run_peaks)

    pattern = sub.add_parser("pattern", help="write the pseudo-Voigt pattern (two_theta, intensity) as CSV")
    common(pattern)
    pattern.add_argument(
        "--two-theta-step",
        type=_number(0, 10, "--two-theta-step (degrees)"),
        default=0.01,
        help="grid step in degrees (default 0.01)",
    )
    pattern.add_argument("--method", choices=["auto", "dense", "fast"], default="auto", help="renderer (default auto)")
    pattern.set_defaults(run=_run_pattern)

    sweep = sub.add_parser("sweep", help="run (or resume) an optimisation sweep; finished cells are skipped")
    _add_grid_options(sweep, grid="sweep", spec="SweepSpec", runs="gradient descent", steps="step budget")
    sweep.add_argument(
        "--batch-cells",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="advance the cells of a structure and noise type as one batch (default: on with CUDA, off on the CPU)",
    )
    sweep.add_argument(
        "--estimate",
        action="store_true",
        help="print the plan (cells, copies, expected steps, measured cost per copy-step, wall time for --workers) "
        "and run nothing",
    )
    sweep.add_argument(
        "--only",
        nargs="+",
        metavar="CELL_ID",
        help="run only these cells of the grid (ids as --list prints them; any learning rate of a run), and "
        "in a batched stage the other cells of their batches, e.g. to recompute cells of a shipped result set",
    )
    sweep.add_argument(
        "--pack",
        action="store_true",
        help="pack the finished cells of --results into a shipped result set (manifest.json, sweep_rows.csv.gz, "
        "sweep_loss.npz; xrdnb.result_sets) and run nothing",
    )
    sweep.set_defaults(run=None)

    relax = sub.add_parser(
        "relax",
        help="run (or resume) the CHGNet relaxations of the sweep's distorted copies; finished cells are skipped",
    )
    relax.add_argument("folder", nargs="?", type=Path, help="results folder (the same as --results)")
    _add_grid_options(relax, grid="grid", spec="RelaxSpec", runs="CHGNet", steps="BFGS step limit")

    scapes = sub.add_parser("landscapes", help="compute (or resume) and pack a landscape set of chapters 3 and 5")
    scapes.add_argument("--profile", default="paper", help="xrdnb.landscape_sets.PROFILES key (default paper)")
    scapes.add_argument("--results", type=Path, help="folder of the set (default results/landscapes)")
    scapes.add_argument("--kinds", nargs="+", help="compute only these kinds (fig_s2 fig_s3 roughness cuts energy)")
    scapes.add_argument("--device", default="cpu", help="CHGNet's device for the energy slices (default cpu)")
    scapes.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _fail(command: str, message: str, *, one_line: bool = True) -> int:
    """Print ``xrdnb COMMAND: error: MESSAGE`` on stderr (its first line only, unless not ``one_line``); exit 2."""
    text = f"xrdnb {command}: error: {message}"
    print(text.splitlines()[0] if one_line else text, file=sys.stderr)
    return EXIT_BAD_INPUT


def _unknown_profile(command: str, profile: str, profiles) -> int:
    return _fail(command, f"unknown profile {profile!r}; choose from {', '.join(profiles)}")


def _run_sweep(args) -> int:
    from . import sweep as sw
    from .device import resolve_device

    if args.profile not in sw.PROFILES:
        return _unknown_profile("sweep", args.profile, sw.PROFILES)
    spec = sw.PROFILES[args.profile]
    if args.config:
        try:
            import yaml

            data = yaml.safe_load(args.config.read_text()) or {}
            spec = sw.SweepSpec.from_dict({**_spec_dict(spec), **data})
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            return _fail("sweep", f"{args.config}: {exc}", one_line=False)
    try:
        spec = sw.with_overrides(
            spec, structures=args.structures, n_copies=args.n_copies, max_steps=args.max_steps, seeds=args.seeds
        )
    except ValueError as exc:
        return _fail("sweep", str(exc), one_line=False)
    results = args.results or Path("results") / args.profile
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        return _fail("sweep", str(exc), one_line=False)
    stages = spec.stages(results)  # with the learning-rate selection cells of a profile that has them
    if args.list:
        for name, part in stages:
            if part is None:
                print(f"# {name}: after the selection, one learning rate per run (SweepSpec.stages)")
            for cell in part or []:
                done = "done" if sw.is_finished(results, cell) else "todo"
                print(f"{done}  {cell.cell_id}")
        return 0
    # this process has computed nothing and, on the CPU, not touched CUDA: its workers can be
    # plain forks, which start without importing torch and pymatgen again
    start_method = "fork" if device == "cpu" and "fork" in multiprocessing.get_all_start_methods() else None
    if args.only:
        selection = spec.selection_spec()
        parts = [("evaluation" if spec.staged else "all", spec.cells())]
        parts += [("selection", selection.cells())] if selection else []
        grid = {c.cell_id: (name, c) for name, part in parts for c in part}
        unknown = [i for i in args.only if i not in grid]
        if unknown:
            return _fail("sweep", f"not cells of this sweep: {', '.join(unknown)}")
        only_runs: list[tuple[list, bool]] = []
        for name, part in parts:  # a batched stage reproduces a cell only with the rest of its batch
            named = {i for i in args.only if grid[i][0] == name}
            if not named:
                continue
            batching = sw.stage_batching(name, part, device, batch_cells=args.batch_cells)
            units = batching.units(part)
            only_runs.append(([c for g in units if any(c.cell_id in named for c in g) for c in g], batching.batched))
        stages = [("only", [c for cells, _ in only_runs for c in cells])]
    if args.pack:
        from .result_sets import pack_sweep

        command = f"xrdnb sweep --profile {args.profile}" + (f" --config {args.config}" if args.config else "")
        from .relax_sweep import PROFILES as RELAX_PROFILES

        relax = RELAX_PROFILES.get(args.profile) if not args.config else None  # CHGNet from the same copies
        manifest = pack_sweep(
            spec, results, command=f"{command} --results {results}", profile=args.profile, relax_spec=relax
        )
        cover = manifest["coverage"]["all"]
        print(f"packed {cover['cells_done']} of {cover['cells_total'] or '?'} cells -> {results}")
        return 0
    if args.estimate:  # a two-stage sweep's evaluation is planned before its rates are chosen
        planned = stages if all(part is not None for _, part in stages) else spec.planned_stages()
        return _print_estimate(planned, results, args)
    options = dict(
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
        device=device,
        start_method=start_method,
        batch_cells=args.batch_cells,
    )
    try:  # run_sweep checks the structures and the folder (sweep.check_sweep) before any cell
        if args.only:  # each stage's cells with the batching that stage ran with
            import pandas as pd

            rows = pd.concat(
                [sw.run_sweep(cells, results, **{**options, "batch_cells": batch}) for cells, batch in only_runs]
            )
        else:
            rows = sw.run_stages(spec, results, **options)
    except (ValueError, OSError) as exc:
        return _fail("sweep", str(exc), one_line=False)
    n_cells = (
        sum(len(cells) for cells, _ in only_runs) if args.only else sum(len(p or []) for _, p in spec.stages(results))
    )
    print(f"{n_cells} cells, {len(rows)} rows -> {results / 'cells'}")
    return 0


def _run_relax(args) -> int:
    from . import relax_sweep as rs
    from .device import resolve_device

    def error(message: str) -> int:
        return _fail("relax", message)

    if args.profile not in rs.PROFILES:
        return _unknown_profile("relax", args.profile, rs.PROFILES)
    spec = rs.PROFILES[args.profile]
    try:
        if args.config:
            import yaml

            try:
                data = yaml.safe_load(args.config.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                return error(f"{args.config}: {exc}")
            if not isinstance(data, dict):
                return error(f"{args.config}: expected a mapping of RelaxSpec fields")
            spec = rs.RelaxSpec.from_dict({**_spec_dict(spec), **data})
        spec = spec.with_overrides(
            structures=args.structures, n_copies=args.n_copies, max_steps=args.max_steps, seeds=args.seeds
        )
        device = resolve_device(args.device)
    except (ValueError, TypeError) as exc:
        return error(f"{args.config}: {exc}" if args.config else str(exc))
    results = args.results or args.folder or Path("results") / args.profile
    cells = spec.cells()
    if args.list:
        listed: list[rs.RelaxCell | rs.TruthCell] = [*spec.truth_cells(), *cells]
        for cell in listed:
            print(f"{'done' if rs.is_finished(results, cell) else 'todo'}  {cell.cell_id}")
        return 0
    try:  # workers start as fresh interpreters (relax_sweep default): forks deadlocked after the first phase
        rows = rs.run_relax_sweep(
            cells,
            results,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=not args.quiet,
            device=device,
        )
    except OSError as exc:
        return error(str(exc))
    except rs.RelaxSweepError as exc:
        for name, reason in exc.bad_input.items():
            print(f"xrdnb relax: error: {name}: {reason}", file=sys.stderr)
        for cell_id, reason in exc.failed.items():
            print(f"xrdnb relax: error: cell {cell_id} failed: {reason}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.bad_input else 1
    print(f"{len(cells)} cells, {len(rows)} rows -> {results / 'relax'}")
    return 0


def _run_landscapes(args) -> int:
    from . import landscape_sets as lsets

    if args.profile not in lsets.PROFILES:
        return _unknown_profile("landscapes", args.profile, lsets.PROFILES)
    results = args.results or Path("results") / "landscapes"
    command = f"xrdnb landscapes --profile {args.profile} --results {results}"
    try:
        manifest = lsets.run_landscape_set(
            lsets.PROFILES[args.profile],
            results,
            command=command,
            profile=args.profile,
            device=args.device,
            progress=not args.quiet,
            kinds=tuple(args.kinds or lsets.KINDS),
        )
    except (ValueError, OSError) as exc:
        return _fail("landscapes", str(exc))
    print(f"{manifest['landscapes']['done']} of {manifest['landscapes']['total']} landscapes -> {results / lsets.ROWS}")
    return 0


def _print_estimate(stages, results, args) -> int:
    import pandas as pd

    from . import sweep as sw
    from .estimate import estimate_sweep, format_estimate, summarize_estimate
    from .workers import resolve_workers

    cells = [c for _, part in stages for c in part]
    pending = {name: [c for c in part if not sw.is_finished(results, c)] for name, part in stages}
    n_pending = sum(len(part) for part in pending.values())
    workers = max(1, resolve_workers(args.workers, n_pending))
    print(
        f"{len(cells)} cells, {len(cells) - n_pending} done; estimating the {n_pending} to run on {workers} worker(s)"
    )
    if not n_pending:
        return 0
    tables = []
    for name, part in pending.items():
        if not part:
            continue
        batching = sw.stage_batching(name, part, args.device, batch_cells=args.batch_cells)
        table = estimate_sweep(
            part, progress=not args.quiet, batch_cells=batching.batched, batch_copies=batching.max_copies
        )
        tables.append(table.assign(stage=name))
        if batching.batched:
            print(
                f"{name} cells advance in batches of at most {batching.max_copies} copies per structure and noise type"
            )
    print(format_estimate(summarize_estimate(pd.concat(tables, ignore_index=True), workers), workers))
    print("steps from: 'measured' = the shipped stopping statistics of this rule (xrdnb.estimate.stopping_statistics);")
    print("'budget' = no statistics for this rule, every copy assumed to run to max_steps (an upper bound).")
    return 0


def _spec_dict(spec) -> dict:
    from dataclasses import asdict

    return asdict(spec)


def _label(args, source: str) -> str:
    return args.labels.get(source, Path(source).stem)


def _settings(args, **extra):
    from .pattern import XRDSettings

    return XRDSettings(wavelength=args.wavelength, two_theta_max=args.two_theta_max, **extra)


def _crystal(source: str):
    from .crystal import crystal_from_structure
    from .structures import load_structure

    return crystal_from_structure(load_structure(source))


def _run_peaks(args, source: str) -> None:
    from .peaks import peak_table

    table = peak_table(_crystal(source), _settings(args))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{_label(args, source)}_peaks.csv"
        table.to_csv(path, index=False, float_format="%.8g")
        print(f"{source}: {len(table)} peaks -> {path}")
    else:
        print(f"# {source}: {len(table)} peaks")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6f}"))


def _run_pattern(args, source: str) -> None:
    import numpy as np

    from .pattern import simulate_pattern

    settings = _settings(args, two_theta_step=args.two_theta_step, method=args.method)
    pattern = simulate_pattern(_crystal(source), settings)[0].numpy()
    out = args.out or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_label(args, source)}_pattern.csv"
    data = np.column_stack([settings.grid().numpy(), pattern])
    np.savetxt(path, data, delimiter=",", header="two_theta,intensity", comments="", fmt=["%.4f", "%.8e"])
    print(f"{source}: {settings.n_points} points -> {path}")


def main(argv=None) -> int:
    """Run ``xrdnb ARGV...``; returns the exit status (0, or 2 for bad input, with one line per problem)."""
    from .structures import StructureError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return _run_sweep(args)
    if args.command == "relax":
        return _run_relax(args)
    if args.command == "landscapes":
        return _run_landscapes(args)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: is a file, not a folder")
    try:
        _settings(args, **({"two_theta_step": args.two_theta_step} if args.command == "pattern" else {}))
    except ValueError as exc:  # e.g. a step too coarse for the range
        parser.error(str(exc))
    failed = 0
    args.labels = _unique_labels(args.structures)
    for source in args.structures:
        try:
            args.run(args, source)
        except StructureError as exc:
            print(f"xrdnb {args.command}: error: {exc}", file=sys.stderr)
            failed += 1
        except Exception as exc:  # anything else still costs this input only, in one line
            print(
                f"xrdnb {args.command}: error: {source}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr
            )
            failed += 1
    return EXIT_BAD_INPUT if failed else 0


def _unique_labels(sources) -> dict[str, str]:
    """Output stems per input: the file stem, with ``-2``, ``-3``, ... for later inputs of the same stem."""
    labels: dict[str, str] = {}
    seen: dict[str, int] = {}
    for source in sources:
        stem = Path(source).stem
        seen[stem] = seen.get(stem, 0) + 1
        labels[source] = stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"
    return labels


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
