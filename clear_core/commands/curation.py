"""`clear-studio correct | curate | runs | resume | calibrate | finetune`: Auto-Correct, automatic curation, run
management, weights refit from the reviewers' decisions, and the LoRA fine-tune on the kept rows."""

from __future__ import annotations

import time

from .scoring import ProgressBar, positive_int, print_summary


def register(subparsers, default_workspace: str) -> None:
    ws_help = f"workspace file (default: {default_workspace})"

    p = subparsers.add_parser("correct", help="propose and judge fixes for the rows below the keep threshold")
    _correction_args(p, default_workspace, ws_help)
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.set_defaults(func=correct)

    p = subparsers.add_parser("curate", help="filter + correct + accept confident fixes, drop the drop band")
    _correction_args(p, default_workspace, ws_help)
    p.add_argument("--auto", action="store_true", required=True, help="decide automatically as reviewer 'auto'")
    p.set_defaults(func=curate)

    p = subparsers.add_parser("runs", help="list the runs of a dataset")
    p.add_argument("dataset", metavar="NAME")
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.set_defaults(func=runs)

    p = subparsers.add_parser("resume", help="go on with a stopped or killed run")
    p.add_argument("run_id", type=int, metavar="RUN_ID")
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=resume)

    p = subparsers.add_parser("calibrate", help="refit a scoring run's weights from the reviewers' keep/drop "
                              "decisions and store them on the run")
    p.add_argument("dataset", metavar="NAME")
    p.add_argument("--from-decisions", action="store_true", required=True,
                   help="fit the weights to the standing keep / drop / edit / accept decisions (not curate --auto's)")
    p.add_argument("--run", type=int, default=None, help="the scoring run (default: the latest finished one)")
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.set_defaults(func=calibrate)

    p = subparsers.add_parser("finetune", help="LoRA fine-tune the model on the curated rows; saves a model dir")
    p.add_argument("dataset", metavar="NAME")
    p.add_argument("--out", required=True, help="output model dir (loadable with --model DIR / --generator DIR)")
    p.add_argument("--model", default=None, help="base model (default: the scoring run's model)")
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--max-rows", type=positive_int, default=None)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--rank", type=positive_int, default=16)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--run", type=int, default=None, help="the scoring run (default: the latest finished one)")
    _threshold_args(p)
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.set_defaults(func=finetune)


def _correction_args(p, default_workspace: str, ws_help: str) -> None:
    """The arguments `correct` and `curate` share: dataset, judge, generator, scoring run, thresholds, workspace."""
    p.add_argument("dataset", metavar="NAME")
    p.add_argument("--eta", type=float, default=None, help="judge confidence a proposal needs to be confident "
                   "(default: the run's, as set in the app, else 0.8)")
    p.add_argument("--generator", default="default", help="default (the scoring model + in-context examples) or a "
                   "fine-tuned model dir whose answers are judged too")
    p.add_argument("--run", type=int, default=None, help="the scoring run (default: the latest finished one)")
    _threshold_args(p)
    p.add_argument("--workspace", default=default_workspace, help=ws_help)
    p.add_argument("--quiet", action="store_true")


def _threshold_args(p) -> None:
    g = p.add_argument_group("thresholds (default: the ones stored with the run, set on the app's Explore page; "
                             "else keep the rows above the median confidence)")
    g.add_argument("--keep-value", type=float, default=None, help="t_keep as a confidence value")
    g.add_argument("--keep-fraction", type=float, default=None, help="t_keep that keeps this share of the rows")
    g.add_argument("--drop-value", type=float, default=None, help="t_drop (default: t_keep, no review band)")
    g.add_argument("--drop-fraction", type=float, default=None, help="t_drop that drops this share of the rows")


def _thresholds(ws, run, args):
    from ..filtering import run_thresholds

    return run_thresholds(ws, run.id, args.keep_value, args.keep_fraction, args.drop_value, args.drop_fraction,
                          eta=getattr(args, "eta", None))


def _correction(ws, info, args):
    """Run Auto-Correct over the rows below t_keep; returns (correction run id, thresholds)."""
    from ..config import CorrectConfig
    from ..correct import run_correction

    run = ws.score_run(info, args.run)
    thresholds = _thresholds(ws, run, args)
    kw = {"eta": thresholds.eta, "generator": args.generator}
    if getattr(args, "batch_size", None):
        kw["batch_size"] = args.batch_size
    with ProgressBar(args.quiet) as bar:
        run_id = run_correction(ws, info.id, CorrectConfig(**kw), score_run=run.id, thresholds=thresholds,
                                progress=bar)
    return run_id, thresholds


def correct(args) -> int:
    from ..store import Workspace

    with Workspace.open(args.workspace) as ws:
        info = ws.get_dataset(args.dataset)
        run_id, thresholds = _correction(ws, info, args)
        _print_proposals(ws, run_id, thresholds)
    return 0


def _print_proposals(ws, run_id, thresholds) -> None:
    run = ws.get_run(run_id)
    props = ws.proposals(run_id)
    confident = int(props["confident"].fillna(False).sum()) if len(props) else 0
    by_source = props.groupby("source").size().to_dict() if len(props) else {}
    print(f"correction run {run_id}: {run.n_total} rows below t_keep = {thresholds.t_keep:.3f}, "
          f"{len(props)} proposals ({', '.join(f'{k}: {v}' for k, v in sorted(by_source.items())) or 'none'}), "
          f"{confident} confident (judge >= {thresholds.eta})")


