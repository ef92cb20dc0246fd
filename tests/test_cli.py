"""Tests of the command line (otcore/__main__.py): `main([...])` on temporary files, outputs,
exit codes and messages, and one real `python -m otcore demo` subprocess."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from otcore.__main__ import main

ot = pytest.importorskip("ot")  # POT, the reference (the test extra)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, rows, sep=","):
    with open(path, "w") as f:
        for r in rows:
            f.write(sep.join(str(v) for v in r) + "\n")
    return str(path)


@pytest.fixture
def files(tmp_path):
    A = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    B = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    a = _write(tmp_path / "A.csv", A)
    b = _write(tmp_path / "B.txt", B, sep=" ")
    return A, B, a, b, tmp_path


def _lines(out):
    return [float(x) for x in out.strip().split("\n")]


def _M(k, p=1.0):
    x = np.arange(k, dtype=float)
    return np.abs(x[:, None] - x[None, :]) ** p


# --------------------------------------------------------------------------------------
# distances


def test_rowwise_exact_default_metric(files, capsys):
    A, B, a, b, _ = files
    assert main(["distance", a, b]) == 0
    got = _lines(capsys.readouterr().out)
    ref = [ot.emd2(x, y, _M(4)) for x, y in zip(A, B)]
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_single_row_against_many_and_npy(files, capsys):
    A, B, a, _, tmp = files
    one = tmp / "one.npy"
    np.save(one, B[1])  # a 1-D .npy is one histogram
    assert main(["distance", a, str(one), "--metric", "ordinal", "--p", "2"]) == 0
    got = _lines(capsys.readouterr().out)
    np.testing.assert_allclose(got, [ot.emd2(x, B[1], _M(4, 2)) for x in A], rtol=1e-9)


def test_json_output(files, capsys):
    A, B, a, b, _ = files
    assert main(["distance", a, b, "--method", "cdf", "--rho", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "cdf" and out["params"]["rho"] == 2.0
    ref = [np.sum(np.cumsum(x - y)[:-1] ** 2) for x, y in zip(A, B)]
    np.testing.assert_allclose(out["distances"], ref, rtol=1e-12)
    assert out["shape"] == [3] and out["pairwise"] is False


def test_pairwise_one_file_to_npy_and_csv(files, capsys):
    A, _, a, _, tmp = files
    out_npy = str(tmp / "D.npy")
    assert main(["distance", a, "--pairwise", "--output", out_npy]) == 0
    assert "wrote 3 x 3 distances" in capsys.readouterr().out
    D = np.load(out_npy)
    ref = np.array([[ot.emd2(x, y, _M(4)) for y in A] for x in A])
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-12)
    out_csv = str(tmp / "D.csv")
    assert main(["distance", a, "--pairwise", "--method", "1d", "--output", out_csv, "--quiet"]) == 0
    np.testing.assert_allclose(np.loadtxt(out_csv, delimiter=","), ref, rtol=1e-9, atol=1e-12)


def test_pairwise_two_files_json_and_text(files, capsys):
    A, B, a, b, _ = files
    assert main(["distance", a, b, "--pairwise", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    ref = np.array([[ot.emd2(x, y, _M(4)) for y in B] for x in A])
    np.testing.assert_allclose(out["distances"], ref, rtol=1e-9, atol=1e-12)
    assert out["shape"] == [3, 3] and out["pairwise"] is True
    assert main(["distance", a, b, "--pairwise", "--quiet"]) == 0
    rows = [list(map(float, r.split())) for r in capsys.readouterr().out.strip().split("\n")]
    np.testing.assert_allclose(rows, ref, rtol=1e-9, atol=1e-12)


def test_progress_bar_on_stderr(files, capsys):
    _, _, a, b, _ = files
    assert main(["distance", a, b, "--pairwise"]) == 0
    err = capsys.readouterr().err
    if importlib.util.find_spec("tqdm") is not None:
        assert "pair" in err


def test_cost_file_and_grid_and_positions(files, capsys, tmp_path):
    A, B, a, b, tmp = files
    C = np.arange(16, dtype=float).reshape(4, 4) % 5
    c = _write(tmp / "C.csv", C)
    assert main(["distance", a, b, "--cost", c]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, C) for x, y in zip(A, B)], rtol=1e-9)
    # --grid: 4 bins form a 2 x 2 grid
    g = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    Mg = ot.dist(g, g, metric="sqeuclidean")
    assert main(["distance", a, b, "--grid", "--metric", "sqeuclidean"]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, Mg) for x, y in zip(A, B)], rtol=1e-9)
    # --positions: coordinates of the bins
    pos = np.array([[0.0], [1.0], [3.0], [7.0]])
    p = _write(tmp / "pos.txt", pos)
    Mp = np.abs(pos - pos.T)
    assert main(["distance", a, b, "--positions", p]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, Mp) for x, y in zip(A, B)], rtol=1e-9)
    assert main(["distance", a, b, "--positions", p, "--method", "1d"]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, Mp) for x, y in zip(A, B)], rtol=1e-9)
    assert main(["distance", a, b, "--positions", p, "--method", "cdf"]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, Mp) for x, y in zip(A, B)], rtol=1e-9)


def test_header_comments_and_normalize(tmp_path, capsys):
    a = tmp_path / "counts.csv"
    a.write_text("# counts per class\nc1,c2,c3\n2,2,0\n\n0,3,0  # second\n")
    assert main(["distance", str(a), "--pairwise", "--quiet"]) == 2
    assert "pass --normalize" in capsys.readouterr().err
    assert main(["distance", str(a), "--pairwise", "--quiet", "--normalize", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(out["distances"], [[0, 0.5], [0.5, 0]], atol=1e-12)
    assert out["params"]["normalize"] is True


def test_sinkhorn(files, capsys):
    _, _, _, _, tmp = files
    rng = np.random.default_rng(1)
    A = rng.random((3, 4)) + 0.1
    B = rng.random((3, 4)) + 0.1
    A /= A.sum(1, keepdims=True)
    B /= B.sum(1, keepdims=True)
    a, b = _write(tmp / "Ap.csv", A), _write(tmp / "Bp.npy", [])
    np.save(b, B)
    assert main(["distance", a, b, "--reg", "0.5", "--n-iter", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "sinkhorn" and out["params"]["reg"] == 0.5
    ref = [ot.sinkhorn2(x, y, _M(4), 0.5, numItermax=200, stopThr=0) for x, y in zip(A, B)]
    np.testing.assert_allclose(out["distances"], ref, rtol=1e-8)


def test_tree(files, capsys):
    from otcore._tree import tree_metric

    A, B, a, b, tmp = files
    t = _write(tmp / "tree.txt", [[-1, 0], [0, 1.0], [0, 2.0], [1, 0.5]], sep=" ")
    assert main(["distance", a, b, "--tree", t]) == 0
    Mt = np.asarray(tree_metric(np.array([-1, 0, 0, 1]), np.array([0, 1.0, 2.0, 0.5])))
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, Mt) for x, y in zip(A, B)], rtol=1e-9)


# --------------------------------------------------------------------------------------
# errors: exit code 2, messages name the file, line and fix


def _err(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "content, match",
    [
        ("0.5,0.5\n0.2,0.3,0.5\n", r"X.csv, line 2: 3 values, but line 1 has 2.*ragged"),
        ("0.5,0.5\n-0.5,1.5\n", r"X.csv, line 2, column 1: negative mass -0.5"),
        ("0.5,nan\n", r"X.csv, line 1, column 2: nan is not a finite mass"),
        ("0.5,abc\n", r"X.csv, line 1, column 2: cannot read 'abc' as a number"),
        ("0.5,,0.5\n", r"X.csv, line 1, column 2: empty field"),
        ("1,0\n0,0\n", r"X.csv, line 2: all-zero histogram"),
        ("\n# nothing\n", r"X.csv: no numbers found"),
    ],
)
def test_file_errors(tmp_path, capsys, content, match):
    x = tmp_path / "X.csv"
    x.write_text(content)
    code, err = _err(capsys, ["distance", str(x), "--pairwise", "--quiet"])
    assert code == 2
    assert err.startswith("otcore: error:")
    assert re.search(match, err), err


def test_npy_errors(tmp_path, capsys):
    x = tmp_path / "X.npy"
    np.save(x, np.array([[0.5, 0.5], [1.5, -0.5]]))
    code, err = _err(capsys, ["distance", str(x), "--pairwise"])
    assert code == 2 and "X.npy, row 1, column 2: negative mass" in err
    np.save(x, np.ones((2, 2, 2)))
    code, err = _err(capsys, ["distance", str(x), "--pairwise"])
    assert code == 2 and "must be 2-D" in err


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--cost", "{C3}"], r"C3.csv: the cost is 3 x 3 but .* has 4 bins .* must be \(bins of A\) x \(bins of B\)"),
        (["--method", "sinkhorn"], r"needs --reg"),
        (["--reg", "0.1", "--method", "exact"], r"--reg is the Sinkhorn regularisation"),
        (["--method", "tree"], r"needs --tree FILE"),
        (["--method", "cdf", "--cost", "{C3}"], r"does not use a cost matrix"),
        (["--output", "{tmp}/D.xlsx"], r"unknown file type '\.xlsx'; write to a \.npy, \.csv, \.tsv or \.txt file"),
        (["--grid", "--method", "exact", "--positions", "{C3}"], r"3 positions but"),
        (["--metric", "ordinal", "--grid"], r"ordinal puts the bins on a line"),
        (["--metric", "sqeuclidean", "--method", "1d"], r"--metric is not used by --method 1d"),
        (["--method", "1d", "--grid"], r"needs positions on a line"),
        (["--method", "sinkhorn", "--reg", "-1"], r"--reg must be a positive number"),
    ],
)
def test_option_errors(files, capsys, extra, match):
    _, _, a, b, tmp = files
    c3 = _write(tmp / "C3.csv", np.ones((3, 3)))
    extra = [e.format(C3=c3, tmp=tmp) for e in extra]
    code, err = _err(capsys, ["distance", a, b, *extra])
    assert code == 2, err
    assert re.search(match, err), err


@pytest.mark.parametrize(
    "content, match",
    [
        ("0,1\n1,inf\n", r"C.csv, line 2, column 2: inf in the cost; costs must be finite"),
        ("0,1\n-2,0\n", r"C.csv, line 2, column 1: negative cost -2; costs must be >= 0"),
    ],
)
def test_cost_file_errors(tmp_path, capsys, content, match):
    A = _write(tmp_path / "A.csv", [[0.5, 0.5], [1.0, 0.0]])
    c = tmp_path / "C.csv"
    c.write_text(content)
    code, err = _err(capsys, ["distance", A, "--pairwise", "--quiet", "--cost", str(c)])
    assert code == 2 and re.search(match, err), err


def test_size_errors(files, capsys):
    _, _, a, _, tmp = files
    b5 = _write(tmp / "B5.csv", [[0.2] * 5])
    code, err = _err(capsys, ["distance", a, b5, "--method", "cdf"])
    assert code == 2 and "B5.csv has 5 bins per row but" in err and "A.csv has 4" in err
    b2 = _write(tmp / "B2.csv", [[0.5, 0.5, 0, 0]] * 2)
    code, err = _err(capsys, ["distance", a, b2])
    assert code == 2 and "3 histograms" in err and "--pairwise" in err
    code, err = _err(capsys, ["distance", a, str(tmp / "missing.csv")])
    assert code == 2 and "does not exist" in err
    code, err = _err(capsys, ["distance", a, str(tmp / "x.parquet")])
    assert code == 2


def test_tree_file_errors(files, capsys):
    _, _, a, b, tmp = files
    t = _write(tmp / "T.txt", [[-1], [0], [0]])
    code, err = _err(capsys, ["distance", a, b, "--tree", t])
    assert code == 2 and "T.txt: 3 nodes but the histograms have 4 bins" in err
    t = _write(tmp / "T.txt", [[-1], [0], [0.5], [1]])
    code, err = _err(capsys, ["distance", a, b, "--tree", t])
    assert code == 2 and "T.txt, line 3: parent 0.5 is not an integer" in err


def test_usage_errors_are_exit_2(files, capsys):
    _, _, a, b, _ = files
    assert main([]) == 2
    assert main(["distance"]) == 2
    assert main(["distance", a, b, "--method", "nope"]) == 2
    assert main(["distance", a, b, "--reg", "x"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["distance", a]) == 2  # one file without --pairwise
    assert "--pairwise" in capsys.readouterr().err
    assert main(["distance", a, b, "--cost", a, "--metric", "ordinal"]) == 2  # mutually exclusive
    assert main(["--help"]) == 0
    assert main(["distance", "--help"]) == 0


# --------------------------------------------------------------------------------------
# paths and formats: checked before anything is read or computed


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if a distance kernel is built: the error must come before computing."""
    import otcore._pairwise

    def _boom(*args, **kwargs):
        raise AssertionError("computed before the input error was found")

    monkeypatch.setattr(otcore._pairwise, "_make_kernel", _boom)
    monkeypatch.setattr(otcore._pairwise, "pairwise_distances", _boom)


