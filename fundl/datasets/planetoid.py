"""Planetoid citation graphs (Cora, Citeseer, Pubmed) with the standard semi-supervised split.

The files are Kipf & Welling's GCN data (``ind.<name>.{y,tx,ty,allx,ally,graph,test.index}``),
Python-2 pickles read by fundl's own strict reader (:mod:`fundl.datasets._safe_pickle`), so
loading never runs code from a file and SciPy is not needed. Files are looked up in
``$FUNDL_DATA_DIR/planetoid/``, then the cache ``~/.cache/fundl/planetoid/``, then downloaded
from the tkipf/gcn repository (see :func:`fundl.datasets.get_file`).

Example:
    >>> from fundl.datasets import planetoid
    >>> cora = planetoid.load_data("cora")  # doctest: +SKIP
    >>> cora.x.shape, cora.edges.shape, cora.num_classes  # doctest: +SKIP
    ((2708, 1433), (2, 10556), 7)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _safe_pickle
from ._files import (
    DATA_DIR_ENV,
    ChecksumError,
    DatasetNotFoundError,
    _not_found,
    cache_dir,
    file_md5,
    get_files,
)
from ._safe_pickle import CsrArrays
from ..saving import CorruptFileError

SUBDIR = "planetoid"
BASE_URL = (
    "https://raw.githubusercontent.com/tkipf/gcn/39a4089fe72ad9f055ed6fdb9746abdcfebc4d81/gcn/data/"
)
NAMES = ("cora", "citeseer", "pubmed")
# ind.<name>.x (the 20-per-class training rows) is not read: they are also the first rows of allx.
PARTS = ("y", "tx", "ty", "allx", "ally", "graph", "test.index")
MD5S = {
    "ind.cora.y": "78344284e3ff7fd24eb9c307d51351eb",
    "ind.cora.tx": "b29c36916768e1d2f55391c1aa9317ac",
    "ind.cora.ty": "48bf43f54fa5b86089a4bd0299795f10",
    "ind.cora.allx": "c9083193a57057dd1238321e140194d7",
    "ind.cora.ally": "125d70817fe1fdbfdcad991995e81579",
    "ind.cora.graph": "b37c419cec179f45834467630c278e4c",
    "ind.cora.test.index": "9b822cae1d01f41e8bf8782e20367c0e",
    "ind.citeseer.y": "8b99f50aa950fbbf9a7a2b71ff9cac97",
    "ind.citeseer.tx": "c25ab826a7e95c0922ab625de705f7df",
    "ind.citeseer.ty": "356894a73b7a7eff43c3580f2fcf92a4",
    "ind.citeseer.allx": "28486b4b9c4ee076b4eee2febd89ba86",
    "ind.citeseer.ally": "f0df7e5f859245e32987bfd224d01657",
    "ind.citeseer.graph": "5f88483d5f5cc2b26b987bbbfb695005",
    "ind.citeseer.test.index": "70af39d4dff8aaa5c63f8dc526b16534",
    "ind.pubmed.y": "520bb2899bb8fb705181b8e34a973573",
    "ind.pubmed.tx": "30d5abd15cf10e46ebd9514b256e0347",
    "ind.pubmed.ty": "3082e367753e3a81c457f644316ca17d",
    "ind.pubmed.ally": "ab5def164b4c5b33e215b6397a84ee4b",
    "ind.pubmed.graph": "601ee2ffa59197989ff7267383a4ea46",
    "ind.pubmed.test.index": "57cdfacfa20179b9b92e077fba394d1c",
}
# No md5 of ind.pubmed.allx is published; it is verified by its git blob id in tkipf/gcn instead,
# and since get_file checks md5s only, it is not downloaded: it must be put in place by hand.
GIT_BLOBS = {"ind.pubmed.allx": "3b86bccf08111c37c632a9dd8ab63db25ea76361"}
NUM_VAL = 500  # the standard split: the 500 nodes after the labelled training nodes


@dataclass(frozen=True)
class PlanetoidGraph:
    """One Planetoid graph with its standard split (N nodes, F features, E directed edges).

    Attributes:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"``.
        x: float32 (N, F) node features, row i for node i.
        y: int64 (N,) class ids in ``[0, num_classes)``; -1 for the nodes without a label
            (Citeseer's 15 isolated ids that have no test row; PyG and Kipf's code give them
            class 0 instead, ``np.maximum(y, 0)`` reproduces that). No split index holds them.
        edges: int64 (2, E) ``[source; target]``, both directions of every link, without
            duplicates or self-loops, sorted by source then target.
        train_index: int64 (20 * num_classes,) the labelled nodes ``0 .. len(ind.y) - 1``.
        val_index: int64 (500,) the next 500 nodes.
        test_index: int64 (1000,) the nodes of ``ind.<name>.test.index``, sorted.
        num_classes: number of classes.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    edges: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    num_classes: int

    @property
    def num_nodes(self) -> int:
        """N, the number of nodes."""
        return len(self.y)


