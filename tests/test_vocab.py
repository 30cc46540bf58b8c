import numpy as np
import pytest

from actok.errors import ActokError
from actok.vocab import LLMVocabMapping


def test_pi0_convention_formula_and_round_trip():
    m = LLMVocabMapping(llm_vocab_size=257152, action_vocab_size=2048, convention="pi0")
    assert m.to_llm([[0, 1, 2047]]) == [[257152 - 1 - 128 - 0, 257152 - 1 - 128 - 1, 257152 - 1 - 128 - 2047]]
    ids = [[5, 7, 0], [2047]]
    assert m.from_llm(m.to_llm(ids)) == ids


def test_openvla_uses_the_last_ids():
    m = LLMVocabMapping(llm_vocab_size=32000, action_vocab_size=256, convention="openvla")
    llm = m.to_llm([list(range(256))])[0]
    assert sorted(llm) == list(range(32000 - 256, 32000))


def test_non_action_ids_become_invalid():
    m = LLMVocabMapping(llm_vocab_size=1000, action_vocab_size=10, convention="openvla")
    assert m.from_llm([[999, 5, 990, 989]]) == [[0, -1, 9, -1]]
    assert m.is_action(np.array([989, 990])).tolist() == [False, True]


def test_validation():
    with pytest.raises(ActokError, match="do not fit"):
        LLMVocabMapping(llm_vocab_size=100, action_vocab_size=1024)
    with pytest.raises(ActokError, match=r"include special tokens \[990\]"):
        LLMVocabMapping(llm_vocab_size=1000, action_vocab_size=20, convention="openvla", special_token_ids=[990, 5])
    with pytest.raises(ActokError, match="valid: pi0, openvla"):
        LLMVocabMapping(1000, 10, convention="rt2")
    m = LLMVocabMapping(1000, 10, convention="openvla")
    with pytest.raises(ActokError, match="out of range"):
        m.to_llm([[10]])
    with pytest.raises(ActokError, match="out of range"):
        m.to_llm([[None]])
    with pytest.raises(ActokError, match="llm_vocab_size must be a non-negative integer, got nan"):
        LLMVocabMapping(llm_vocab_size=float("nan"), action_vocab_size=10)
    assert m.from_llm([[None, 2.5, "a"], [999, 2.5]]) == [[], [0, -1]]  # not ids: never actions