def curate(args) -> int:
    """Filter + correct, then decide as reviewer 'auto': accept confident proposals, drop the drop band.

    Rows a person already decided are left alone.
    """
    from ..filtering import bands, run_confidence
    from ..reweight import AUTO_REVIEWER
    from ..store import Workspace

    with Workspace.open(args.workspace) as ws:
        info = ws.get_dataset(args.dataset)
        score_run = ws.score_run(info, args.run)
        run_id, thresholds = _correction(ws, info, args)
        _print_proposals(ws, run_id, thresholds)
        decided = set(ws.current_decisions(info.id)["row_idx"].astype(int))
        props = ws.proposals(run_id)
        accept = sorted(int(r) for r, c in zip(props["row_idx"], props["confident"].fillna(False))
                        if c and int(r) not in decided)
        rows, conf = run_confidence(ws, score_run.id)
        band = bands(conf, thresholds)
        drop = sorted(int(r) for r, b in zip(rows, band) if b == "drop" and int(r) not in decided
                      and int(r) not in set(accept))
        if accept:
            ws.record_decisions(info.id, accept, "accept", reviewer=AUTO_REVIEWER, thresholds=thresholds)
        if drop:
            ws.record_decisions(info.id, drop, "drop", reviewer=AUTO_REVIEWER, thresholds=thresholds)
        n_keep = int((band == "keep").sum())
        print(f"curated '{info.name}': {n_keep} kept, {len(accept)} corrected (accepted), {len(drop)} dropped, "
              f"{int((band == 'review').sum())} left for review, {len(decided)} already decided by people")
    return 0


def runs(args) -> int:
    """The runs table, then for each unfinished run (interrupted, stopped, failed) why, and the command that
    goes on with it."""
    from ..runs import UNFINISHED, resume_command
    from ..store import Workspace

    with Workspace.open(args.workspace, read_only=True) as ws:
        info = ws.get_dataset(args.dataset)
        listed = ws.list_runs(info.id)
    table = [("id", "kind", "status", "done/total", "failed", "started", "preset", "model")]
    for r in listed:
        cfg = r.config or {}
        table.append((str(r.id), r.kind, r.status, f"{r.n_done}/{r.n_total}", str(r.n_failed),
                      f"{r.created_at:%Y-%m-%d %H:%M}", str(cfg.get("preset", "-")),
                      str(cfg.get("model", cfg.get("generator", "-")))))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    for r in listed:
        if r.status in UNFINISHED:
            print(f"run {r.id} is {r.status}" + (f" ({r.message})" if r.message else "")
                  + f"; `{resume_command(r.id, args.workspace)}` goes on from its last committed batch")
    return 0


def resume(args) -> int:
    from .. import runs
    from ..store import Workspace

    with Workspace.open(args.workspace) as ws:
        run = ws.get_run(args.run_id)
        t0 = time.perf_counter()
        print(f"resuming {run.kind} run {run.id} ({run.status}, {run.n_done}/{run.n_total} done)", flush=True)
        with ProgressBar(args.quiet) as bar:
            runs.resume(ws, run.id, progress=bar)
        if run.kind == "score":
            print_summary(ws, run.id, time.perf_counter() - t0, bar.rows_here, bar.rows_per_s)
        else:
            print(f"correction run {run.id}: {ws.get_run(run.id).status}")
    return 0


def calibrate(args) -> int:
    """Refit the weights of a finished scoring run from the people's decisions; prints old -> new weights."""
    from ..reweight import refit_from_decisions
    from ..store import Workspace

    with Workspace.open(args.workspace) as ws:
        info = ws.get_dataset(args.dataset)
        run = ws.score_run(info, args.run)
        refit = refit_from_decisions(ws, run.id)
    cal = refit.calibration
    print(f"run {run.id} of '{info.name}': weights refit from {cal.n_good + cal.n_bad} decisions ({cal.n_good} kept, "
          f"{cal.n_bad} dropped / edited / accepted) and stored with the recombined confidence")
    for name in sorted(refit.weights):
        print(f"  {name}: {refit.old_weights.get(name, 0.0):.3f} -> {refit.weights[name]:.3f}"
              f"  (AUROC on the decided rows {cal.auroc.get(name, float('nan')):.3f})")
    print(f"confidence AUROC on the decided rows with the new weights: {cal.auroc_confidence:.3f}")
    return 0


def finetune(args) -> int:
    from .. import finetune as ft
    from ..store import Workspace

    with Workspace.open(args.workspace) as ws:
        info = ws.get_dataset(args.dataset)
        run = ws.score_run(info, args.run)
        rows = ft.curated_rows(ws, info.id, run.id, _thresholds(ws, run, args))
        model = args.model or run.config.get("model", "default")
    # The workspace is closed while training: the fine-tune can take long and needs nothing from it.
    config = ft.FinetuneConfig(r=args.rank, alpha=2 * args.rank, lr=args.lr, epochs=args.epochs,
                               max_rows=args.max_rows, batch_size=args.batch_size)
    print(f"fine-tuning {model} on {min(len(rows), args.max_rows or len(rows))} curated rows of '{info.name}'",
          flush=True)
    from tqdm import tqdm

    bar = tqdm(unit="step", dynamic_ncols=True)

    def progress(step, total, loss):
        bar.total = total
        bar.set_postfix(loss=f"{loss:.3f}")
        bar.update(1)

    result = ft.finetune(model, rows, args.out, config, progress=progress)
    bar.close()
    first, last = result.losses[0], sum(result.losses[-5:]) / len(result.losses[-5:])
    print(f"saved {args.out}: {result.steps} steps in {result.seconds:.0f} s, loss {first:.3f} -> {last:.3f}")
    return 0
