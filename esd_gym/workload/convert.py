"""Conversion of dataset files to the binary trace: format detection and one entry point for every reader."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from esd_gym.errors import ConfigError, TraceError
from esd_gym.workload.reading import ConversionReport, open_binary, read_header
from esd_gym.workload.recbole import FIELD_TYPES, convert_recbole
from esd_gym.workload.tabular import CRITEO_CATEGORICAL, CRITEO_INTEGER, convert_avazu, convert_criteo

__all__ = ["FORMATS", "convert_dataset", "detect_format"]

logger = logging.getLogger(__name__)

FORMATS = ("recbole", "criteo", "avazu")


def detect_format(source: str | Path) -> str:
    """Guess the format of ``source`` from its name and first line.

    A directory, an ``.inter`` file or a first line of ``name:type`` entries means RecBole. A comma-separated header
    that starts with ``id`` or has ``id`` and ``click`` columns means Avazu. A first line of 39 or 40 tab- or
    comma-separated fields means Criteo.
    """
    source = Path(source)
    if source.is_dir() or source.suffix == ".inter":
        return "recbole"
    if not source.is_file():
        raise TraceError(f"{source}: file or directory not found")
    stream, _, _ = open_binary(source)
    with stream:
        line = read_header(stream, source)
    entries = line.split("\t")
    if all(entry.rpartition(":")[2] in FIELD_TYPES and ":" in entry for entry in entries):
        return "recbole"
    names = [name.strip() for name in line.split(",")]
    if names[0] == "id" or ("id" in names and "click" in names):
        return "avazu"
    criteo_fields = 1 + CRITEO_INTEGER + CRITEO_CATEGORICAL
    if len(line.split("\t")) in (criteo_fields, criteo_fields - 1) or len(names) in (criteo_fields, criteo_fields - 1):
        return "criteo"
    raise TraceError(
        f"{source}:1:1: cannot detect the format from the first line (got {line[:60]!r}); "
        f"pass the format ({', '.join(FORMATS)}) explicitly"
    )


def convert_dataset(
    source: str | Path, output: str | Path, format: str | None = None, **options: Any
) -> ConversionReport:
    """Convert ``source`` to a trace at ``output`` with the reader of ``format`` (detected when None).

    ``options`` go to the reader: :func:`~esd_gym.workload.recbole.convert_recbole`,
    :func:`~esd_gym.workload.tabular.convert_criteo` or :func:`~esd_gym.workload.tabular.convert_avazu`.
    """
    if format is None:
        format = detect_format(source)
        logger.info("%s: detected format %s", source, format)
    readers = {"recbole": convert_recbole, "criteo": convert_criteo, "avazu": convert_avazu}
    if format not in readers:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    return readers[format](source, output, **options)
