"""CIFAR-10 binary archive parsing, on small synthetic archives built here (no real copy exists)."""
import hashlib
import io
import tarfile

import numpy as np
import pytest

from fundl.datasets import ChecksumError, cifar10

DIR = "cifar-10-batches-bin"
BATCHES = [f"{DIR}/data_batch_{i}.bin" for i in range(1, 6)] + [f"{DIR}/test_batch.bin"]


def records(n: int, seed: int, label: int | None = None):
    """n CIFAR records as bytes, and the expected channel-last images and (n, 1) labels."""
    rng = np.random.default_rng(seed)
    chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = (rng.integers(0, 10, (n, 1), dtype=np.uint8) if label is None
              else np.full((n, 1), label, np.uint8))
    data = np.concatenate([labels, chw.reshape(n, -1)], axis=1).tobytes()
    return data, chw.transpose(0, 2, 3, 1), labels


def make_archive(path, members, extra_dir=True):
    """Write a .tar.gz holding `members` ({name: bytes}; a None value adds a symlink)."""
    with tarfile.open(path, "w:gz") as tar:
        if extra_dir:
            info = tarfile.TarInfo(DIR)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def good_members(per_batch=2):
    members, expected = {}, {}
    for seed, name in enumerate(BATCHES):
        members[name], *expected[name] = records(per_batch, seed)
    return members, expected


def test_load_data_through_get_file(tmp_path, monkeypatch):
    members, expected = good_members()
    members[f"{DIR}/batches.meta.txt"] = b"airplane\n"  # shipped in the real archive, ignored
    data_dir = tmp_path / "data"
    (data_dir / "cifar10").mkdir(parents=True)
    archive = make_archive(data_dir / "cifar10" / "tiny.tar.gz", members)
    monkeypatch.setenv("FUNDL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FUNDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FUNDL_DATASETS_URL", "http://127.0.0.1:9")  # must not be used
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()

    (x, y), (xt, yt) = cifar10.load_data(fname="tiny.tar.gz", md5=md5, progress=False)
    assert x.shape == (10, 32, 32, 3) and y.shape == (10, 1)
    assert xt.shape == (2, 32, 32, 3) and yt.shape == (2, 1)
    assert x.dtype == y.dtype == xt.dtype == yt.dtype == np.uint8
    np.testing.assert_array_equal(x, np.concatenate([expected[n][0] for n in BATCHES[:5]]))
    np.testing.assert_array_equal(y, np.concatenate([expected[n][1] for n in BATCHES[:5]]))
    np.testing.assert_array_equal(xt, expected[BATCHES[5]][0])
    np.testing.assert_array_equal(yt, expected[BATCHES[5]][1])
    assert x.flags.c_contiguous and xt.flags.c_contiguous and xt.flags.writeable
    # Nothing was extracted and no cache folder was made.
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cifar10", "data", "tiny.tar.gz"]

    with pytest.raises(ChecksumError):
        cifar10.load_data(fname="tiny.tar.gz", md5="0" * 32, progress=False)


def test_channel_layout(tmp_path):
    """Record bytes are R plane, G plane, B plane; pixel (h, w) of channel c sits at c*1024 + h*32 + w."""
    record = np.zeros(3073, np.uint8)
    record[0] = 7
    record[1 + 1 * 1024 + 2 * 32 + 5] = 200  # green, row 2, column 5
    members = {name: record.tobytes() for name in BATCHES}
    (x, y), _ = cifar10.read_archive(make_archive(tmp_path / "a.tar.gz", members))
    assert y[0, 0] == 7 and x[0, 2, 5, 1] == 200 and x[0].sum() == 200


@pytest.mark.parametrize("bad", ["../evil.bin", "/etc/evil.bin", f"{DIR}/../../evil.bin", f"{DIR}/extra.bin",
                                 "other/data_batch_1.bin"])
def test_rejects_unexpected_member(tmp_path, bad):
    members, _ = good_members(1)
    members[bad] = b"x"
    with pytest.raises(ValueError, match="unexpected archive member"):
        cifar10.read_archive(make_archive(tmp_path / "a.tar.gz", members))


def test_rejects_symlink_with_expected_name(tmp_path):
    members, _ = good_members(1)
    members[BATCHES[0]] = None
    with pytest.raises(ValueError, match="link or special entry"):
        cifar10.read_archive(make_archive(tmp_path / "a.tar.gz", members))


def test_rejects_missing_batch(tmp_path):
    members, _ = good_members(1)
    del members[BATCHES[5]]
    with pytest.raises(ValueError, match="missing member.*test_batch.bin"):
        cifar10.read_archive(make_archive(tmp_path / "a.tar.gz", members))


def test_rejects_duplicate_batch(tmp_path):
    members, _ = good_members(1)
    path = make_archive(tmp_path / "a.tar.gz", members)
    with tarfile.open(path, "r:gz") as tar:
        entries = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    with tarfile.open(path, "w:gz") as tar:
        for m, data in entries + entries[1:2]:
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ValueError, match="appears twice"):
        cifar10.read_archive(path)


@pytest.mark.parametrize("data, match", [(b"\0" * 3000, "3000 bytes"), (b"", "0 bytes"),
                                         (records(2, 0, label=10)[0], "label 10")])
def test_rejects_bad_records(tmp_path, data, match):
    members, _ = good_members(1)
    members[BATCHES[2]] = data
    with pytest.raises(ValueError, match=match):
        cifar10.read_archive(make_archive(tmp_path / "a.tar.gz", members))


def test_rejects_non_archive(tmp_path):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"definitely not a tarball")
    with pytest.raises(ValueError, match="cannot read the gzip tar archive"):
        cifar10.read_archive(path)


def test_canonical_source_is_the_binary_archive():
    assert cifar10.URL == "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    assert cifar10.MD5 == "c32a1d4ab5d03f1284b67883e8d87530" and len(cifar10.CLASS_NAMES) == 10