@pytest.mark.parametrize("which", ["A", "B", "--cost"])
def test_output_never_overwrites_an_input(files, capsys, no_compute, which):
    _, _, a, b, tmp = files
    c = _write(tmp / "C.csv", _M(4))
    target = {"A": a, "B": b, "--cost": c}[which]
    before = open(target, "rb").read()
    # the same file under another spelling of its path
    other = os.path.join(os.path.dirname(target), ".", os.path.basename(target))
    code, err = _err(capsys, ["distance", a, b, "--cost", c, "--output", other])
    assert code == 2
    assert f"is the input file {which} " in err and "refusing to write over an input" in err, err
    assert open(target, "rb").read() == before


def test_output_through_a_symlink_to_an_input(files, capsys, no_compute):
    _, _, a, b, tmp = files
    link = tmp / "link.csv"
    os.symlink(a, link)
    code, err = _err(capsys, ["distance", a, b, "--output", str(link)])
    assert code == 2 and "is the input file A" in err, err


@pytest.mark.parametrize("name, fmt", [("D.NPY", "npy"), ("D.Csv", "csv"), ("D.TXT", "txt"), ("D.tsv", "tsv")])
def test_output_exact_path_format_from_extension_any_case(files, capsys, name, fmt):
    A, B, a, b, tmp = files
    out = tmp / name
    assert main(["distance", a, b, "--output", str(out)]) == 0
    assert f"to {out}\n" in capsys.readouterr().out  # reports the path it wrote
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("D.")) == [name]  # no D.NPY.npy
    ref = [ot.emd2(x, y, _M(4)) for x, y in zip(A, B)]
    if fmt == "npy":
        got = np.load(out)
    else:
        got = np.loadtxt(out, delimiter={"csv": ",", "tsv": "\t", "txt": None}[fmt])
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_output_matrix_csv_and_tsv_round_trip(files, capsys):
    A, _, a, _, tmp = files
    ref = np.array([[ot.emd2(x, y, _M(4)) for y in A] for x in A])
    for name, sep in (("D.CSV", ","), ("D.TSV", "\t"), ("D.Txt", " ")):
        assert main(["distance", a, "--pairwise", "--quiet", "--output", str(tmp / name)]) == 0
        assert (tmp / name).read_text().splitlines()[0].count(sep) == 2
        np.testing.assert_allclose(np.loadtxt(tmp / name, delimiter=sep), ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "out, match",
    [
        ("{tmp}/missing/D.npy", r"--output '.*missing/D.npy': the folder '.*missing' does not exist; create it first"),
        ("{tmp}", r"--output '.*' is a directory; give a file name in it, e.g. '.*distances\.npy'"),
        ("{tmp}/sub.npy", r"--output '.*sub.npy' is a directory"),
        ("{tmp}/D", r"unknown file type '\(no extension\)'"),
    ],
)
def test_output_path_errors_before_reading_or_computing(files, capsys, no_compute, out, match):
    _, _, _, b, tmp = files
    (tmp / "sub.npy").mkdir()
    bad = tmp / "bad.csv"
    bad.write_text("0.5,abc\n")  # the path error is reported first: nothing was read
    code, err = _err(capsys, ["distance", str(bad), b, "--output", out.format(tmp=tmp)])
    assert code == 2 and err.startswith("otcore: error:")
    assert re.search(match, err), err
    assert not (tmp / "missing").exists()


