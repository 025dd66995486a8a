"""Saving and loading a model folder: safetensors weights, config, tokenizer, all offline.

Loading checks the folder before transformers sees it, so a user with a broken or partial
folder gets a sentence naming the missing file rather than a traceback from deep inside
transformers. Pickled weights (``pytorch_model.bin``) can execute code when loaded and are
refused unless the caller explicitly allows them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from model.config import DetenteConfig
from model.modeling import DetenteModel

WEIGHTS_FILE = "model.safetensors"
PICKLE_WEIGHTS_FILE = "pytorch_model.bin"


class ModelLoadError(RuntimeError):
    """A model folder that cannot be used, with the reason in words."""


def save_model(model: DetenteModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    """Write weights (safetensors), config and tokenizer into one folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def check_model_folder(folder: Path, *, allow_pickle: bool = False) -> None:
    """Raise ModelLoadError unless ``folder`` holds a complete detente model."""
    if not folder.exists():
        raise ModelLoadError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is a file, not a model folder")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(
            f"model folder {folder} has no config.json (incomplete or not a model)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"{config_path} is not valid JSON: {err}") from err
    if config.get("model_type") != DetenteConfig.model_type:
        raise ModelLoadError(
            f"{folder} holds a {config.get('model_type')!r} model, not a detente model; "
            "pass a base encoder with --base-model to train one"
        )
    has_safetensors = (folder / WEIGHTS_FILE).is_file()
    if not has_safetensors:
        if (folder / PICKLE_WEIGHTS_FILE).is_file() and not allow_pickle:
            raise ModelLoadError(
                f"{folder} holds only pickled weights ({PICKLE_WEIGHTS_FILE}), which can run "
                "arbitrary code when loaded; convert them to safetensors, or pass "
                "allow_pickle=True (--allow-pickle) if you trust the source"
            )
        if not (folder / PICKLE_WEIGHTS_FILE).is_file():
            raise ModelLoadError(f"model folder {folder} has no {WEIGHTS_FILE}")
    if not (folder / "tokenizer_config.json").is_file():
        raise ModelLoadError(f"model folder {folder} has no tokenizer (tokenizer_config.json)")


def load_model(
    folder: str | Path, *, allow_pickle: bool = False
) -> tuple[DetenteModel, PreTrainedTokenizerBase]:
    """Load a saved model and its tokenizer from a local folder, in eval mode."""
    folder = Path(folder)
    check_model_folder(folder, allow_pickle=allow_pickle)
    use_safetensors = (folder / WEIGHTS_FILE).is_file()
    try:
        model = DetenteModel.from_pretrained(
            folder, local_files_only=True, use_safetensors=use_safetensors
        )
        # Passing the encoder's config stops AutoTokenizer from parsing our config.json as
        # a generic one (which only produces a misleading warning).
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, config=model.config.encoder_config()
        )
    except Exception as err:  # transformers raises many types; the user needs one message
        raise ModelLoadError(f"could not load the model in {folder}: {err}") from err
    model.eval()
    return model, tokenizer


def weights_hash(folder: str | Path) -> str:
    """A short content hash of the weights file: the ``model_version`` in scored output."""
    folder = Path(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        path = folder / PICKLE_WEIGHTS_FILE
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
