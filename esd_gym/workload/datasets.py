"""Public datasets: download, verify and cache them, and convert them to traces on demand.

Only MovieLens-100K (``ml-100k``) is registered. It is fetched as RecBole atomic files, from the official GroupLens
archive when that host is reachable, and otherwise from the ``recbole==1.2.1`` package on PyPI, which ships the dataset
as ``recbole/dataset_example/ml-100k/``. The cache directory is ``$ESD_GYM_DATA_DIR`` when set, else
``~/.cache/esd-gym``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from esd_gym.errors import ConfigError, DataError

__all__ = [
    "DATASETS",
    "dataset_dir",
    "dataset_is_present",
    "dataset_trace_path",
    "default_data_dir",
    "fetch_dataset",
]

logger = logging.getLogger(__name__)

DATA_DIR_VARIABLE = "ESD_GYM_DATA_DIR"

# SHA-256 of the atomic files inside recbole-1.2.1-py3-none-any.whl (computed from the wheel on PyPI).
ML100K_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}
GROUPLENS_ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# MD5 that GroupLens publishes beside the archive, at ml-100k.zip.md5.
GROUPLENS_ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_MEMBER_DIR = "recbole/dataset_example/ml-100k/"

# The genre columns of u.item, in the order of GroupLens's u.genre.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)

DATASETS = {"ml-100k": "MovieLens-100K: 100,000 ratings of 1,682 movies by 943 users (RecBole atomic files)"}


def default_data_dir() -> Path:
    """Return ``$ESD_GYM_DATA_DIR`` when set and not empty, else ``~/.cache/esd-gym``."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "esd-gym"


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")


def dataset_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory that contains (or will contain) the files of dataset ``name``."""
    _check_name(name)
    return Path(data_dir if data_dir is not None else default_data_dir()) / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _mismatches(directory: Path) -> list[str]:
    """Return the expected files that are missing from ``directory`` or have another SHA-256."""
    return [name for name, expected in ML100K_SHA256.items()
            if not (directory / name).is_file() or _sha256(directory / name) != expected]


def dataset_is_present(name: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Return whether every file of dataset ``name`` is in the cache with the expected checksum."""
    directory = dataset_dir(name, data_dir)
    if not (directory / "SOURCE").is_file():
        return False
    if (directory / "SOURCE").read_text().strip() == "grouplens":
        return all((directory / file_name).is_file() for file_name in ML100K_SHA256)
    return not _mismatches(directory)


def fetch_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,
) -> Path:
    """Download dataset ``name`` into the cache unless it is already there; return its directory.

    :param source: fetch from this local copy instead of the network: a directory holding the atomic files, the
        ``recbole`` wheel or source archive, or GroupLens's ``ml-100k.zip``.
    :param timeout: seconds to wait for the GroupLens server before falling back to PyPI.
    :raises DataError: when every download failed or a checksum does not match.
    """
    target = dataset_dir(name, data_dir)
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        # urllib would raise a bare ValueError for a negative timeout, and 0 means non-blocking sockets.
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if dataset_is_present(name, data_dir):
        logger.info("%s is already present in %s", name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
    try:
        origin = _fill(staging, source, timeout)
        (staging / "SOURCE").write_text(origin + "\n")
        staging.chmod(0o755)
        if target.exists():
            logger.warning("%s: replacing an incomplete or modified copy", target)
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("%s fetched into %s (from %s)", name, target, origin)
    return target


def _fill(staging: Path, source: str | os.PathLike[str] | None, timeout: float) -> str:
    """Put the atomic files into ``staging``; return where they came from ("grouplens" or "recbole")."""
    if source is not None:
        source = Path(source)
        if source.is_dir():
            for file_name in ML100K_SHA256:
                if not (source / file_name).is_file():
                    raise DataError(f"{source}: {file_name} not found; expected the RecBole atomic files of ml-100k")
                shutil.copyfile(source / file_name, staging / file_name)
            _verify(staging, f"the copy in {source}")
            return "recbole"
        if source.suffix == ".zip" and source.name.startswith("ml-100k"):
            _check_grouplens_md5(source.read_bytes(), str(source))
            _atomic_from_grouplens(source.read_bytes(), staging)
            return "grouplens"
        _extract_recbole_archive(source, staging)
        return "recbole"

    try:
        logger.info("downloading %s", GROUPLENS_ML100K_URL)
        with urllib.request.urlopen(GROUPLENS_ML100K_URL, timeout=timeout) as response:
            archive = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        logger.info("GroupLens is unreachable (%s); downloading %s from PyPI instead", error, RECBOLE_REQUIREMENT)
    else:
        _check_grouplens_md5(archive, GROUPLENS_ML100K_URL)
        _atomic_from_grouplens(archive, staging)
        return "grouplens"

    with tempfile.TemporaryDirectory(prefix="esd-gym-pip-") as download_dir:
        _pip_download(Path(download_dir))
        archives = sorted(Path(download_dir).glob("recbole-*"))
        if not archives:
            raise DataError(f"pip download of {RECBOLE_REQUIREMENT} produced no archive in {download_dir}")
        _extract_recbole_archive(archives[0], staging)
    return "recbole"


def _pip_download(directory: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":none:",
               RECBOLE_REQUIREMENT, "-d", str(directory), "--quiet", "--disable-pip-version-check"]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download of {RECBOLE_REQUIREMENT} timed out after 600 s") from None
    if finished.returncode != 0:
        reason = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"pip download of {RECBOLE_REQUIREMENT} failed: {reason}")