@pytest.mark.parametrize("flag", ["B", "--cost", "--positions", "--tree"])
def test_every_input_path_checked_before_reading(files, capsys, no_compute, flag):
    _, _, _, b, tmp = files
    bad = tmp / "bad.csv"
    bad.write_text("0.5,abc\n")  # would fail when read
    missing = str(tmp / "nope.csv")
    argv = {
        "B": ["distance", str(bad), missing],
        "--cost": ["distance", str(bad), b, "--cost", missing],
        "--positions": ["distance", str(bad), b, "--positions", missing],
        "--tree": ["distance", str(bad), b, "--tree", missing],
    }[flag]
    code, err = _err(capsys, argv)
    assert code == 2 and "nope.csv' does not exist" in err, err


def test_input_directory_and_unknown_extension(files, capsys, no_compute):
    _, _, a, _, tmp = files
    code, err = _err(capsys, ["distance", a, str(tmp)])
    assert code == 2 and "is a directory; give a .npy, .csv or .txt file" in err, err
    x = tmp / "x.parquet"
    x.write_bytes(b"PAR1")
    code, err = _err(capsys, ["distance", a, str(x)])
    assert code == 2 and "x.parquet: unknown file type '.parquet'; use .npy, .csv, .tsv or .txt" in err, err


# --------------------------------------------------------------------------------------
# reading: the csv module, BOM, separators, empty .npy