def load_data(
    name: str, path: str | os.PathLike | None = None, progress: bool = True
) -> PlanetoidGraph:
    """Load a Planetoid citation graph the way Kipf & Welling's GCN code (and PyG) does.

    Node order is the standard one: the ``allx`` rows, then each ``tx`` row at the node id given
    by the same line of ``test.index``. Citeseer's test ids skip 15 nodes; those get zero
    features and label -1, as in Kipf's code (which gives them class 0).

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (case-insensitive).
        path: a folder holding the ``ind.<name>.*`` files; by default they are found through
            ``$FUNDL_DATA_DIR/planetoid/``, the cache, then a download. Files in ``path`` are
            checked against the same md5s.
        progress: show a progress bar on stderr while downloading.

    Returns:
        PlanetoidGraph: ``x`` float32 (N, F), ``y`` int64 (N,), ``edges`` int64 (2, E),
        ``train_index``/``val_index``/``test_index`` int64, ``num_classes``, ``name``.
        Cora: N=2708, F=1433, 7 classes, E=10556, split 140/500/1000. Citeseer: N=3327,
        F=3703, 6 classes, E=9104, split 120/500/1000. Pubmed: N=19717, F=500, 3 classes,
        E=88648, split 60/500/1000.

    Raises:
        ValueError: unknown ``name``.
        DatasetNotFoundError: a file is missing and cannot be downloaded; the message names it
            and where to put it (Pubmed's ``ind.pubmed.allx`` always has to be put by hand).
        ChecksumError: a file differs from the original.
        CorruptFileError: a file holds something other than the expected data.

    Example:
        >>> g = load_data("cora")  # doctest: +SKIP
        >>> g.x[g.train_index].shape, g.y[g.test_index][:5]  # doctest: +SKIP
        ((140, 1433), array([3, 2, 2, 2, 2]))
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in NAMES:
        raise ValueError(f"planetoid.load_data: name must be one of {NAMES}, got {name!r}.")
    paths = _find_files(key, path, progress)
    read = {part: _read(paths[f"ind.{key}.{part}"], part) for part in PARTS if part != "test.index"}
    test_ids = _read_index(paths[f"ind.{key}.test.index"])

    allx, tx, ally, ty = read["allx"], read["tx"], read["ally"], read["ty"]
    n_known = allx.shape[0]
    if ally.shape[0] != n_known or tx.shape[0] != ty.shape[0] or tx.shape[0] != len(test_ids):
        raise CorruptFileError(
            f"planetoid {key}: row counts disagree: allx {allx.shape[0]}, ally {ally.shape[0]}, "
            f"tx {tx.shape[0]}, ty {ty.shape[0]}, test.index {len(test_ids)}. Replace the files."
        )
    if allx.shape[1] != tx.shape[1] or ally.shape[1] != ty.shape[1]:
        raise CorruptFileError(
            f"planetoid {key}: allx/tx have {allx.shape[1]}/{tx.shape[1]} features "
            f"and ally/ty {ally.shape[1]}/{ty.shape[1]} classes. Replace the files."
        )
    num_nodes = max(n_known, int(test_ids.max()) + 1)
    if test_ids.min() < n_known or len(np.unique(test_ids)) != len(test_ids):
        raise CorruptFileError(
            f"{paths[f'ind.{key}.test.index']}: test ids must be distinct and "
            f">= {n_known} (the rows of allx). Replace the file."
        )

    x = np.zeros((num_nodes, allx.shape[1]), np.float32)
    _scatter_rows(x, np.arange(n_known), allx)
    _scatter_rows(x, test_ids, tx)
    onehot = np.zeros((num_nodes, ally.shape[1]), ally.dtype)
    onehot[:n_known], onehot[test_ids] = ally, ty
    y = np.where(onehot.max(axis=1) > 0, onehot.argmax(axis=1), -1).astype(np.int64)

    n_train = read["y"].shape[0]
    return PlanetoidGraph(
        name=key,
        x=x,
        y=y,
        edges=_edges(read["graph"], num_nodes, paths[f"ind.{key}.graph"]),
        train_index=np.arange(n_train, dtype=np.int64),
        val_index=np.arange(n_train, n_train + NUM_VAL, dtype=np.int64),
        test_index=np.sort(test_ids),
        num_classes=ally.shape[1],
    )


def _find_files(key: str, folder, progress: bool) -> dict[str, Path]:
    fnames = [f"ind.{key}.{part}" for part in PARTS]
    if folder is not None:
        paths = {f: Path(folder) / f for f in fnames}
        missing = [
            (f, BASE_URL + f, MD5S.get(f, "unpublished"))
            for f, p in paths.items()
            if not p.is_file()
        ]
        if missing:
            raise _not_found(SUBDIR, missing, f"not in {folder}")
        for f, p in paths.items():
            _verify(p, f)
        return paths
    blob_files = [f for f in fnames if f in GIT_BLOBS]
    paths = {f: _find_by_blob(f) for f in blob_files}  # first: it is the one that cannot download
    paths.update(get_files({f: MD5S[f] for f in fnames if f in MD5S}, SUBDIR, BASE_URL, progress))
    return {f: paths[f] for f in fnames}


def _find_by_blob(fname: str) -> Path:
    root = os.environ.get(DATA_DIR_ENV)
    places = ([Path(root).expanduser() / SUBDIR / fname] if root else []) + [
        cache_dir() / SUBDIR / fname
    ]
    for p in places:
        if p.is_file():
            _verify(p, fname)
            return p
    url, blob = BASE_URL + fname, GIT_BLOBS[fname]
    exc = DatasetNotFoundError(
        "\n".join(
            [
                f"Dataset file not found: {fname}. No md5 is published for it, so fundl does "
                "not download it.",
                f"Fix: fetch it by hand from {url}",
                f"  (its git blob id, as `git hash-object {fname}` prints, must be {blob})",
                "and put it into "
                + " or ".join(str(p.parent) + "/" for p in places)
                + "."
                + ("" if root else f" (or set {DATA_DIR_ENV} and use $FUNDL_DATA_DIR/{SUBDIR}/)"),
            ]
        )
    )
    exc.missing, exc.subdir, exc.reason = [(fname, url, None)], SUBDIR, "no md5 published"
    raise exc


def _verify(path: Path, fname: str) -> None:
    if fname in GIT_BLOBS:
        got, want, kind = git_blob_sha1(path), GIT_BLOBS[fname], "git blob id"
    else:
        got, want, kind = file_md5(path), MD5S[fname], "md5"
    if got != want:
        raise ChecksumError(
            f"{path} has {kind} {got}, expected {want}: it is corrupt or a "
            f"different file. Replace it with the original {fname}."
        )


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The id git gives a file's content (``git hash-object FILE``).

    The sha1 of ``b"blob <size>\\0" + content``.

    Args:
        path: the file.

    Returns:
        str: 40 lowercase hex digits.

    Example:
        >>> import tempfile; f = tempfile.NamedTemporaryFile(); git_blob_sha1(f.name)
        'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391'
    """
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read(path: Path, part: str):
    """Read one pickle and check it is the kind of object this part must be."""
    obj = _safe_pickle.load(path)
    if part in ("allx", "tx"):
        ok = isinstance(obj, CsrArrays)
        if ok:
            _check_csr(obj, path)
    elif part in ("y", "ally", "ty"):
        ok = isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.dtype.kind in "biuf"
    else:  # graph
        ok = isinstance(obj, dict) and all(
            type(k) is int and isinstance(v, list) and all(type(n) is int for n in v)
            for k, v in obj.items()
        )
    if not ok:
        want = {
            "allx": "a CSR matrix",
            "tx": "a CSR matrix",
            "graph": "a dict of int -> list of ints",
        }
        raise CorruptFileError(
            f"{path}: expected {want.get(part, 'a 2-D numeric array')}, found "
            f"{type(obj).__name__}. Replace the file with the original."
        )
    return obj


