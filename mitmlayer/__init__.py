"""The mitmproxy layer of mistral-compat, one part per concern (README.md, "Project layout"): addon.py builds
the one registered addon (composite.MistralCompat) from these parts. Each part declares or reads options,
reads and writes flows, and applies what the pure core (mistral_compat/, which never imports mitmproxy)
decides.

`logger` is the one logger of the whole layer: every part writes its lines through it.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("mistral_compat.addon")