def test_utf8_bom_csv(files, capsys):
    A, B, _, b, tmp = files
    a = tmp / "excel.csv"
    a.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(",".join(str(v) for v in r) for r in A).encode() + b"\r\n")
    assert main(["distance", str(a), b]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, _M(4)) for x, y in zip(A, B)], rtol=1e-9)


def test_bom_with_header_and_quoted_fields(files, capsys):
    A, B, _, b, tmp = files
    a = tmp / "excel.csv"
    body = '"c1","c2","c3","c4"\r\n' + "".join(",".join(f'"{v}"' for v in r) + "\r\n" for r in A)
    a.write_text(body, encoding="utf-8-sig")
    assert main(["distance", str(a), b]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, _M(4)) for x, y in zip(A, B)], rtol=1e-9)


@pytest.mark.parametrize("sep", ["\t", ";", " ", ", "])
def test_any_separator_in_a_csv(files, capsys, sep):
    A, B, _, b, tmp = files
    a = _write(tmp / "sep.csv", A, sep=sep)
    assert main(["distance", a, b]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, _M(4)) for x, y in zip(A, B)], rtol=1e-9)


def test_tsv_and_mixed_separator_message(files, capsys):
    A, B, _, b, tmp = files
    a = _write(tmp / "A.tsv", A, sep="\t")
    assert main(["distance", a, b]) == 0
    capsys.readouterr()
    x = tmp / "X.csv"
    x.write_text("0.5\t0.5\n0.5 0.5\n")
    code, err = _err(capsys, ["distance", str(x), "--pairwise", "--quiet"])
    assert code == 2
    assert "X.csv, line 2, column 1: cannot read '0.5 0.5' as a number; each line must hold numbers separated by tabs" in err, err


