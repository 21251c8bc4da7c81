"""``jepa shards``: image folders, videos and episodes written as verified webdataset shards."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from webdataset.tariterators import tarfile_samples

from jepa.cli import main
from jepa.data import shard_sink
from jepa.data.shard_writer import (
    parse_size,
    write_episode_shards,
    write_image_shards,
    write_video_shards,
)
from jepa.data.shards import SkipLog, count_samples, decode_image, raw_samples
from jepa.data.spec import open_image_data
from jepa.errors import JEPAError

from conftest import SHARED_DATA

VIDEOS = SHARED_DATA / "videos"
CORRUPT = "decord_tests_test_data_corrupted.mp4"
PUSHT = SHARED_DATA / "pusht" / "pusht-{000000..000003}.tar"
needs_videos = pytest.mark.skipif(not (VIDEOS / CORRUPT).exists(), reason="../shared/data/videos not present")
needs_pusht = pytest.mark.skipif(not (SHARED_DATA / "pusht" / "pusht-000000.tar").exists(),
                                 reason="../shared/data/pusht not present")


def _samples(urls):
    return [s for url in urls for s in tarfile_samples([{"url": url}])]


def _image_folder(root: Path) -> Path:
    """cat/0..2.png and dog/0..2.jpg, plus dog/broken.jpg that no decoder opens."""
    for label, (name, ext) in enumerate((("cat", "png"), ("dog", "jpg"))):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (12, 10), (40 * i, 100 * label, 7)).save(root / name / f"{i}.{ext}")
    (root / "dog" / "broken.jpg").write_bytes(b"not an image")
    return root


def test_image_folder_shards_are_read_by_training_with_their_labels(tmp_path):
    src = _image_folder(tmp_path / "src")
    with pytest.warns(UserWarning, match="skipped 1"):
        report = write_image_shards(src, str(tmp_path / "out" / "train-%06d.tar"), max_count=4)
    assert (report.samples, report.skipped, len(report.shards)) == (6, 1, 2)
    assert report.skipped_examples[0][0].endswith("broken.jpg")
    assert report.brace_pattern == f"{tmp_path}/out/train-{{000000..000001}}.tar"
    assert report.bytes == sum(os.path.getsize(p) for p in report.shards)

    data = open_image_data(report.brace_pattern)
    assert data.urls == report.shards and data.classes == ("cat", "dog")
    assert count_samples(data.urls) == 6
    seen = set()
    for url in data.urls:
        for sample in raw_samples(url, SkipLog()):
            img, label = decode_image(sample)
            name, index = sample["__key__"].split("_")
            ext = "png" if name == "cat" else "jpg"
            assert label == ("cat", "dog").index(name) and img.size == (12, 10)
            assert sample[ext] == (src / name / f"{index}.{ext}").read_bytes()  # original bytes
            seen.add(sample["__key__"])
    assert len(seen) == 6


def test_flat_image_folder_through_the_command_has_no_labels(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / "src" / f"{i}.png")
    out = tmp_path / "out" / "flat-%06d.tar"
    assert main(["shards", "images", str(tmp_path / "src"), str(out)]) == 0
    shard = tmp_path / "out" / "flat-000000.tar"
    assert capsys.readouterr().out.strip() == f"wrote 2 samples to 1 shard (DATA spec: {shard}); skipped 0"
    assert not (tmp_path / "out" / "classes.txt").exists()
    assert [decode_image(s)[1] for s in _samples([str(shard)])] == [None, None]


@needs_videos
def test_shared_videos_keep_their_bytes_and_the_corrupt_clip_is_skipped(tmp_path):
    with pytest.warns(UserWarning, match="skipped 1"):
        report = write_video_shards(VIDEOS, str(tmp_path / "v-%06d.tar"), max_bytes=parse_size("3MB"))
    assert (report.samples, report.skipped, report.classes) == (24, 1, None)
    assert Path(report.skipped_examples[0][0]).name == CORRUPT
    assert len(report.shards) > 1 and all(os.path.getsize(p) <= 3_000_000 for p in report.shards)
    sources = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in VIDEOS.iterdir()}
    names = set()
    for sample in _samples(report.shards):
        (ext,) = [k for k in sample if not k.startswith("__")]  # no .cls: a flat folder has no labels
        source = sources[hashlib.sha256(sample[ext]).hexdigest()]  # the original bytes of a source file
        assert source.suffix == f".{ext}" and sample["__key__"].startswith(source.stem)  # keys name sources
        names.add(source.name)
    assert names == {p.name for p in VIDEOS.iterdir()} - {CORRUPT}


@needs_videos
def test_video_list_gives_labels_and_skips_missing_and_corrupt_files(tmp_path):
    small = {"decord_tests_test_data_video_0.mov": 0, "decord_tests_test_data_video_90.mov": 1,
             "torchcodec_test_resources_h265_video.mp4": 2, CORRUPT: 1, "missing.mp4": 0}
    lists = tmp_path / "lists"
    lists.mkdir()
    # Relative paths are relative to the list's own folder.
    lines = ["# path label"] + [f"{os.path.relpath(VIDEOS / name, lists)} {label}" for name, label in small.items()]
    (lists / "train.txt").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="skipped 2"):
        report = write_video_shards(lists / "train.txt", str(tmp_path / "out" / "v-%06d.tar"), max_bytes=50_000)
    assert (report.samples, report.skipped) == (3, 2)
    reasons = {Path(name).name: why for name, why in report.skipped_examples}
    assert reasons["missing.mp4"] == "does not exist" and CORRUPT in reasons
    assert len(report.shards) > 1 and all(os.path.getsize(p) <= 50_000 for p in report.shards)
    for sample in _samples(report.shards):
        ext = "mov" if "mov" in sample else "mp4"
        assert int(sample["cls"]) == small[f"{sample['__key__']}.{ext}"]


def test_unparseable_list_line_is_named(tmp_path):
    (tmp_path / "bad.txt").write_text("a.mp4 0\na.mp4 cat\n")
    with pytest.raises(JEPAError, match=r"bad\.txt:2: expected 'path label'") as info:
        write_video_shards(tmp_path / "bad.txt", str(tmp_path / "v-%06d.tar"))
    assert "\n" not in str(info.value)


@needs_pusht
def test_pusht_reshards_into_smaller_shards_with_equal_arrays(tmp_path):
    original = {s["__key__"]: s for s in _samples(sorted(str(p) for p in PUSHT.parent.glob("pusht-*.tar")))}
    report = write_episode_shards(str(PUSHT), str(tmp_path / "p-%06d.tar"), max_count=60)
    assert (report.samples, report.skipped, len(report.shards)) == (206, 0, 4)
    assert report.warnings == []  # every Push-T video has exactly T frames
    assert [count_samples([p]) for p in report.shards] == [60, 60, 60, 26]
    written = {s["__key__"]: s for s in _samples(report.shards)}
    assert written.keys() == original.keys()
    for key, sample in written.items():
        assert set(sample) - {"__url__"} == set(original[key]) - {"__url__"}
        for member in ("action.npy", "state.npy", "keypoint.npy"):
            np.testing.assert_array_equal(np.load(io.BytesIO(sample[member])),
                                          np.load(io.BytesIO(original[key][member])))
        assert sample["mp4"] == original[key]["mp4"]


@needs_pusht
def test_episode_folder_layouts_and_bad_episodes(tmp_path):
    episodes = _samples([str(PUSHT.parent / "pusht-000000.tar")])[:3]
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)  # an episode as a subfolder
    (src / "sub" / "video.mp4").write_bytes(episodes[0]["mp4"])
    for member in ("action.npy", "state.npy"):
        (src / "sub" / member).write_bytes(episodes[0][member])
    for member in ("mp4", "action.npy", "state.npy", "keypoint.npy"):  # an episode as files
        (src / f"flat.{member}").write_bytes(episodes[1][member])
    state = np.load(io.BytesIO(episodes[2]["state.npy"]))
    (src / "short.mp4").write_bytes(episodes[2]["mp4"])
    (src / "short.action.npy").write_bytes(episodes[2]["action.npy"])
    np.save(src / "short.state.npy", state[:-1])
    (src / "odd.mp4").write_bytes(episodes[0]["mp4"])  # video of another length than its arrays
    (src / "odd.action.npy").write_bytes(episodes[1]["action.npy"])
    (src / "odd.state.npy").write_bytes(episodes[1]["state.npy"])

    with pytest.warns(UserWarning):
        report = write_episode_shards(src, str(tmp_path / "out" / "e-%06d.tar"))
    assert (report.samples, report.skipped) == (3, 1)
    assert report.skipped_examples[0][0].endswith("short.mp4")
    assert "need the same length" in report.skipped_examples[0][1]
    t0, t1 = (len(np.load(io.BytesIO(e["action.npy"]))) for e in episodes[:2])
    assert len(report.warnings) == 1 and f"video has {t0} frames but T = {t1}" in report.warnings[0]
    written = {s["__key__"]: s for s in _samples(report.shards)}
    assert set(written["flat"]) - {"__key__", "__url__"} == {"mp4", "action.npy", "state.npy", "keypoint.npy"}
    assert written["sub"]["action.npy"] == episodes[0]["action.npy"]


@pytest.mark.parametrize("kind", ["images", "videos", "episodes"])
def test_missing_source_is_one_line_naming_it(tmp_path, capsys, kind):
    missing = tmp_path / "nowhere"
    assert main(["shards", kind, str(missing), str(tmp_path / "out-%06d.tar")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and err.count("\n") == 1


def test_existing_shards_are_refused_unless_overwrite(tmp_path):
    src = _image_folder(tmp_path / "src")
    pattern = str(tmp_path / "out" / "s-%06d.tar")
    with pytest.warns(UserWarning):
        first = write_image_shards(src, pattern, max_count=1)
    assert len(first.shards) == 6
    with pytest.raises(JEPAError, match="s-000000.tar already exists .*--overwrite"):
        write_image_shards(src, pattern, max_count=4)
    with pytest.warns(UserWarning):
        second = write_image_shards(src, pattern, max_count=4, overwrite=True)
    # Old shards past the new set are removed, so the folder holds exactly the new set.
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == ["s-000000.tar", "s-000001.tar"]
    assert count_samples(second.shards) == 6


def test_failed_verification_leaves_no_shards(tmp_path, monkeypatch):
    src = _image_folder(tmp_path / "src")
    real = shard_sink.read_back

    def tampered(path):
        samples = real(path)
        samples[-1][1]["cls"] = "0" * 64
        return samples

    monkeypatch.setattr(shard_sink, "read_back", tampered)
    with pytest.raises(JEPAError, match=r"verifying .*s-000000.tar failed: sample \w+ .*different cls"):
        write_image_shards(src, str(tmp_path / "out" / "s-%06d.tar"))
    assert os.listdir(tmp_path / "out") == []  # no shard, no temporary file


@pytest.mark.parametrize("pattern", ["out/train.tar", "out/train-{000000..000009}.tar", "out/train-%06d.tgz",
                                     "out/%d-%d.tar"])
def test_output_pattern_needs_one_printf_number(tmp_path, pattern):
    with pytest.raises(JEPAError, match="one printf shard number, e.g. out/train-%06d.tar"):
        write_image_shards(tmp_path, str(tmp_path / pattern))


def test_parse_size():
    assert parse_size("1GB") == 10**9 and parse_size("64MiB") == 64 * 2**20 and parse_size("1000") == 1000
    with pytest.raises(JEPAError, match="not a size"):
        parse_size("big")


def test_shards_are_plain_tar_files_with_fixed_member_times(tmp_path):
    src = _image_folder(tmp_path / "src")
    with pytest.warns(UserWarning):
        report = write_image_shards(src, str(tmp_path / "a-%06d.tar"))
    with tarfile.open(report.shards[0]) as tar:
        members = tar.getmembers()
    assert len(members) == 12 and {m.mtime for m in members} == {0}
