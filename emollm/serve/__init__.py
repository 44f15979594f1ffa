"""``emollm serve``: a Gradio page to ask a model about an uploaded file and see what its MVP saw.

:mod:`emollm.serve.app` builds the page (needs the ``serve`` extra: gradio);
:mod:`emollm.serve.mvp_view` draws and times the model's MVP stages on a picture (no gradio).
"""
