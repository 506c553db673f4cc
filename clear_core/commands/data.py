"""`clear-studio ingest | datasets | export`: bring a dataset file into a workspace, list them, write one out."""

from __future__ import annotations

import os
import sys
import time

from ..errors import ClearError
from ..names import EXPORT_FORMATS, EXPORT_VARIANTS, INGEST_FORMATS


def register(subparsers, default_workspace: str) -> None:
    ws_help = f"workspace file (default: {default_workspace})"

    p = subparsers.add_parser("ingest", help="import a dataset file (JSONL, JSON, CSV, Parquet) into the workspace")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", default="auto", choices=INGEST_FORMATS, help="dataset format (default: detect)")
    p.add_argument("--prompt-col", default=None, help="columns format: the prompt column (or a '{col}' template)")
    p.add_argument("--response-col", default=None, help="columns format: the response column")
    p.add_argument("--name", default=None, help="dataset name (default: the file name without extension)")
    p.add_argument("--skip-bad-rows", action="store_true", help="import the good rows and list the bad ones")
    p.add_argument("--replace", action="store_true", help="replace a dataset of that name with other content "
                   "(its runs and decisions are deleted)")
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=ingest)

    p = subparsers.add_parser("datasets", help="list the datasets of the workspace")
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.set_defaults(func=datasets)

    p = subparsers.add_parser("export", help="write a dataset out: curated (decisions applied) or all rows + scores")
    p.add_argument("dataset", metavar="NAME")
    p.add_argument("--to", required=True, metavar="PATH", help="output file; the manifest goes to PATH.manifest.json")
    p.add_argument("--format", default="same", choices=EXPORT_FORMATS,
                   help="file type (default: the input's own)")
    p.add_argument("--variant", default="curated", choices=EXPORT_VARIANTS,
                   help="curated rows only, or all rows with clear_* score and decision columns")
    p.add_argument("--run", type=int, default=None, metavar="RUN_ID",
                   help="score run for --drop-below and the clear_* columns (default: the latest)")
    p.add_argument("--drop-below", type=float, default=None, metavar="T",
                   help="also leave out undecided rows whose confidence is below T")
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.set_defaults(func=export)


def _open(path: str, must_exist: bool):
    from ..store import Workspace

    if must_exist and path != ":memory:" and not os.path.exists(path):
        raise ClearError(f"no workspace at {path}; import a dataset first with `clear-studio ingest FILE "
                         f"--workspace {path}`")
    return Workspace.open(path)


def _mapping(args) -> dict | None:
    if args.prompt_col is None and args.response_col is None:
        return None
    if args.prompt_col is None or args.response_col is None:
        raise ClearError("--prompt-col and --response-col go together")
    if args.format not in ("auto", "columns"):
        raise ClearError(f"--prompt-col/--response-col map columns; they do not go with --format {args.format}")
    return {"prompt": args.prompt_col, "response": args.response_col}


def ingest(args) -> int:
    from ..formats import read_dataset
    from ..formats.files import check_file

    check_file(args.file)  # before the workspace is opened: a folder or a device is named as such
    mapping = _mapping(args)
    fmt = "columns" if mapping is not None else args.format
    name = args.name or os.path.splitext(os.path.basename(args.file))[0]
    # An existing workspace is opened first, so one in use fails before a long read; a new one is created only
    # once the file has been read without error.
    ws = _open(args.workspace, must_exist=False) if os.path.exists(args.workspace) else None
    try:
        t0 = time.perf_counter()
        result = read_dataset(args.file, format=fmt, mapping=mapping, skip_bad_rows=args.skip_bad_rows)
        t_read = time.perf_counter() - t0
        for error in result.errors:
            print(f"skipped {error.describe()}", file=sys.stderr)
        if ws is None:
            ws = _open(args.workspace, must_exist=False)
        before = {d.name: d for d in ws.list_datasets()}
        bar = _bar(len(result.records), "inserting", args.quiet)
        info = ws.add_dataset(name, result, replace=args.replace,
                              progress=None if bar is None else (lambda done, total: bar.update(done - bar.n)))
        if bar is not None:
            bar.close()
    finally:
        if ws is not None:
            ws.close()
    spec = result.spec
    kind = f"{spec.format}, {spec.file_type}"
    old = before.get(name)
    if old is not None and old.id == info.id:
        print(f"dataset '{name}' is already in {args.workspace} with the same content ({info.n_rows} rows, {kind}); "
              "nothing imported")
        return 0
    skipped = f", {len(result.errors)} bad rows skipped" if result.errors else ""
    print(f"imported {info.n_rows} rows from {args.file} as dataset '{name}' ({kind}{skipped}) into "
          f"{args.workspace} in {time.perf_counter() - t0:.1f} s (read {t_read:.1f} s)")
    return 0


def _bar(total: int, desc: str, quiet: bool):
    """A tqdm bar on stderr for big imports when stderr is a terminal; None otherwise."""
    if quiet or total < 100_000 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rows", file=sys.stderr)


def datasets(args) -> int:
    with _open(args.workspace, must_exist=True) as ws:
        infos = ws.list_datasets()
    if not infos:
        print(f"no datasets in {args.workspace}; import one with `clear-studio ingest FILE`")
        return 0
    table = [("name", "rows", "format", "file", "created")]
    for d in infos:
        spec = d.spec_dict
        table.append((d.name, str(d.n_rows), f"{spec.get('format')}/{spec.get('file_type')}", str(d.source_path),
                      d.created_at.strftime("%Y-%m-%d %H:%M")))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.rjust(w) if i == 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
              .rstrip())
    return 0


def export(args) -> int:
    from ..atomic import check_target
    from ..export import export_dataset, manifest_path

    check_target(args.to)  # before the export's work: a folder, or a path in a missing folder
    t0 = time.perf_counter()
    with _open(args.workspace, must_exist=True) as ws:
        manifest = export_dataset(ws, args.dataset, args.to, fmt=args.format, variant=args.variant,
                                  run_id=args.run, t_drop=args.drop_below)
    c = manifest["counts"]
    print(f"wrote {c['written']} of {c['input']} rows ({args.variant}, {manifest['file_type']}) to {args.to} in "
          f"{time.perf_counter() - t0:.1f} s: dropped {c['dropped']} ({c['dropped_by_decision']} by decision, "
          f"{c['dropped_below_threshold']} below the threshold), edited {c['edited']}, accepted {c['accepted']}")
    print(f"manifest: {manifest_path(args.to)}")
    return 0
