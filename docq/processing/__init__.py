"""docq's built-in processing: a file in, text and metadata out. It knows nothing of the queue.

`inspect_file` reads what enqueue records about a file (cheaply: one open, one read for
a small file); `extract` turns a file into text and metadata; `extractor_version` says
which extractor `extract` would use today, to find documents read by an older one.
Importing this package loads no extraction library: each is imported on first use.
"""

from docq.processing.extraction import (
    SUPPORTED_TYPES,
    Extraction,
    FileMissing,
    extract,
    extractor_version,
)
from docq.processing.files import FileFacts, NotARegularFile, inspect_file

_process_document_content = extract
"""The seed's name for `extract`, which the worker's built-in operations call."""

__all__ = [
    "SUPPORTED_TYPES",
    "Extraction",
    "FileFacts",
    "FileMissing",
    "NotARegularFile",
    "extract",
    "extractor_version",
    "inspect_file",
]
