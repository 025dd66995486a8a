"""Fixtures for the demo tests: the tiny model served on a free loopback port."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# gradio and gradio_client read these when imported: no analytics, no Hub telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir):
    from model.classifier import Classifier

    return Classifier.load(tiny_model_dir)


@pytest.fixture(scope="module")
def corrections_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corrections") / "corrections.jsonl"


@pytest.fixture(scope="module")
def demo_app(tiny_classifier, corrections_path):
    """The demo, launched in this process exactly as ``detente demo`` launches it."""
    from serve.demo import launch

    app = launch(tiny_classifier, host="127.0.0.1", port=free_port(),
                 corrections_path=corrections_path, block=False)
    yield app
    app.close()


@pytest.fixture(scope="module")
def demo_url(demo_app) -> str:
    return demo_app.local_url


@pytest.fixture(scope="module")
def client(demo_url):
    from gradio_client import Client

    return Client(demo_url, verbose=False)
