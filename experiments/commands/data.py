"""``esd-gym data``: fetch datasets, convert dataset files to traces, summarise traces, generate synthetic ones."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SYNTH_SAMPLES = 1_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="fetch, convert, inspect and generate workloads")
    commands = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="dataset cache directory (default: $ESD_GYM_DATA_DIR, else ~/.cache/esd-gym)",
    )

    fetch = commands.add_parser("fetch", parents=[data_dir], help="download and verify a public dataset")
    fetch.add_argument("name", help="dataset name, e.g. ml-100k")
    fetch.add_argument("--source", type=Path, help="use this local copy (directory, recbole wheel or ml-100k.zip)")
    fetch.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for GroupLens before using PyPI")
    fetch.set_defaults(handler=_reporting_os_errors(run_fetch))

    convert = commands.add_parser("convert", parents=[data_dir], help="convert a dataset file to a binary trace")
    convert.add_argument("source", help="file or directory to convert, or a dataset name (ml-100k), fetched when missing")
    convert.add_argument("-o", "--output", type=Path, required=True, help="trace file to write (.npz)")
    convert.add_argument("--format", choices=("recbole", "criteo", "avazu"), help="input format (default: detected)")
    convert.add_argument("--on-bad-line", choices=("error", "skip"), default="error",
                         help="stop at the first malformed line (default) or skip and count such lines")
    convert.add_argument("--max-table-size", type=int, metavar="ROWS",
                         help="hash the values of every table into at most ROWS rows (like DLRM's --max-ind-range)")
    convert.add_argument("--label-field", default="auto",
                         help="RecBole: float column that gives the label "
                              "('auto': label, else rating; 'none': no labels)")
    convert.add_argument("--label-threshold", type=float, default=4.0,
                         help="RecBole: label is 1 when the label column is at least this (default 4, for ratings)")
    convert.add_argument("--raw-label", action="store_true", help="RecBole: keep the label column's value as it is")
    convert.add_argument("--exclude-field", action="append", default=[], metavar="NAME",
                         help="RecBole: ignore this column in every file (repeatable)")
    convert.set_defaults(handler=_reporting_os_errors(run_convert))

    stats = commands.add_parser("stats", help="summarise a trace: tables, cardinalities, ids per sample, skew")
    stats.add_argument("trace", type=Path, help="trace file (.npz)")
    stats.add_argument("--plot", type=Path, metavar="PNG", help="also save the id-frequency rank plot (log-log)")
    stats.set_defaults(handler=_reporting_os_errors(run_stats))

    synth = commands.add_parser("synth", help="generate a seeded synthetic trace with Zipf-distributed ids")
    synth.add_argument("-o", "--output", type=Path, required=True, help="trace file to write (.npz)")
    synth.add_argument("-n", "--samples", type=int, default=DEFAULT_SYNTH_SAMPLES,
                       help=f"number of samples (default {DEFAULT_SYNTH_SAMPLES:,})")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--cardinalities", type=_int_list, metavar="N,N,...",
                       help="rows per table (default: the 26 Criteo Kaggle tables used by facebookresearch/dlrm)")
    synth.add_argument("--zipf", type=_float_list, default=[1.05], metavar="S[,S,...]",
                       help="Zipf exponent, one for all tables or one per table (default 1.05)")
    synth.add_argument("--ids-per-table", type=_int_list, default=[1], metavar="K[,K,...]",
                       help="ids each sample draws from a table, one for all or one per table (default 1)")
    synth.add_argument("--dense", type=int, default=0, metavar="D", help="dense features per sample (default 0)")
    synth.add_argument("--labels", action="store_true", help="add click labels")
    synth.add_argument("--positive-rate", type=float, default=0.25, help="approximate share of label 1 (default 0.25)")
    synth.add_argument("--locality", type=float, default=0.0,
                       help="probability that an id repeats one of the recent ids of its table (default 0)")
    synth.add_argument("--locality-window", type=int, default=1000,
                       help="number of recent ids per table that a repeat is drawn from (default 1000)")
    synth.set_defaults(handler=_reporting_os_errors(run_synth))


def _reporting_os_errors(handler):
    """Wrap a handler so that a failed file operation ends as a one-line DataError instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        from esd_gym.errors import DataError

        try:
            return handler(args)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise DataError(f"{where}{error.strerror or error}") from None

    return run


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str) -> list[float]:
    try:
        return [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _progress(total: int | None, unit: str):
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from experiments.cli import error_console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:>12,} " + unit),
        TextColumn("{task.fields[rate]:>10,.0f} " + unit + "/s"),
        TimeElapsedColumn(),
        console=error_console,
        transient=True,
        # Redirected output (logs, CI) gets the summary line only.
        disable=not error_console.is_terminal,
    )


