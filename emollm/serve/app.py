"""The ``emollm serve`` page: upload an image, a video or an audio clip, ask, and watch the answer
stream in; beside it, what the MVP saw (its three stages of clusters and τ-graphs on the picture,
or on a video's first frame) and per-stage timings with the backend each op ran on.

Safety: files reach the handler only through Gradio's upload components, which store them in
Gradio's upload folder; a path outside that folder is refused (no client can make the server read
another file). Uploads are capped (``max_file_size`` at launch). The model runs one question at
a time: the queue's concurrency limit is 1, later questions wait their turn.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home: the demo must start offline

import gradio as gr

from emollm.inference.media import Media, MediaError, load_media_files
from emollm.inference.session import Session
from emollm.inference.tasks import TASKS
from emollm.serve.mvp_view import mvp_view

__all__ = ["NO_TASK", "build_app", "confined_upload"]

NO_TASK = "(no task: free answer)"
# Video and audio go through plain file uploads (no transcoding by Gradio); PyAV decodes them here.
VIDEO_TYPES = (".mp4", ".webm", ".mov", ".avi", ".mkv")
AUDIO_TYPES = (".wav", ".mp3", ".flac", ".ogg", ".m4a")


def confined_upload(path: str | None) -> str | None:
    """``path`` when it lies in Gradio's upload folder, else ``gr.Error``: the handler reads uploads only."""
    if not path:
        return None
    folder = Path(gr.utils.get_upload_folder()).resolve()
    resolved = Path(path).resolve()
    if folder not in resolved.parents:
        raise gr.Error(f"refused: {Path(path).name} is not an upload")
    return str(resolved)


def _timings_table(reply_timings: dict | None, view) -> str:
    """Markdown: the answer's timings (once it is complete; None while it streams) and the MVP's."""
    if reply_timings is None:
        answer = "answer: generating ..."
    else:
        t = reply_timings
        answer = ("| answer | seconds |\n|---|---:|\n"
                  f"| preprocess | {t['preprocess']:.3f} |\n| first token | {t['first_token']:.3f} |\n"
                  f"| whole answer | {t['generate']:.3f} |\n\n"
                  f"{t['new_tokens']} tokens, {t['tokens_per_s']:.1f} tokens/s after the first")
    return answer if view is None else answer + "\n\n**MVP stages**\n\n" + view.table()


class _Counter:
    """Numbers the questions for the server log (which the queue test reads)."""

    def __init__(self):
        self._lock, self.value = threading.Lock(), 0

    def next(self) -> int:
        with self._lock:
            self.value += 1
            return self.value


def build_app(session: Session, *, max_new_tokens: int = 64, view_tau: float | None = None,
              max_upload: str = "50mb") -> gr.Blocks:
    """The page for ``session``; launch it with ``app.launch(max_file_size=...)`` (see
    :func:`emollm.serve.cli.cmd_serve`). ``view_tau``: the τ of the drawn graphs (default the MVP's)."""
    counter = _Counter()

    def answer(image_path, video_path, audio_path, question, task):
        number = counter.next()
        print(f"emollm serve: question {number} started at {time.time():.3f}", flush=True)
        try:
            paths = [confined_upload(p) for p in (image_path, video_path, audio_path)]
            if not (question or "").strip():
                raise gr.Error("type a question")
            try:
                media = load_media_files(*paths)
            except MediaError as e:
                raise gr.Error(str(e).replace("--", "", 1)) from None
            view = _view(media)
            yield "", "", view.picture if view else None, _timings_table(None, view)
            reply = session.ask(question, media, task=None if task in (None, NO_TASK) else task,
                                max_new_tokens=max_new_tokens)
            text = ""
            for piece in reply:
                text += piece
                yield text, gr.skip(), gr.skip(), gr.skip()
            label = reply.label if reply.label is not None else ("(names no label)" if reply.task else "")
            yield reply.answer, label, gr.skip(), _timings_table(reply.timings, view)
        finally:
            print(f"emollm serve: question {number} finished at {time.time():.3f}", flush=True)

    def _view(media: Media):
        picture = media.image if media.image is not None else (media.video[0] if media.video else None)
        if picture is None:
            return None
        title = None if media.image is not None else "what the MVP sees: the video's first frame alone"
        return mvp_view(session.model, session.processor, picture, title=title or "", tau=view_tau)

    with gr.Blocks(title="emollm: ask EmoLLM") as app:
        gr.Markdown(f"## Ask EmoLLM\nModel `{session.name}` on {session.device} ({str(session.dtype)[6:]}); "
                    f"uploads up to {max_upload}. One question runs at a time; others wait in the queue.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="image", sources=["upload"], height=240, elem_id="image")
                video = gr.File(label="video", file_types=list(VIDEO_TYPES), type="filepath", elem_id="video")
                audio = gr.File(label="audio clip", file_types=list(AUDIO_TYPES), type="filepath", elem_id="audio")
                question = gr.Textbox(label="question", value="How does this person feel?", elem_id="question")
                task = gr.Dropdown([NO_TASK, *TASKS], value=NO_TASK, label="task (parse the answer to a label)",
                                   elem_id="task")
                ask = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column(scale=2):
                reply = gr.Textbox(label="answer", lines=4, interactive=False, elem_id="answer")
                label = gr.Textbox(label="label", interactive=False, elem_id="label")
                picture = gr.Image(label="what the MVP saw", type="pil", interactive=False, elem_id="mvp")
                timings = gr.Markdown(elem_id="timings")
        ask.click(answer, [image, video, audio, question, task], [reply, label, picture, timings],
                  concurrency_limit=1, concurrency_id="model")
    app.queue(default_concurrency_limit=1, max_size=32)
    return app

