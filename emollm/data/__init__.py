"""EmoBench data: records, source converters, question templates, dataset + collator, synthetic set."""

from emollm.data.records import (
    MEDIA_TYPES,
    PLACEHOLDERS,
    TASKS,
    YES_NO,
    EmoRecord,
    RecordError,
    read_jsonl,
    resolve_media,
    write_jsonl,
)

__all__ = ["MEDIA_TYPES", "PLACEHOLDERS", "TASKS", "YES_NO", "EmoRecord", "RecordError", "read_jsonl",
           "resolve_media", "write_jsonl"]
