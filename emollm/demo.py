"""The pictures of ``emollm demo``: MVP's three clustering stages and τ-graphs on real photos.

Each image is cropped to its central square, resized to 224×224 and cut into 14×14 patches: a
16×16 grid of 256 tokens, CLIP ViT-L/14's layout. The tokens are colour statistics of the
patches' own pixels (no model, no download) or, with a local CLIP checkpoint, CLIP's patch tokens
(layer -2, no CLS, DESIGN.md §1). :class:`MVPProjector` clusters them in three stages (64/32/16 clusters, k 5/3/3);
each stage's assignment indexes the previous stage's clusters, so composing them maps every
stage back onto the patches. The τ-graph of each stage's merged tokens is drawn between the
clusters' centroids (the mean grid position of their patches).

Needs the ``demo`` extra (matplotlib, scikit-image); :mod:`emollm.cli` imports this module only
for ``emollm demo`` and says ``pip install emollm[demo]`` when they are missing.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
import skimage.io
import skimage.transform
import skimage.util
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from PIL import Image

from emollm import ops
from emollm._io import atomic_write
from emollm.ops.reference import unpack_bits
from emollm.projector.mvp import MVPProjector

IMAGE_SIZE = 224  # CLIP ViT-L/14's input side
PATCH = 14  # its patch side: 224 / 14 = a 16×16 grid, 256 tokens

# Photos bundled in the scikit-image wheel (no pooch, no download), grey ones as RGB.
SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
    "camera": skimage.data.camera,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
}

# Token features without a model: each patch's mean and standard deviation per RGB channel, then
# its grid position. The 588 raw pixel values were tried first: every textured or edge patch is
# then far from all others, DPC-KNN's score rho·delta picks those outliers as centers, and the
# smooth regions merge into a few huge clusters (on the six samples 35-47 of the 64 stage-1
# clusters were single patches, and the largest stage-3 cluster held 83-164 of the 256 patches;
# means of 2×2 sub-blocks did little better). Mean and spread per channel describe what a region
# looks like (colour, flat or textured) without the exact pixel layout: 16-38 singletons, largest
# stage-3 cluster 33-70 patches, and stage-3 clusters that follow sky, coat, fur, a motorbike.
# Position, weakly weighted, keeps a cluster mostly in one place (two patches of sky on either
# side of a head stay apart) without cutting the image into a grid: crossing the whole image
# weighs as much as every colour statistic being off by POSITION_WEIGHT (on a 0..1 scale), the
# step to a neighbouring patch 1/16 of that. 0.25 still merged distant regions, 1.0 gave tiles.
POSITION_WEIGHT = 0.5


def load_image(spec: str) -> tuple[str, np.ndarray]:
    """``spec`` names a bundled sample (see :data:`SAMPLES`) or an image file -> (name, float32
    ``[224,224,3]`` in [0, 1]): the central square, resized with anti-aliasing."""
    if spec in SAMPLES:
        name, image = spec, SAMPLES[spec]()
    elif Path(spec).is_file():
        name, image = Path(spec).stem, skimage.io.imread(spec)
    else:
        raise ValueError(f"--images: {spec!r} is neither a sample ({', '.join(SAMPLES)}) nor an image file")
    image = skimage.util.img_as_float32(np.asarray(image))  # any integer or float dtype -> [0, 1]
    image = np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3]  # grey, RGB or RGBA -> RGB
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top:top + side, left:left + side]
    resized = skimage.transform.resize(square, (IMAGE_SIZE, IMAGE_SIZE), anti_aliasing=True)
    return name, np.clip(resized, 0, 1).astype(np.float32)


def pixel_tokens(images: np.ndarray) -> torch.Tensor:
    """``[B,224,224,3]`` in [0,1] -> float32 ``[B,256,8]``: per 14×14 patch the mean and standard
    deviation of R, G, B, then its grid (row, column) in [0, 1] scaled by :data:`POSITION_WEIGHT`."""
    b, g = images.shape[0], IMAGE_SIZE // PATCH
    pixels = images.reshape(b, g, PATCH, g, PATCH, 3).transpose(0, 1, 3, 2, 4, 5).reshape(b, g * g, PATCH * PATCH, 3)
    stats = np.concatenate([pixels.mean(2), pixels.std(2)], -1)  # [B,256,6]
    rows, cols = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    pos = np.stack([rows, cols], -1).reshape(g * g, 2) / (g - 1)
    # Squared distances add up over dimensions: a position step Δ adds (scale·Δ)², as much as all
    # 6 statistics being off by POSITION_WEIGHT·Δ when scale = POSITION_WEIGHT·sqrt(6).
    scale = POSITION_WEIGHT * np.sqrt(stats.shape[-1])
    feats = np.concatenate([stats, np.broadcast_to(scale * pos, (b, g * g, 2))], -1)
    return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))


def clip_tokens(images: np.ndarray, path: str, device: torch.device) -> torch.Tensor:
    """CLIP patch tokens of layer -2 without CLS, float32 ``[B,N,D]`` (N = 256 for ViT-L/14 at
    224 px). ``path``: a local checkpoint folder for ``CLIPVisionModel.from_pretrained``; its
    image processor is used when the folder has one, else CLIP's own normalization."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"--vision {path}: not a local CLIP checkpoint folder (no {folder / 'config.json'})")
    from transformers import CLIPImageProcessor, CLIPVisionModel
    from transformers.utils.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    model = CLIPVisionModel.from_pretrained(folder).eval().to(device)
    side = model.config.image_size
    if (folder / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(folder)
        as_uint8 = (images * 255).round().astype(np.uint8)  # what processors expect from a photo
        pixels = processor(images=list(as_uint8), return_tensors="pt").pixel_values
    else:
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bicubic", align_corners=False)
        pixels = (x - torch.tensor(OPENAI_CLIP_MEAN)[:, None, None]) / torch.tensor(OPENAI_CLIP_STD)[:, None, None]
    with torch.no_grad():
        hidden = model(pixel_values=pixels.to(device), output_hidden_states=True).hidden_states[-2]
    tokens = hidden[:, 1:].float()
    g = round(tokens.shape[1] ** 0.5)
    if g * g != tokens.shape[1]:
        raise ValueError(f"--vision {path}: {tokens.shape[1]} patch tokens do not form a square grid")
    return tokens


@dataclass
class Stage:
    """One stage on one image: ``labels`` ``[g,g]`` cluster of each patch, ``centroids`` ``[C,2]``
    mean (row, col) of each cluster's patches (NaN if empty), ``edges`` ``[E,2]`` τ-graph pairs i<j."""

    labels: np.ndarray
    centroids: np.ndarray
    edges: np.ndarray

    @property
    def num_clusters(self) -> int:
        return len(self.centroids)


def cluster_stages(tokens: torch.Tensor, tau: float) -> list[list[Stage]]:
    """``tokens`` ``[B,g*g,D]`` -> per image, per stage: its clusters mapped back to the patches."""
    b, n, d = tokens.shape
    g = round(n ** 0.5)
    projector = MVPProjector(d, 8, tau=tau).to(tokens.device)  # only .cluster runs: out_dim is irrelevant
    with torch.no_grad():
        stages = projector.cluster(tokens)
    rows, cols = np.divmod(np.arange(n), g)
    per_image: list[list[Stage]] = [[] for _ in range(b)]
    patch_label = torch.arange(n, device=tokens.device).expand(b, n)  # stage 0: every patch its own
    for _, assign, merged in stages:
        patch_label = torch.gather(assign, 1, patch_label)  # stage s's assign indexes stage s-1's clusters
        graph = ops.gcn_adjacency(merged, tau)
        adjacency = unpack_bits(graph.bits, merged.shape[1]).cpu().numpy()
        for i in range(b):
            labels = patch_label[i].cpu().numpy()
            c = merged.shape[1]
            count = np.bincount(labels, minlength=c)
            with np.errstate(invalid="ignore", divide="ignore"):
                centroids = np.stack([np.bincount(labels, rows, c) / count, np.bincount(labels, cols, c) / count], 1)
            edges = np.argwhere(np.triu(adjacency[i], 1))
            per_image[i].append(Stage(labels.reshape(g, g), centroids, edges))
    return per_image


def palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours in [0,1]: golden-ratio hue steps, alternating lightness."""
    return np.array([colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.9 - 0.3 * (i % 3 == 1), 1.0 - 0.3 * (i % 2))
                     for i in range(n)])


def _boundaries(labels: np.ndarray, cell: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Segments (in pixels) along every patch edge with different clusters on either side."""
    segs = []
    for r, c in np.argwhere(labels[:, 1:] != labels[:, :-1]):  # vertical edge right of (r, c)
        x = (c + 1) * cell
        segs.append(((x, r * cell), (x, (r + 1) * cell)))
    for r, c in np.argwhere(labels[1:] != labels[:-1]):  # horizontal edge below (r, c)
        y = (r + 1) * cell
        segs.append(((c * cell, y), ((c + 1) * cell, y)))
    return segs


def plot_stages(image: np.ndarray, stages: list[Stage], title: str, path: Path, alpha: float = 0.4,
                dpi: int = 80) -> None:
    """One PNG: per stage a 224-px panel with the clusters as a colour overlay, their borders, and
    the τ-graph's edges between cluster centroids."""
    size = image.shape[0]
    pad, top = 6, 34  # pixels between panels / above them for the titles
    width, height = len(stages) * size + (len(stages) + 1) * pad, size + top + pad
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 1 - 3 / height, title, ha="center", va="top", fontsize=10)
    for s, stage in enumerate(stages):
        ax = fig.add_axes(((pad + s * (size + pad)) / width, pad / height, size / width, size / height))
        g = stage.labels.shape[0]
        cell = size / g
        cell_of_pixel = np.minimum((np.arange(size) / cell).astype(int), g - 1)
        colours = palette(stage.num_clusters)[stage.labels[cell_of_pixel][:, cell_of_pixel]]  # [size,size,3]
        overlay = (1 - alpha) * image + alpha * colours
        ax.imshow(np.clip(overlay, 0, 1), extent=(0, size, size, 0), interpolation="nearest")
        ax.add_collection(LineCollection(_boundaries(stage.labels, cell), colors="black", linewidths=1.0))
        centres = (stage.centroids[:, ::-1] + 0.5) * cell  # (row, col) -> (x, y) pixels
        if len(stage.edges):
            ax.add_collection(LineCollection(centres[stage.edges], colors="white", linewidths=0.9, alpha=0.9))
        used = ~np.isnan(centres[:, 0])
        ax.scatter(centres[used, 0], centres[used, 1], s=9, c="white", edgecolors="black", linewidths=0.5, zorder=3)
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.set_axis_off()
        ax.set_title(f"stage {s + 1}: {stage.num_clusters} clusters, {len(stage.edges)} τ-edges",
                     fontsize=9, pad=2)
    canvas.draw()
    # An adaptive 256-colour palette: 35-70 KB per sample instead of 145-255 KB as RGB, and at
    # 3×224 px no visible banding.
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    palette_image = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_write(path, "wb") as f:
        palette_image.save(f, format="PNG", optimize=True)


