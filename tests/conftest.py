"""Shared fixtures: a tiny randomly initialised encoder, so most tests run in seconds.

The tiny model uses the real MiniLM tokenizer (vocabulary) with a 2-layer, 32-wide BERT;
it is a real DetenteModel, saved and loaded through the same code paths as the default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A saved, randomly initialised 2-layer BERT with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from model.paths import default_base_model

    folder = tmp_path_factory.mktemp("tiny-encoder")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_base_model(), local_files_only=True).save_pretrained(
        folder
    )
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A saved (untrained) DetenteModel on the tiny encoder."""
    from transformers import AutoTokenizer

    from model import DetenteModel, save_model

    folder = tmp_path_factory.mktemp("tiny-detente")
    model = DetenteModel.from_base_encoder(tiny_encoder_dir, max_seq_length=64)
    save_model(model, AutoTokenizer.from_pretrained(tiny_encoder_dir), folder)
    return folder


STATEMENTS = [
    ("We are ready to sit down with them tomorrow and talk about a ceasefire.",
     "pro_negotiation", "positive"),
    ("The foreign minister called on both sides to return to talks in Geneva.",
     "pro_negotiation", "neutral"),
    ("Only negotiations can stop this slaughter, the envoy said grimly.",
     "pro_negotiation", "negative"),
    ("The junta shelled the villages again and murdered dozens of civilians.",
     "accusatory", "negative"),
    ("It is not us who walked away from the talks, it is them.", "accusatory", "negative"),
    ("We condemn these cowardly attacks on our border posts.", "accusatory", "negative"),
    ("Two rockets struck the port district overnight.", "neutral", "negative"),
    ("The delegation will arrive on Tuesday, a spokesperson said.", "neutral", "neutral"),
    ("Harvest exports rose by ten percent this year, the ministry said.", "neutral", "positive"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def labelled_rows() -> list[dict]:
    """A small labelled set without a split column: 4 numbered copies of 9 statements."""
    rows = []
    for copy in range(4):
        for i, (text, stance, sentiment) in enumerate(STATEMENTS):
            rows.append({"id": f"r{copy}-{i}", "text": f"{text} (item {copy}-{i})",
                         "stance": stance, "sentiment": sentiment})
    return rows


@pytest.fixture
def labelled_file(tmp_path, labelled_rows) -> Path:
    return write_jsonl(tmp_path / "labelled.jsonl", labelled_rows)


# Distinct statements per split (no near-duplicates across splits), for corpus-shaped tests.
SPLIT_STATEMENTS = {
    "train": STATEMENTS,
    "validation": [
        ("Both delegations agreed to extend the truce for another month.",
         "pro_negotiation", "positive"),
        ("Mediators urged the parties to resume the stalled dialogue.", "pro_negotiation",
         "neutral"),
        ("Without a deal the famine will spread, the envoy warned.", "pro_negotiation",
         "negative"),
        ("The militia looted the clinic and kidnapped two nurses.", "accusatory", "negative"),
        ("Their government lies about every single casualty figure.", "accusatory", "negative"),
        ("We denounce the blockade imposed by the occupying forces.", "accusatory", "negative"),
        ("A convoy was hit by artillery near the river crossing.", "neutral", "negative"),
        ("Parliament will vote on the budget next Thursday.", "neutral", "neutral"),
        ("Electricity was restored to most districts by the evening.", "neutral", "positive"),
    ],
    "test": [
        ("We welcome the prisoner exchange brokered by Oman.", "pro_negotiation", "positive"),
        ("The council called for an immediate humanitarian pause.", "pro_negotiation", "neutral"),
        ("Talks are the only way out of this bloodbath, she said.", "pro_negotiation",
         "negative"),
        ("The rebels executed captured soldiers, the army said.", "accusatory", "negative"),
        ("Moscow is sabotaging every effort at peace.", "accusatory", "negative"),
        ("We strongly condemn the drone strike on the hospital.", "accusatory", "negative"),
        ("Several buildings collapsed after the explosion downtown.", "neutral", "negative"),
        ("The summit is scheduled to open in Vienna on Monday.", "neutral", "neutral"),
        ("Grain shipments reached a record high in October.", "neutral", "positive"),
    ],
}


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    """A corpus-shaped file: train/validation/test splits, disputes per split, ids."""
    rows = []
    for split, statements in SPLIT_STATEMENTS.items():
        for i, (text, stance, sentiment) in enumerate(statements):
            rows.append({"id": f"{split}-{i}", "text": text, "stance": stance,
                         "sentiment": sentiment, "dispute": f"dispute-{split}",
                         "speaker_type": "spokesperson", "form": "reported", "hard": False,
                         "rule": None, "split": split})
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The real default model, trained from the bundled corpus if absent (slow tests only).

    It lives where users get it (``$DETENTE_HOME`` or the user cache), so CI trains it once
    and later runs of the suite, the demo and the notebook reuse it.
    """
    from training.default_model import ensure_default_model

    return ensure_default_model()
