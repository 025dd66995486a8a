"""The inference API: ``Classifier.load(path).predict(texts)``.

This is the one inference path: ``detente predict``, ``detente score``, the demo, the HTTP
API and training's evaluation all go through ``Classifier.score``, so a text gets the same
probabilities from each. A text longer than the model's window is read in sentence windows
whose probabilities are averaged by token count (``model.long_text``), never cut off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from model.backends import BACKENDS, Backend, TorchBackend, load_backend
from model.errors import BackendError, DefaultModelMissing, ModelLoadError, one_line
from model.long_text import aggregate, plan_windows
from model.modeling import DetenteModel
from model.paths import default_model_dir
from model.persistence import weights_hash
from model.probabilities import calibrated, sentiment_score

# Windows per backend call when scoring with a progress callback: the bar moves every few
# batches while the windows stay sorted by length across the group.
GROUP_BATCHES = 8


@dataclass(frozen=True)
class Prediction:
    """One statement's labels; ``sentiment_score = P(positive) - P(negative)`` in [-1, 1]."""

    stance: str
    stance_probs: dict[str, float]
    sentiment: str
    sentiment_probs: dict[str, float]
    sentiment_score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Probabilities:
    """Calibrated probabilities of both heads per text, and how many windows each took."""

    stance: np.ndarray  # (n, stance labels), float64
    sentiment: np.ndarray  # (n, sentiment labels), float64
    windows: np.ndarray  # (n,), int: 1 for a text that fits the model's window


def as_text_list(texts: str | Iterable[str]) -> list[str]:
    """Accept a list, a pandas Series, a pyarrow Array/ChunkedArray or one string."""
    if isinstance(texts, str):
        return [texts]
    if hasattr(texts, "to_pylist"):  # pyarrow
        texts = texts.to_pylist()
    elif hasattr(texts, "tolist"):  # pandas / numpy
        texts = texts.tolist()
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text at position {i} is {type(text).__name__}, not str: {text!r}")
    return texts


class Classifier:
    """A loaded model ready to label statements, with calibrated probabilities."""

    def __init__(self, backend: Backend, *, path: Path | None = None) -> None:
        self.backend = backend
        self.path = path

    @classmethod
    def from_model(cls, model: DetenteModel, tokenizer: PreTrainedTokenizerBase) -> Classifier:
        """A classifier on a model in memory (training evaluates before it saves)."""
        return cls(TorchBackend(model, tokenizer))

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        backend: str = "torch",
        allow_pickle: bool = False,
        threads: int | None = None,
    ) -> Classifier:
        """Load a model folder with one of ``BACKENDS``; ``None`` is the default model.

        The default model must exist already; ``serve.load_classifier()`` (and every
        ``detente`` command) trains it first when it does not.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        folder = Path(path) if path is not None else default_model_dir()
        if path is None and not (folder / "config.json").is_file():
            raise DefaultModelMissing(
                f"no default model in {folder}; train it with `detente train`, or load it "
                "with `from serve import load_classifier; load_classifier()`, which trains "
                "it first"
            )
        try:
            loaded = load_backend(folder, backend, threads=threads, allow_pickle=allow_pickle)
        except (ModelLoadError, BackendError, OSError, ValueError):
            raise
        except Exception as err:  # transformers, tokenizers and ORT fail in many ways
            raise ModelLoadError(
                f"could not load the model in {folder} with the {backend} backend "
                f"({type(err).__name__}: {one_line(err)}); the folder may be damaged: if it "
                "holds an onnx/ cache, delete that and try again"
            ) from err
        return cls(loaded, path=folder)

    @property
    def config(self):
        return self.backend.config

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.backend.tokenizer

    @property
    def model(self) -> DetenteModel:
        """The torch module (training and explanations that patch it); torch backend only."""
        if not isinstance(self.backend, TorchBackend):
            raise AttributeError(f"the {self.backend.name} backend has no torch model")
        return self.backend.model

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def stance_labels(self) -> list[str]:
        return list(self.config.stance_labels)

    @property
    def sentiment_labels(self) -> list[str]:
        return list(self.config.sentiment_labels)

    @property
    def model_version(self) -> str:
        """Content hash of the weights file (``unsaved`` for a model that was never saved)."""
        if self.backend.model_version is None:
            self.backend.model_version = weights_hash(self.path) if self.path else "unsaved"
        return self.backend.model_version

    def score(
        self,
        texts: str | Iterable[str],
        batch_size: int = 32,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Probabilities:
        """Calibrated probabilities per text, long texts read in sentence windows.

        ``on_progress(windows_just_finished, windows_total)`` is called as each group of
        windows finishes; the first argument is an increment (what a tqdm ``update`` takes),
        not a running total.
        """
        texts = as_text_list(texts)
        plan = plan_windows(texts, self.tokenizer, self.config.max_seq_length)
        stance, sentiment = self._window_probabilities(plan.windows, batch_size, on_progress)
        return Probabilities(
            aggregate(stance, plan, len(texts)),
            aggregate(sentiment, plan, len(texts)),
            np.bincount(plan.owner, minlength=len(texts)),
        )

    def _window_probabilities(
        self, windows: list[str], batch_size: int,
        on_progress: Callable[[int, int], None] | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each window's probabilities; with a progress callback, in groups of similar length.

        Grouping by character length keeps the backend's token-length sort nearly as tight
        as one call over all windows, while the progress bar moves every few batches.
        """
        if on_progress is None:
            return calibrated(*self.backend.predict_logits(windows, batch_size), self.config)
        stance = np.zeros((len(windows), len(self.stance_labels)), dtype=np.float32)
        sentiment = np.zeros((len(windows), len(self.sentiment_labels)), dtype=np.float32)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        group = batch_size * GROUP_BATCHES
        for start in range(0, len(order), group):
            rows = order[start : start + group]
            logits = self.backend.predict_logits([windows[i] for i in rows], batch_size)
            stance[rows], sentiment[rows] = calibrated(*logits, self.config)
            on_progress(len(rows), len(windows))
        return stance, sentiment

    def predict_proba(
        self, texts: str | Iterable[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities ``(stance, sentiment)``, each ``(n, n_labels)``."""
        probabilities = self.score(texts, batch_size)
        return probabilities.stance, probabilities.sentiment

    def predict_logits(
        self, texts: Sequence[str], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits with each text as one (truncated) window: what calibration fits.

        Windows' probabilities can be averaged; their logits cannot, so this is for short
        labelled statements (temperature fitting), not for labelling.
        """
        return self.backend.predict_logits(list(texts), batch_size)

    def predict(self, texts: str | Iterable[str], batch_size: int = 32) -> list[Prediction]:
        """Label each statement; results come back in input order."""
        stance_probs, sentiment_probs = self.predict_proba(texts, batch_size)
        return self.to_predictions(stance_probs, sentiment_probs)

    def to_predictions(
        self, stance_probs: np.ndarray, sentiment_probs: np.ndarray
    ) -> list[Prediction]:
        scores = sentiment_score(sentiment_probs, self.sentiment_labels)
        out = []
        for s_row, m_row, score in zip(stance_probs, sentiment_probs, scores, strict=True):
            out.append(
                Prediction(
                    stance=self.stance_labels[int(s_row.argmax())],
                    stance_probs={k: float(v) for k, v in zip(self.stance_labels, s_row)},
                    sentiment=self.sentiment_labels[int(m_row.argmax())],
                    sentiment_probs={k: float(v) for k, v in zip(self.sentiment_labels, m_row)},
                    sentiment_score=float(score),
                )
            )
        return out
