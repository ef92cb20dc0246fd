"""The seed-experiment examples run end to end in a tiny mode and the Wasserstein models learn."""

import importlib.util
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _files_ok(files):
    for f in files:
        assert os.path.isfile(f) and os.path.getsize(f) > 0, f


def test_toy_mlp(tmp_path):
    res = _load("toy_mlp").main(["--iters", "150", "--eval-every", "25", "--quiet", "--out", str(tmp_path)])
    _files_ok(res["files"])
    assert res["train_acc"]["wasserstein"] > 0.6  # chance: 0.25
    assert res["ratio"] > 0


def test_noisy_grid(tmp_path):
    res = _load("noisy_grid").main(
        ["--d", "3", "--noise", "0.2", "--iters", "400", "--n-train", "500", "--quiet", "--out", str(tmp_path)]
    )
    _files_ok(res["files"])
    assert res["acc"]["wasserstein"] > 0.5  # chance: 1/9
    assert res["mean_dist"]["wasserstein"] < 1.0


def test_ordinal_digits(tmp_path):
    pytest.importorskip("sklearn")
    res = _load("ordinal_digits").main(
        ["--epochs", "10", "--p", "1", "--losses", "sinkhorn", "squared_emd", "--quiet", "--out", str(tmp_path)]
    )
    _files_ok(res["files"])
    acc = {s["loss"]: s["test_acc"] for s in res["summary"]}
    assert acc["sinkhorn p=1"] > 0.5  # chance: 0.1
    assert acc["squared EMD"] > 0.3