def run_fetch(args: argparse.Namespace) -> int:
    from esd_gym.workload.datasets import dataset_dir, dataset_is_present, fetch_dataset
    from experiments.cli import console

    target = dataset_dir(args.name, args.data_dir)
    if dataset_is_present(args.name, args.data_dir):
        console.print(f"{args.name} is already present in {target} (checksums verified); nothing to do")
        return 0
    with console.status(f"fetching {args.name}"):
        path = fetch_dataset(args.name, args.data_dir, source=args.source, timeout=args.timeout)
    origin = (path / "SOURCE").read_text().strip()
    console.print(f"fetched {args.name} into {path} (from {origin}; checksums verified)")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    import time

    from esd_gym.workload.convert import convert_dataset, detect_format
    from esd_gym.workload.datasets import DATASETS, fetch_dataset
    from experiments.cli import console

    source = Path(args.source)
    if not source.exists() and args.source in DATASETS:
        # A dataset name: use the cached copy, fetching it first when needed.
        source = fetch_dataset(args.source, args.data_dir)
    format_name = args.format or detect_format(source)
    options: dict = {"on_bad_line": args.on_bad_line, "max_table_size": args.max_table_size}
    if format_name == "recbole":
        options["label_field"] = None if args.label_field.lower() == "none" else args.label_field
        options["label_threshold"] = None if args.raw_label else args.label_threshold
        options["exclude_fields"] = tuple(args.exclude_field)

    size = sum(path.stat().st_size for path in source.glob("*.inter")) if source.is_dir() else source.stat().st_size
    started = time.perf_counter()
    with _progress(size, "rows") as progress:
        task = progress.add_task(f"converting {source.name}", total=size, rows=0, rate=0.0)

        def update(bytes_done: int, rows: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=bytes_done, rows=rows, rate=rows / elapsed)

        report = convert_dataset(source, args.output, format_name, progress=update, **options)

    console.print(
        f"wrote {report.output}: {report.num_samples:,} samples, {report.num_ids:,} ids, "
        f"{len(report.table_names)} tables ({sum(report.table_sizes):,} rows), {report.num_dense} dense features, "
        f"labels: {'yes' if report.has_labels else 'no'}"
    )
    console.print(f"format {report.format}; {report.seconds:.2f} s, {report.rows_per_second:,.0f} rows/s")
    if report.skipped_lines:
        console.print(f"bad lines skipped: {report.skipped_lines:,}")
    if report.missing_join_keys:
        console.print(f"{report.missing_join_keys:,} interactions name a user or item missing from its side file")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from rich.table import Table

    from esd_gym.workload.stats import check_plot_path, compute_stats, plot_rank_frequency
    from esd_gym.workload.trace import load_trace
    from experiments.cli import console

    if args.plot is not None:
        check_plot_path(args.plot)
    trace = load_trace(args.trace)
    stats = compute_stats(trace)
    console.print(f"{args.trace}: {stats.num_samples:,} samples, {len(stats.tables)} tables, {stats.num_ids:,} ids")
    console.print(
        f"ids per sample: mean {stats.mean_ids_per_sample:.2f}, min {stats.min_ids_per_sample}, "
        f"max {stats.max_ids_per_sample}"
    )
    console.print(
        f"distinct ids: {stats.overall.distinct_ids:,} of {stats.overall.rows:,} rows; "
        f"the top 1 % of ids take {100 * stats.overall.top_share:.1f} % of lookups"
    )
    if trace.dense is not None:
        console.print(f"dense features: {trace.dense.shape[1]}")
    if trace.labels is not None:
        console.print(f"label mean: {float(trace.labels.mean()):.4f}")

    table = Table("table", "rows", "distinct ids", "ids per sample", "top 1 % share", title="per table")
    for entry in stats.tables:
        table.add_row(
            entry.name,
            f"{entry.rows:,}",
            f"{entry.distinct_ids:,}",
            f"{entry.lookups / stats.num_samples:.2f}",
            f"{100 * entry.top_share:.1f} %",
        )
    console.print(table)
    if args.plot is not None:
        plot_rank_frequency(stats, args.plot, trace.table_offsets)
        console.print(f"rank plot saved to {args.plot}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    import time

    from esd_gym.workload.synthetic import SyntheticConfig, write_synthetic_trace
    from experiments.cli import console

    settings: dict = {
        "zipf_exponents": args.zipf[0] if len(args.zipf) == 1 else tuple(args.zipf),
        "ids_per_table": args.ids_per_table[0] if len(args.ids_per_table) == 1 else tuple(args.ids_per_table),
        "num_dense": args.dense,
        "labels": args.labels,
        "positive_rate": args.positive_rate,
        "locality": args.locality,
        "locality_window": args.locality_window,
        "seed": args.seed,
    }
    if args.cardinalities:
        settings["cardinalities"] = tuple(args.cardinalities)
    config = SyntheticConfig(**settings)

    started = time.perf_counter()
    with _progress(args.samples, "samples") as progress:
        task = progress.add_task("generating", total=args.samples, rows=0, rate=0.0)

        def update(samples: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=samples, rows=samples, rate=samples / elapsed)

        path = write_synthetic_trace(args.output, args.samples, config, progress=update)
    seconds = time.perf_counter() - started
    console.print(
        f"wrote {path}: {args.samples:,} samples, {len(config.cardinalities)} tables "
        f"({sum(config.cardinalities):,} rows), seed {config.seed}; {seconds:.2f} s"
    )
    return 0
