"""What an input that fails to load means: a bad input is skipped and counted, a configuration
mistake ends the run in one line, and a stream whose inputs keep failing stops instead of spinning."""

from __future__ import annotations

from ..errors import JEPAError
from .video.decode import VideoDecodeError

# Inputs in a row that may fail before a stream is judged broken (wrong decoder, wrong kind of data).
MAX_FAILURES_IN_A_ROW = 64


def is_config_error(exn: Exception) -> bool:
    """A user's configuration mistake raised while loading an input, unlike a bad input (an
    undecodable file), which is skipped and counted."""
    return isinstance(exn, JEPAError) and not isinstance(exn, VideoDecodeError)
