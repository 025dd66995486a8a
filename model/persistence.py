"""Saving and loading a model folder: safetensors weights, config, tokenizer, all offline.

Loading checks the folder before transformers sees it, so a user with a broken or partial
folder gets a sentence naming the missing file rather than a traceback from deep inside
transformers. Weights that do not fit the config (missing or wrongly shaped tensors) and a
tokenizer without its vocabulary are refused too: transformers would fill the gaps with random
values and the model would load, then predict noise. Pickled weights (``pytorch_model.bin``)
can execute code when loaded and are refused unless the caller explicitly allows them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from model.config import DetenteConfig
from model.errors import ModelLoadError, ModelWriteError, one_line
from model.labels import HEADS
from model.modeling import DetenteModel

WEIGHTS_FILE = "model.safetensors"
PICKLE_WEIGHTS_FILE = "pytorch_model.bin"
# One of these holds the tokenizer's vocabulary; without it transformers builds an empty one.
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model",
                    "sentencepiece.bpe.model", "tokenizer.model")
# What a failed write raises: the OS, safetensors (a Rust I/O error) or torch.save.
WRITE_ERRORS = (OSError, SafetensorError, RuntimeError)


def save_model(model: DetenteModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    """Write weights (safetensors), config and tokenizer into one folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
    except WRITE_ERRORS as err:
        raise ModelWriteError(f"could not write the model to {folder}: {one_line(err)}") from err
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
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path} is not a model config (a JSON object)")
    for head in HEADS:
        labels = config.get(f"{head}_labels")
        if labels is not None and not (
            isinstance(labels, list) and labels and all(isinstance(v, str) for v in labels)
        ):
            raise ModelLoadError(f"{config_path}: {head}_labels must be a list of label names")
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
    if not any((folder / name).is_file() for name in VOCABULARY_FILES):
        raise ModelLoadError(
            f"model folder {folder} has no tokenizer vocabulary (tokenizer.json or vocab.txt)"
        )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hold back transformers' multi-line load report; what matters goes into our error.

    Also its "Loading weights" bar: a local load is too quick for a bar to say anything
    (benchmarks/results/notes_from_code.md).
    """
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(
    folder: str | Path, *, allow_pickle: bool = False
) -> tuple[DetenteModel, PreTrainedTokenizerBase]:
    """Load a saved model and its tokenizer from a local folder, in eval mode."""
    folder = Path(folder)
    check_model_folder(folder, allow_pickle=allow_pickle)
    use_safetensors = (folder / WEIGHTS_FILE).is_file()
    try:  # transformers raises many types; the user needs one line
        with quiet_transformers():
            model, info = DetenteModel.from_pretrained(
                folder, local_files_only=True, use_safetensors=use_safetensors,
                output_loading_info=True, ignore_mismatched_sizes=True,
            )
    except Exception as err:
        raise ModelLoadError(f"could not load the model in {folder}: {one_line(err)}") from err
    broken = sorted(info["missing_keys"]) + sorted(key for key, *_ in info["mismatched_keys"])
    if broken:
        raise ModelLoadError(
            f"the weights in {folder} do not match its config.json ({len(broken)} tensor(s) "
            f"missing or of the wrong shape, e.g. {broken[0]}); the folder is damaged or mixed"
        )
    try:
        # Passing the encoder's config stops AutoTokenizer from parsing our config.json as
        # a generic one (which only produces a misleading warning).
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, config=model.config.encoder_config()
        )
    except Exception as err:
        raise ModelLoadError(
            f"could not load the tokenizer in {folder}: {one_line(err)}") from err
    vocab_size = model.config.encoder.get("vocab_size")
    if vocab_size and len(tokenizer) > vocab_size:
        raise ModelLoadError(
            f"the tokenizer in {folder} has {len(tokenizer):,} tokens but the model only "
            f"{vocab_size:,} embeddings: the tokenizer belongs to another model"
        )
    model.eval()
    return model, tokenizer


def weights_hash(folder: str | Path) -> str:
    """A short content hash of the weights file: the ``model_version`` in scored output.

    Cached per file path, size and modification time: loading the default model with
    ``auto`` asks for it more than once (its backend choice, the ONNX cache), and each
    read of a 90 MB file costs a tenth of a second.
    """
    folder = Path(folder)
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        path = folder / PICKLE_WEIGHTS_FILE
    stat = path.stat()
    return _file_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
