"""`actok.train.train_tokenizer`: what `actok train` does, from Python, with the same folder."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import pytest

from actok import load_tokenizer
from actok.cli import main
from actok.data import ChunkConfig, LeRobotDatasetReader
from actok.errors import ActokError
from actok.tokenizers.binning import BinningTokenizer
from actok.train import fit_tokenizer, train_tokenizer

BUNDLED = Path(str(resources.files("actok") / "example_data" / "pusht"))


def test_python_writes_the_folder_the_cli_writes(tmp_path, capsys):
    assert main(["train", "--root", str(BUNDLED), "--tokenizer", "binning", "--output-dir", str(tmp_path / "cli")]) == 0
    config = ChunkConfig(encoded_dims="0:6,7:23", clip_encoded_dims=True)  # actok train's defaults
    result = train_tokenizer(LeRobotDatasetReader(BUNDLED), BinningTokenizer(), config, tmp_path / "py")
    cli_files = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert cli_files == sorted(p.name for p in result.output.iterdir())
    assert {"metadata.json", "pipeline.json", "fit_profile.json", "actok_tokenizer.json"} <= set(cli_files)
    for name in cli_files:
        ours, theirs = (json.loads((tmp_path / d / name).read_text()) for d in ("py", "cli"))
        assert ours == theirs, name
    assert result.metadata["compression_stats"]["num_chunks"] == 1000 and result.max_token_len == 22
    stdout = capsys.readouterr().out
    assert "Recommended max token length: 22" in stdout and "Average compression ratio: 1.00x" in stdout


def test_train_refuses_bad_settings_and_outputs_before_writing(tmp_path):
    reader = LeRobotDatasetReader(BUNDLED)
    with pytest.raises(ActokError, match="sample_fraction must be in"):
        train_tokenizer(reader, BinningTokenizer(), ChunkConfig(sample_fraction=2.0), tmp_path / "a")
    with pytest.raises(ActokError, match="overlaps the dataset folder"):
        train_tokenizer(reader, BinningTokenizer(), ChunkConfig(), BUNDLED / "tok")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine.txt").write_text("keep")
    with pytest.raises(ActokError, match="pass --overwrite"):
        train_tokenizer(reader, BinningTokenizer(), ChunkConfig(), tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


class _Recorder(BinningTokenizer):
    """A tokenizer recording the held-out chunks its fit was given."""

    def fit(self, chunks, validation=None):
        self.validation = validation
        return super().fit(chunks)


def test_held_out_chunks_reach_fit_when_there_are_some(pusht_chunks):
    assert fit_tokenizer(_Recorder(), pusht_chunks).validation is pusht_chunks.holdout
    no_holdout = dataclasses.replace(pusht_chunks, holdout=pusht_chunks.holdout[:0])
    assert fit_tokenizer(_Recorder(), no_holdout).validation is None


def test_train_takes_a_folder_and_a_tokenizer_name(tmp_path):
    result = train_tokenizer(BUNDLED, "binning", ChunkConfig(max_episodes=20), tmp_path / "tok")
    assert result.output == tmp_path / "tok" and result.codec.tokenizer.name == "binning"
    assert load_tokenizer(result.output).encode(result.chunks.holdout) == result.codec.tokenizer.encode(
        result.chunks.holdout
    )