def pictures(specs: list[str], out: Path, *, tau: float, device: torch.device,
             vision: str | None = None) -> torch.Tensor:
    """Load ``specs`` (sample names or image files), write ``out/<name>.png`` for each, print one
    line per image, and return the tokens that were clustered (float32 ``[B,N,D]`` on ``device``)."""
    named = [load_image(spec) for spec in specs]
    images = np.stack([image for _, image in named])
    if vision:
        tokens, kind = clip_tokens(images, vision, device), f"CLIP layer -2 tokens ({vision})"
    else:
        tokens, kind = pixel_tokens(images).to(device), "patch colour mean/std + position"
    print(f"{len(named)} images, {tokens.shape[1]} tokens × {tokens.shape[2]} features each: {kind}")
    out.mkdir(parents=True, exist_ok=True)
    for (name, image), stages in zip(named, cluster_stages(tokens, tau), strict=True):
        path = out / f"{name}.png"
        plot_stages(image, stages, f"{name}: {kind}, τ = {tau}", path)
        sizes = "/".join(str(s.num_clusters) for s in stages)
        edges = "/".join(str(len(s.edges)) for s in stages)
        print(f"  {name:<12} {sizes} clusters, {edges} τ-edges -> {path} ({path.stat().st_size // 1024} KB)")
    return tokens
