"""Shares for many workers: ``i/N`` parsing, torchrun/Slurm environments, the partition itself,
and ``--shard`` over two workers covering every input exactly once (upscale and video)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resrgan.errors import UsageError
from resrgan.infer.shard import Shard, gpu_index, parse_shard, resolve_shard, shard_from_env, share


def test_parse_shard_reads_index_and_count() -> None:
    assert parse_shard("1/4") == Shard(1, 4)
    assert parse_shard(" 0/1 ") == Shard(0, 1)


@pytest.mark.parametrize("text", ["1", "a/2", "1/2/3", "", "1.5/2"])
def test_parse_shard_refuses_malformed_text(text: str) -> None:
    with pytest.raises(UsageError, match=r"--shard: .* is not INDEX/COUNT; use e.g. 0/4"):
        parse_shard(text)


@pytest.mark.parametrize("text", ["2/2", "-1/2", "0/0"])
def test_parse_shard_refuses_an_index_out_of_range(text: str) -> None:
    with pytest.raises(UsageError, match=r"is out of range; the index runs from 0 to count-1"):
        parse_shard(text)


def test_torchrun_environment_gives_the_rank() -> None:
    assert shard_from_env({"RANK": "3", "WORLD_SIZE": "4"}) == Shard(3, 4, "RANK/WORLD_SIZE")


def test_one_worker_is_no_shard() -> None:
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert shard_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None
    assert shard_from_env({}) is None


def test_slurm_task_rank_gives_the_rank() -> None:
    got = shard_from_env({"SLURM_PROCID": "2", "SLURM_NTASKS": "3"})
    assert (got.index, got.count) == (2, 3)  # type: ignore[union-attr]


def test_slurm_array_index_counts_from_its_minimum_and_step() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3"}
    env |= {"SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_STEP": "2"}
    got = shard_from_env(env)
    assert (got.index, got.count) == (2, 3)  # type: ignore[union-attr]


def test_slurm_array_times_tasks_numbers_every_worker_once() -> None:
    seen = set()
    for task in range(3):
        for procid in range(2):
            env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "3"}
            env |= {"SLURM_PROCID": str(procid), "SLURM_NTASKS": "2"}
            got = shard_from_env(env)
            assert got is not None and got.count == 6
            seen.add(got.index)
    assert seen == set(range(6))


def test_torchrun_wins_over_slurm() -> None:
    env = {"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "5", "SLURM_NTASKS": "8"}
    assert shard_from_env(env) == Shard(1, 2, "RANK/WORLD_SIZE")


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(UsageError, match=r"environment: RANK='x' is not a whole number"):
        shard_from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_flag_wins_over_environment() -> None:
    assert resolve_shard("0/3", {"RANK": "1", "WORLD_SIZE": "2"}) == Shard(0, 3)
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) == Shard(1, 2, "RANK/WORLD_SIZE")


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 16])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 9])
def test_shares_partition_the_list_in_order_with_sizes_within_one(n: int, count: int) -> None:
    items = [f"f{i:02d}" for i in range(n)]
    parts = [share(items, Shard(i, count)) for i in range(count)]
    assert [x for p in parts for x in p] == items
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_no_shard_takes_everything() -> None:
    assert share([3, 1, 2], None) == [3, 1, 2]


def test_gpu_index_follows_local_rank_modulo_the_gpus() -> None:
    assert gpu_index({"LOCAL_RANK": "5"}, 4) == 1
    assert gpu_index({"SLURM_LOCALID": "2"}, 4) == 2
    assert gpu_index({"LOCAL_RANK": "1"}, 0) is None
    assert gpu_index({}, 4) is None


# --- the CLIs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from resrgan.nets import SRVGGNetCompact
    from resrgan.weights.load import save_weights

    torch.manual_seed(0)
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4, act_type="prelu")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(path, net.state_dict())
    return path


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_upscale_two_shards_cover_every_image_once(
    tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from resrgan.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        rgb = np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(src / f"img{i}.png")
    done: list[str] = []
    for rank in range(2):
        args = ["upscale", "-i", str(src), "-o", str(tmp_path / "out"), "--json"]
        code = main([*args, "--model_path", str(tiny_weights), "--shard", f"{rank}/2"])
        assert code == 0
        done += [r["input"] for r in _records(capsys.readouterr().out) if r.get("status")]
    assert sorted(Path(p).name for p in done) == [f"img{i}.png" for i in range(5)]
    assert len({p.name for p in (tmp_path / "out").iterdir()}) == 5


def test_upscale_takes_its_share_from_torchrun_variables(
    tmp_path: Path,
    tiny_weights: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resrgan.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(src / f"img{i}.png")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = ["upscale", "-i", str(src), "-o", str(tmp_path / "out"), "--json", "--device", "cpu"]
    assert main([*args, "--model_path", str(tiny_weights)]) == 0
    done = [r["input"] for r in _records(capsys.readouterr().out) if r.get("status") == "done"]
    assert sorted(Path(p).name for p in done) == ["img2.png", "img3.png"]


def test_video_two_shards_cover_every_file_once(
    tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _video_clips import make_clip
    from resrgan.cli import main

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        make_clip(src / f"clip{i}.mp4", n=3, audio=None, h=16, w=16)
    done: list[str] = []
    for rank in range(2):
        args = ["video", "-i", str(src), "-o", str(tmp_path / "out"), "--json", "-s", "1"]
        code = main([*args, "--model_path", str(tiny_weights), "--shard", f"{rank}/2"])
        assert code == 0
        done += [r["input"] for r in _records(capsys.readouterr().out) if r.get("status")]
    assert sorted(Path(p).name for p in done) == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "clip0_out.mp4",
        "clip1_out.mp4",
        "clip2_out.mp4",
    ]


def test_video_two_shards_split_one_video_by_segment_and_the_last_joins(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from _video_clips import make_clip, read_back
    from resrgan import Upscaler
    from resrgan.infer.video import VideoJob, VideoSettings, upscale_video
    from resrgan.nets import SRVGGNetCompact

    torch.manual_seed(0)
    up = Upscaler(SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4), tile=0)
    clip = make_clip(tmp_path / "long.mp4", n=12, gop=3, audio="aac")
    job = VideoJob(clip.path, tmp_path / "out" / "long_out.mp4")
    settings = VideoSettings(outscale=1, segment_seconds=0.1)  # 4 segments of 3 frames
    first = upscale_video(job, up, settings, shard=Shard(0, 2))
    assert (first.status, first.segments, first.segments_done) == ("partial", 4, 2)
    assert not job.output.exists()
    second = upscale_video(job, up, settings, shard=Shard(1, 2))
    assert second.status == "done"
    assert first.encoded + second.encoded == 12  # every frame upscaled exactly once
    got, want = read_back(job.output), read_back(clip.path)
    assert got.video_pts == want.video_pts
    assert got.audio == want.audio