def _check_csr(m: CsrArrays, path: Path) -> None:
    rows, cols = m.shape
    ptr = m.indptr
    good = (
        len(ptr) == rows + 1
        and ptr.dtype.kind in "iu"
        and m.indices.dtype.kind in "iu"
        and m.data.dtype.kind in "biuf"
        and len(m.indices) == len(m.data)
        and (rows == 0 or (ptr[0] == 0 and ptr[-1] == len(m.data) and np.all(np.diff(ptr) >= 0)))
        and (len(m.indices) == 0 or (m.indices.min() >= 0 and m.indices.max() < cols))
    )
    if not good:
        raise CorruptFileError(
            f"{path}: the CSR matrix of shape {m.shape} has inconsistent "
            "indptr/indices/data. Replace the file with the original."
        )


def _scatter_rows(out: np.ndarray, rows: np.ndarray, m: CsrArrays) -> None:
    """out[rows[r]] = row r of the CSR matrix m (repeated column entries add up, as in SciPy)."""
    counts = np.diff(m.indptr)
    np.add.at(out, (np.repeat(rows, counts), m.indices), m.data.astype(out.dtype))


def _read_index(path: Path) -> np.ndarray:
    try:
        ids = [int(line) for line in path.read_text("ascii").split()]
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: expected one node id per line ({exc}). " "Replace the file with the original."
        ) from None
    if not ids:
        raise CorruptFileError(f"{path}: holds no node ids. Replace the file with the original.")
    return np.asarray(ids, dtype=np.int64)


def _edges(graph: dict, num_nodes: int, path: Path) -> np.ndarray:
    """(2, E) directed edges from an adjacency dict: symmetrised, deduplicated, no self-loops,
    sorted."""
    src = np.fromiter((k for k, v in graph.items() for _ in v), np.int64)
    dst = np.fromiter((n for v in graph.values() for n in v), np.int64)
    ids = np.concatenate([src, dst, list(graph)]).astype(np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= num_nodes):
        raise CorruptFileError(
            f"{path}: node ids must lie in 0..{num_nodes - 1}, found "
            f"{ids.min()}..{ids.max()}. Replace the file with the original."
        )
    keep = src != dst
    src, dst = src[keep], dst[keep]
    # One int64 key per directed edge: np.unique both deduplicates and sorts by (source, target).
    codes = np.unique(np.concatenate([src * num_nodes + dst, dst * num_nodes + src]))
    return np.stack([codes // num_nodes, codes % num_nodes])
