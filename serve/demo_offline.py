"""The demo runs offline: gradio's analytics and the Hub's telemetry off, no Hub downloads.

gradio (with gradio_client) and huggingface_hub read these variables once, when they are
imported, so every demo module imports this one first, above its other imports: whichever
of them is imported first, nothing phones home. ``HF_HUB_OFFLINE`` is only a default; a
user who set it keeps their value.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
