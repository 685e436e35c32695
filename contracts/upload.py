"""Names the upload standard fixes (spec/upload-standard.md, section 2 "How files arrive"),
one owner each."""

from __future__ import annotations

# Optional beside a batch's files: {"row_count": N, ...}; never a data file itself.
MANIFEST = "_manifest.json"
