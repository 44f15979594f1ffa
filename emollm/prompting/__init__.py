"""EmoPrompt (paper §4.4): a store of chain-of-thought exemplars, their selection, and a client that
generates rationales through an OpenAI-compatible chat endpoint."""

from emollm.prompting.select import ExemplarSelector, format_exemplar
from emollm.prompting.store import (
    Exemplar,
    ExemplarWriter,
    StoreError,
    append_exemplars,
    iter_store,
    load_store,
    save_store,
)

__all__ = ["Exemplar", "ExemplarSelector", "ExemplarWriter", "StoreError", "append_exemplars", "format_exemplar",
           "iter_store", "load_store", "save_store"]