def test_not_utf8(tmp_path, capsys):
    x = tmp_path / "X.csv"
    x.write_bytes(b"0.5,0.5\n\xff\xfe,1\n")
    code, err = _err(capsys, ["distance", str(x), "--pairwise", "--quiet"])
    assert code == 2 and "X.csv: not UTF-8 text" in err, err


@pytest.mark.parametrize(
    "shape, match",
    [
        ((0, 4), r"X.npy: array of shape \(0, 4\) has no rows; A needs at least one row"),
        ((0,), r"X.npy: array of shape \(1, 0\) has rows of 0 values"),
        ((3, 0), r"X.npy: array of shape \(3, 0\) has rows of 0 values"),
    ],
)
def test_empty_npy(tmp_path, capsys, shape, match):
    x = tmp_path / "X.npy"
    np.save(x, np.zeros(shape))
    code, err = _err(capsys, ["distance", str(x), "--pairwise", "--quiet"])
    assert code == 2 and re.search(match, err), err


def test_npy_uppercase_extension_is_read(files, capsys):
    A, B, a, _, tmp = files
    np.save(tmp / "B.npy", B)
    os.rename(tmp / "B.npy", tmp / "B.NPY")
    assert main(["distance", a, str(tmp / "B.NPY")]) == 0
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, _M(4)) for x, y in zip(A, B)], rtol=1e-9)


# --------------------------------------------------------------------------------------
# numeric options name themselves


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--metric", "ordinal", "--p", "-1"], r"--p must be >= 0, got -1.0; --metric ordinal is the cost abs\(i - j\)\*\*p"),
        (["--metric", "minkowski", "--p", "-1"], r"--p must be >= 1, got -1; the Minkowski distance"),
        (["--method", "1d", "--p", "0.5"], r"--p must be >= 1, got 0.5; the 1D cost"),
        (["--metric", "ordinal", "--p", "nan"], r"--p must be finite, got nan"),
        (["--p", "2"], r"--p is the exponent of --metric ordinal.*not used by --metric euclidean"),
        (["--method", "cdf", "--rho", "0.5"], r"--rho must be >= 1, got 0.5; --method cdf sums abs\(difference\)\*\*rho"),
        (["--rho", "2"], r"--rho is the exponent of --method cdf and --method tree, not of --method exact"),
        (["--reg", "0.1", "--n-iter", "0"], r"--n-iter must be >= 1, got 0"),
        (["--reg", "0.1", "--tol", "-1"], r"--tol must be >= 0, got -1"),
        (["--n-iter", "5"], r"--n-iter and --tol set Sinkhorn's iterations; .* --method exact"),
        (["--pairwise", "--chunk-size", "0"], r"--chunk-size must be >= 1, got 0"),
    ],
)
def test_numeric_option_errors(files, capsys, no_compute, extra, match):
    _, _, a, b, _ = files
    code, err = _err(capsys, ["distance", a, b, *extra])
    assert code == 2 and err.startswith("otcore: error: ")
    assert re.search(match, err), err
    assert "M" not in err.split("error: ", 1)[1].split()[:3]  # names the option, not the cost


