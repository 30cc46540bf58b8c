"""Parameter and argument checks that reach users through the command line (the library's checks are in
test_conformance.py): one line, exit 2, before any work."""

from __future__ import annotations

import pytest

from actok import BinningTokenizer
from actok.cli import main
from actok.errors import ActokError


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tokenizer", "fast", "--scale", "inf"],
            "fast parameter scale must be a finite number in (0, 1000000], got inf",
        ),
        (
            ["--tokenizer", "klt", "--scale", "nan"],
            "klt parameter scale must be a finite number in (0, 1000000], got nan",
        ),
        (["--tokenizer", "fast", "--vocab-size", "1000000000"], "vocab_size must be an integer in [2, 32768]"),
        (["--sweep", "fast:scale=NaN,5"], "fast parameter scale must be a finite number"),
        (["--sweep", "bspline:n_bins=2.5"], "bspline parameter n_bins must be an integer in [2, 32768], got 2.5"),
        (
            ["--tokenizer", "binning", "--tokenizer-param", "n_bins=true"],
            "n_bins must be an integer in [2, 32768], got True",
        ),
    ],
)
def test_bad_numeric_parameters_are_one_line_errors(args, message, tmp_path, capsys):
    assert main(["bench", *args, "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_decode_shape_beyond_any_allocation_is_refused():
    with pytest.raises(ActokError, match="values per chunk, more than the 16777216 supported"):
        BinningTokenizer().decode([[0]], horizon=10**9, action_dim=10**9)