def _extract_recbole_archive(archive: Path, staging: Path) -> None:
    """Copy the ml-100k atomic files out of a recbole wheel (zip) or source archive (tar.gz) and verify them."""
    wanted = set(ML100K_SHA256)
    found: set[str] = set()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.namelist():
                    file_name = member.rpartition("/")[2]
                    if member.endswith(RECBOLE_MEMBER_DIR + file_name) and file_name in wanted:
                        (staging / file_name).write_bytes(bundle.read(member))
                        found.add(file_name)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as bundle:
                for member in bundle.getmembers():
                    file_name = member.name.rpartition("/")[2]
                    if member.isfile() and member.name.endswith(RECBOLE_MEMBER_DIR + file_name) and file_name in wanted:
                        (staging / file_name).write_bytes(bundle.extractfile(member).read())
                        found.add(file_name)
        else:
            raise DataError(f"{archive}: not a zip or tar archive")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        raise DataError(f"{archive}: cannot read the archive ({error})") from None
    missing = sorted(wanted - found)
    if missing:
        raise DataError(f"{archive}: {', '.join(missing)} not found under {RECBOLE_MEMBER_DIR}")
    _verify(staging, archive.name)


def _verify(directory: Path, origin: str) -> None:
    bad = _mismatches(directory)
    if bad:
        names = ", ".join(bad)
        raise DataError(f"checksum mismatch for {names} from {origin}; expected the files of {RECBOLE_REQUIREMENT}")


def _check_grouplens_md5(archive: bytes, origin: str) -> None:
    if hashlib.md5(archive).hexdigest() != GROUPLENS_ML100K_MD5:
        raise DataError(f"checksum mismatch for {origin}: its MD5 is not {GROUPLENS_ML100K_MD5}")


def _atomic_from_grouplens(archive: bytes, staging: Path) -> None:
    """Write RecBole atomic files built from GroupLens's ``ml-100k.zip`` (u.data, u.user and u.item).

    The archive's MD5 is checked by the caller, so the ratings are GroupLens's 100,000.

    NOTE: the item file follows RecBole's layout (title without the year, release year, genres) but was tested only
    on a hand-made archive, so its bytes may differ from RecBole's copy, and only the archive's MD5 is verified.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            members = {member.rpartition("/")[2]: member for member in bundle.namelist()}
            texts = {name: bundle.read(members[name]).decode("latin-1") for name in ("u.data", "u.user", "u.item")}
    except (KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"the ml-100k archive lacks u.data, u.user or u.item ({error})") from None

    ratings = [line.split("\t") for line in texts["u.data"].splitlines() if line]
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"] + ["\t".join(row) for row in ratings]
    users = [line.split("|") for line in texts["u.user"].splitlines() if line]
    user = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
    user += ["\t".join(row) for row in users]
    item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for line in texts["u.item"].splitlines():
        if not line:
            continue
        fields = line.split("|")
        title = re.sub(r"\s*\(\d{4}\)\s*$", "", fields[1]).strip()
        year = fields[2][-4:] if len(fields[2]) >= 4 else ""
        genres = " ".join(genre for genre, flag in zip(ML100K_GENRES, fields[5:]) if flag.strip() == "1")
        item.append("\t".join([fields[0], title, year, genres]))
    for file_name, lines in (("ml-100k.inter", inter), ("ml-100k.user", user), ("ml-100k.item", item)):
        (staging / file_name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def dataset_trace_path(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    **convert_options: Any,
) -> Path:
    """Return the trace of dataset ``name``, fetching and converting it first when it is not cached.

    The trace is ``<data dir>/<name>.npz``. It is converted with the default options of the RecBole reader (labels
    are rating >= 4) unless ``convert_options`` sets others, and it is rebuilt only when the file is missing.
    """
    from esd_gym.workload.recbole import convert_recbole

    directory = dataset_dir(name, data_dir)
    trace_path = directory.parent / f"{name}.npz"
    if trace_path.is_file():
        return trace_path
    fetch_dataset(name, data_dir, source=source)
    report = convert_recbole(directory, trace_path, **convert_options)
    logger.info("%s: converted %d samples in %.2f s", trace_path, report.num_samples, report.seconds)
    return trace_path