def test_ordinal_p0_is_the_01_cost(files, capsys):
    A, B, a, b, _ = files
    assert main(["distance", a, b, "--metric", "ordinal", "--p", "0"]) == 0
    M01 = 1.0 - np.eye(4)
    np.testing.assert_allclose(_lines(capsys.readouterr().out), [ot.emd2(x, y, M01) for x, y in zip(A, B)], rtol=1e-9)


def test_version(capsys):
    import otcore

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"otcore {otcore.__version__}"


# --------------------------------------------------------------------------------------
# failures after the checks: exit 1, never a NaN, never an input error


def _nan_kernel(monkeypatch, value=np.nan):
    import otcore._pairwise

    real = otcore._pairwise._make_kernel

    def make(*args, **kwargs):
        k = real(*args, **kwargs)
        return lambda a, b: np.where(np.arange(a.shape[0]) == 1, value, np.asarray(k(a, b)))

    monkeypatch.setattr(otcore._pairwise, "_make_kernel", make)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("fmt", [[], ["--json"], ["--output", "{tmp}/D.npy"]])
def test_non_finite_result_is_an_error(files, capsys, monkeypatch, value, fmt):
    _, _, a, b, tmp = files
    _nan_kernel(monkeypatch, value)
    code = main(["distance", a, b, *[f.format(tmp=tmp) for f in fmt]])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""  # no nan printed, no JSON with NaN
    assert f"otcore: error: 1 of 3 distances are not finite (the first, row 1, is {value}); please report" in err, err
    assert "Nothing was written" in err and not (tmp / "D.npy").exists()


def test_non_finite_sinkhorn_names_reg(files, capsys, monkeypatch):
    _, _, a, b, _ = files
    _nan_kernel(monkeypatch)
    code, err = _err(capsys, ["distance", a, b, "--reg", "0.5"])
    assert code == 1 and "Sinkhorn failed, most likely because --reg is too small" in err, err


def test_internal_type_error_is_not_an_input_error(files, capsys, monkeypatch):
    import otcore._pairwise

    def make(*args, **kwargs):
        def kernel(a, b):
            raise TypeError("an internal bug")

        return kernel

    monkeypatch.setattr(otcore._pairwise, "_make_kernel", make)
    _, _, a, b, _ = files
    with pytest.raises(TypeError, match="an internal bug"):
        main(["distance", a, b])


def test_internal_error_exit_status_1_with_traceback(files):
    _, _, a, b, _ = files
    code = (
        "import sys, otcore._pairwise as P\n"
        "def make(*a, **k):\n"
        "    def kernel(x, y): raise TypeError('an internal bug')\n"
        "    return kernel\n"
        "P._make_kernel = make\n"
        "from otcore.__main__ import main\n"
        f"sys.exit(main(['distance', {a!r}, {b!r}]))\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "TypeError: an internal bug" in out.stderr
    assert "otcore: error" not in out.stderr


def test_mass_mismatch_names_both_rows(files, capsys):
    _, _, a, _, tmp = files
    b = _write(tmp / "B.csv", [[0.5, 0.5, 0, 0], [0.5, 0.5, 0.5, 0], [0, 0, 0, 1]])
    code, err = _err(capsys, ["distance", a, b])
    assert code == 2
    assert "B.csv, line 2 sums to 1.5 but " in err and "A.csv, line 1 sums to 1; " in err and "--normalize" in err, err
    # within the library's tolerance (relative 1e-6 in float64): accepted
    b = _write(tmp / "B.csv", [[0.5, 0.5 + 1e-9, 0, 0]])
    assert main(["distance", a, b]) == 0


# --------------------------------------------------------------------------------------
# demo


def test_demo_subprocess():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "otcore", "demo"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for word in ("Exact EMD", "certificate", "Sinkhorn", "gradient", "1D", "CDF", "Tree EMD", "Pairwise"):
        assert word in text, word
    assert "W1 = 5.0000" in text  # the known value [0, 1, 3] vs [5, 6, 8]
