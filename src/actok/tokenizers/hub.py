"""The Hugging Face processor files a saved BPE tokenizer folder also holds, so that
`transformers.AutoProcessor.from_pretrained(folder, trust_remote_code=True)` loads it without actok."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from actok.tokenizers.coefficients import TOKENIZER_FILE

PROCESSOR_CONFIG = "processor_config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
BPE_SUBFOLDER = "bpe_tokenizer"  # where transformers >= 5 writes the BPE files
TOKENIZER_CONFIG_FIELDS = {
    "added_tokens_decoder": {},
    "clean_up_tokenization_spaces": False,
    "model_max_length": 1000000000000000019884624838656,
    "tokenizer_class": "PreTrainedTokenizerFast",
}


def write_processor_files(
    directory: Path, bpe: Tokenizer, module: str, processor_class: str, fields: dict[str, Any]
) -> None:
    """Write into `directory`: the processor module `module` (a file of `actok/tokenizers/_hub`, self-contained),
    processor_config.json (`fields` plus the class to load), and the BPE as a `PreTrainedTokenizerFast`, both in
    the flat Hub layout older transformers and other tools read and in the subfolder transformers >= 5 reads."""
    auto_map = {"AutoProcessor": f"{Path(module).stem}.{processor_class}"}
    processor = {**fields, "auto_map": auto_map, "processor_class": processor_class}
    (directory / PROCESSOR_CONFIG).write_text(json.dumps(dict(sorted(processor.items())), indent=2) + "\n")
    tokenizer_config = json.dumps(
        dict(sorted({**TOKENIZER_CONFIG_FIELDS, "processor_class": processor_class}.items())), indent=2
    )
    for folder in (directory, directory / BPE_SUBFOLDER):
        folder.mkdir(exist_ok=True)
        bpe.save(str(folder / TOKENIZER_FILE))
        (folder / TOKENIZER_CONFIG).write_text(tokenizer_config + "\n")
    (directory / module).write_text((Path(__file__).with_name("_hub") / module).read_text())
