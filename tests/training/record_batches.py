"""``python tests/training/record_batches.py LOG_DIR train ...``: runs ``emollm train ...`` and
records the ids of every batch this process collates, one JSON list per line, in
``LOG_DIR/rank<RANK>.jsonl`` (for the multi-process tests, under torchrun)."""

import json
import os
import sys
from pathlib import Path

from emollm.cli import main
from emollm.data.collator import EmoBenchCollator

_collate = EmoBenchCollator.__call__


def _recording(self, samples):
    log = Path(sys.argv[1]) / f"rank{os.environ.get('RANK', '0')}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps([s["id"] for s in samples]) + "\n")
    return _collate(self, samples)


if __name__ == "__main__":
    EmoBenchCollator.__call__ = _recording
    sys.exit(main(sys.argv[2:]))
