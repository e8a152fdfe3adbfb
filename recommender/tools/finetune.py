"""Fine-tune a backbone's upper layers on a labelled catalog, so that photos of one destination land close together.

The recipe is metric learning on top of the pretrained network: the layers before ``trainable_from`` stay frozen,
the layers from there on train together with a new projection (pooling -> Dense -> L2 normalisation) under a
batch-hard triplet loss. Because the frozen part never changes, its output is computed once per photo (and once
for its mirror image) and training runs on those cached tensors only: an epoch then costs a few forward and
backward passes through the last block, which is what makes a few hundred photos a matter of minutes on a CPU.

Quality is measured on destinations held out of training (split by label, never by photo), before and after,
with the protocol of ``recommender.tools.evaluation.retrieval_metrics``. The result is a ``.keras`` model that takes
RGB 0..255 float32 images and whose layer ``embedding`` is the new fingerprint: use it as
``--backbone PATH.keras:embedding``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops
from tqdm import tqdm

from recommender.fingerprint import ExtractionOptions
from recommender.images import UnsupportedImage
from recommender.refine import DEFAULT_REFINE, Whitening, unit
from recommender.tools.evaluation import EvalReport, LabelledPhoto, evaluate_vectors, read_manifest, retrieval_metrics

logger = logging.getLogger(__name__)

CACHE_BATCH = 32
# The frozen layers' output stays in memory while training (75 KB per photo with its mirror image): beyond this
# the mirror images are left out, and a manifest too large for even one view per photo is refused.
MAX_CACHE_BYTES = 4 << 30
EMBEDDING_LAYER = "embedding"


@dataclass(frozen=True)
class FinetuneOptions:
    """How to split, what to train and for how long; the defaults finish in a few minutes on a 2-core CPU.

    Training runs in two stages, the usual transfer-learning recipe: ``head_epochs`` train the new projection
    alone at ``head_learning_rate``, then ``epochs`` train it together with the backbone layers from
    ``trainable_from`` at the smaller ``learning_rate``, so the pretrained weights are not shaken by a head
    that has not settled yet. One epoch covers every training photo about once.
    """

    holdout: float = 0.3  # fraction of the label groups held out for the before/after report, never trained on
    trainable_from: str = "block15_expand"  # the first layer that trains; everything before it stays frozen
    projection_dim: int = 512
    head_epochs: int = 5
    epochs: int = 20
    batch_groups: int = 32  # P destinations per batch ...
    per_group: int = 2  # ... K photos of each: most destinations have only 2-3 photos
    margin: float = 0.1  # on cosine distance (1 - cosine similarity)
    head_learning_rate: float = 1e-3
    learning_rate: float = 1e-4
    augment: bool = True  # each batch draws the photo or its mirror image, at random
    # The saved weights are this share of the way from where training started to where it ended (WiSE-FT,
    # Wortsman et al. 2022): with a few hundred photos, the half-way point keeps more of what the pretrained
    # network knows about places it was not trained on.
    trained_share: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be a fraction between 0 and 1. Received: holdout={self.holdout!r}")
        for name in ("projection_dim", "batch_groups", "per_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.batch_groups < 2:
            raise ValueError(
                f"batch_groups must be at least 2: negatives come from the other destinations of the batch. "
                f"Received: batch_groups={self.batch_groups!r}"
            )
        for name in ("head_epochs", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")
        if self.head_epochs + self.epochs == 0:
            raise ValueError("at least one epoch must train. Received: head_epochs=0, epochs=0")
        if not 0.0 < self.trained_share <= 1.0:
            raise ValueError(f"trained_share must be in (0, 1]. Received: trained_share={self.trained_share!r}")
        for name in ("margin", "head_learning_rate", "learning_rate"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive. Received: {name}={value!r}")


@dataclass(frozen=True)
class FinetuneReport:
    """What was trained on, what was held out, and the held-out retrieval quality before and after."""

    backbone: str
    options: FinetuneOptions
    before: EvalReport  # the un-tuned backbone's fingerprint, on the held-out photos only
    after: EvalReport  # the saved model's ``embedding``, on the same photos
    before_indexed: EvalReport  # both again as `wanderlens index` would search them: with the refinement
    after_indexed: EvalReport  # (whitening, DBA) that it learns from a catalog, here from the held-out photos
    train_groups: tuple[str, ...]  # labels
    held_out_groups: tuple[str, ...]
    train_photos: tuple[Path, ...]  # exactly the photos the training batches were drawn from
    held_out_photos: tuple[Path, ...]
    trained_layers: tuple[str, ...]  # the backbone layers that trained, then the projection
    views_per_photo: int  # 2: the photo and its mirror image (FinetuneOptions.augment, memory allowing)
    seconds: float
    output: Path
    failures: tuple[str, ...] = ()  # photos of the manifest that could not be read, with why

    def summary(self) -> str:
        before, after = self.before, self.after
        delta = after.mean_average_precision - before.mean_average_precision
        indexed_delta = self.after_indexed.mean_average_precision - self.before_indexed.mean_average_precision
        backbone_layers = len(self.trained_layers) - 1
        mirrors = " and their mirror images" if self.views_per_photo > 1 else ""
        lines = [
            f"Fine-tuned {self.backbone} from {self.options.trainable_from} ({backbone_layers} layers) plus a "
            f"{self.options.projection_dim}-d projection on {len(self.train_groups)} destinations "
            f"({len(self.train_photos)} photos{mirrors}) in {self.seconds:.0f} s; "
            f"saved {self.options.trained_share:g} of the way from the start to the trained weights to {self.output}",
            f"Held out (never trained on): {len(self.held_out_groups)} destinations, "
            f"{len(self.held_out_photos)} photos, {after.queries} queries",
            f"  before: {before.summary_line()}",
            f"  after:  {after.summary_line()}  (mAP {delta:+.4f}{self._noise_note(delta)})",
            "As `wanderlens index` would search them (whitening and DBA learned from the held-out photos themselves):",
            f"  before: {self.before_indexed.summary_line()}",
            f"  after:  {self.after_indexed.summary_line()}  (mAP {indexed_delta:+.4f}"
            f"{self._noise_note(indexed_delta)})",
            self.verdict(),
            f"To use it: wanderlens index CATALOG --out INDEX --backbone {self.output}:{EMBEDDING_LAYER}",
        ]
        if self.failures:
            lines.append(f"{len(self.failures)} photos could not be read and were left out")
        return "\n".join(lines)

    def verdict(self) -> str:
        """Whether to switch, judged as the product searches (indexed), with one query's worth as the noise floor."""
        delta = self.after_indexed.mean_average_precision - self.before_indexed.mean_average_precision
        if delta >= self._one_query():
            return "Verdict: better on the held-out destinations; rebuild the index with the new backbone"
        if delta <= -self._one_query():
            return "Verdict: worse on the held-out destinations; keep the current backbone"
        return (
            f"Verdict: no clear change on {self.after.queries} held-out queries; keep the current backbone, "
            f"or hold out more destinations (--holdout) to tell"
        )

    def _noise_note(self, delta: float) -> str:
        worth = self._one_query()
        return f", within one query's worth: {worth:.3f}" if abs(delta) < worth else ""

    def _one_query(self) -> float:
        # One query's AP moves the mean by up to 1/queries: with a few dozen held-out queries, smaller changes
        # can come from a single photo and say little about the model.
        return 1.0 / max(self.after.queries, 1)


@keras.saving.register_keras_serializable(package="wanderlens")
class BatchHardTripletLoss(keras.losses.Loss):
    """For each anchor: its farthest positive must be closer than its nearest negative by ``margin``.

    Batch-hard triplets (Hermans et al., "In Defense of the Triplet Loss", 2017) rather than a contrastive
    loss: what goes wrong in a catalog is look-alike destinations, and batch-hard mining makes exactly those the
    negatives, with one margin to choose; a contrastive loss over all pairs of a small batch is dominated by
    easy negatives and needs a second margin. Embeddings must be L2-normalised; distances are 1 - cosine.
    ``y_true`` holds integer labels; an anchor without a positive in the batch (a destination with a single
    photo) is not scored, but still serves as a negative for the others.
    """

    def __init__(self, margin: float = 0.1, name: str = "batch_hard_triplet", **kwargs: object) -> None:
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true: object, y_pred: object) -> object:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        distances = 1.0 - ops.matmul(y_pred, ops.transpose(y_pred))
        same = ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0))
        positions = ops.arange(ops.shape(labels)[0])
        itself = ops.equal(ops.expand_dims(positions, 1), ops.expand_dims(positions, 0))
        positives = ops.logical_and(same, ops.logical_not(itself))
        # Cosine distances lie in [0, 2]: -1 and 3 can never win the max and the min.
        hardest_positive = ops.max(ops.where(positives, distances, -1.0), axis=1)
        hardest_negative = ops.min(ops.where(same, 3.0, distances), axis=1)
        has_negative = ops.logical_not(ops.all(same, axis=1))
        scored = ops.cast(ops.logical_and(ops.any(positives, axis=1), has_negative), "float32")
        per_anchor = ops.relu(hardest_positive - hardest_negative + self.margin)
        return ops.sum(per_anchor * scored) / ops.maximum(ops.sum(scored), 1.0)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "margin": self.margin}


@dataclass(frozen=True)
class GroupSplit:
    """Cache row indices per destination: multi-photo groups can be anchors, singletons only negatives."""

    train: dict[str, np.ndarray]
    held_out: dict[str, np.ndarray]


def split_by_group(labels: Sequence[str], *, holdout: float, seed: int) -> GroupSplit:
    """Hold out ``holdout`` of the destinations (seeded), multi-photo and single-photo ones in proportion.

    At least one multi-photo destination lands on each side, so both training and the report have positives.
    """
    members: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        members.setdefault(label, []).append(row)
    multi = sorted(label for label, rows in members.items() if len(rows) > 1)
    single = sorted(label for label, rows in members.items() if len(rows) == 1)
    if len(multi) < 2:
        raise ValueError(
            "fine-tuning needs at least two destinations with two or more readable photos each, one to train on "
            f"and one to measure on. Received: {len(multi)} such destinations among {len(members)}"
        )
    rng = np.random.default_rng(seed)
    held_multi = min(max(round(holdout * len(multi)), 1), len(multi) - 1)
    held = {*rng.permutation(multi)[:held_multi], *rng.permutation(single)[: round(holdout * len(single))]}
    as_arrays = {label: np.asarray(rows) for label, rows in members.items()}
    return GroupSplit(
        train={label: rows for label, rows in as_arrays.items() if label not in held},
        held_out={label: rows for label, rows in as_arrays.items() if label in held},
    )


def plan_epoch(
    groups: Sequence[np.ndarray], singles: np.ndarray, *, batch_groups: int, per_group: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of P x K batches as ``(rows, labels)`` pairs, every batch exactly ``batch_groups * per_group`` long.

    Each multi-photo group is cut into slots of K of its photos (topped up from the same group), so every
    photo is drawn about once per epoch; single photos fill slots of their own with unique negative labels.
    The last batch is completed with randomly repeated slots.
    """
    slots: list[tuple[np.ndarray, int]] = []
    for label, rows in enumerate(groups):
        shuffled = rng.permutation(rows)
        for start in range(0, len(shuffled), per_group):
            chunk = shuffled[start : start + per_group]
            if len(chunk) < per_group:
                others = np.setdiff1d(rows, chunk)
                pool = others if len(others) else rows
                chunk = np.concatenate([chunk, rng.choice(pool, per_group - len(chunk))])
            slots.append((chunk, label))
    if len(singles):
        shuffled = rng.permutation(singles)
        for start in range(0, len(shuffled), per_group):
            chunk = shuffled[start : start + per_group]
            if len(chunk) < per_group:
                chunk = np.concatenate([chunk, rng.choice(singles, per_group - len(chunk))])
            slots.append((chunk, -1))
    order = list(rng.permutation(len(slots)))
    order += list(rng.choice(len(slots), -len(order) % batch_groups))
    batches = []
    for start in range(0, len(order), batch_groups):
        chosen = [slots[i] for i in order[start : start + batch_groups]]
        rows = np.concatenate([chunk for chunk, _ in chosen])
        labels = np.repeat([label for _, label in chosen], per_group)
        lonely = labels < 0
        labels[lonely] = -1 - np.flatnonzero(lonely)  # unique: a single photo is never anyone's positive
        batches.append((rows, labels.astype(np.int32)))
    return batches


def finetune(
    manifest: str | Path,
    output: str | Path,
    *,
    backbone: str = "efficientnet-lite0",
    options: FinetuneOptions = FinetuneOptions(),
    progress: bool = True,
) -> FinetuneReport:
    """Fine-tune ``backbone`` on the labelled ``manifest`` (path,label[,is_query]) and save it to ``output``.

    Returns the held-out retrieval quality before and after. Refuses to overwrite ``output``.
    """
    from recommender.backbones import load_backbone
    from recommender.backbones.efficientnet_lite import VARIANTS
    from recommender.extractor import Extractor

    started = time.perf_counter()
    manifest, output = Path(manifest), Path(output)
    if backbone not in VARIANTS:
        raise ValueError(
            f"fine-tuning supports the EfficientNet-Lite backbones: {', '.join(VARIANTS)}. "
            f"Received: backbone={backbone!r}"
        )
    if output.suffix != ".keras":
        raise ValueError(f"the output must be a `.keras` file. Received: output={os.fspath(output)!r}")
    _refuse_existing(output)
    photos = read_manifest(manifest)
    if not photos:
        raise ValueError(f"the manifest lists no photos. Received: {manifest}")

    # The plain network (one band, no colour: training changes the network's part only) and its extractor's
    # decoding: the photos are then prepared exactly as they will be for the saved model, whose defaults these are.
    loaded = load_backbone(backbone, options=ExtractionOptions(), include_top=False)
    parts = _split_model(loaded.model, options)
    views = _views_that_fit(len(photos), parts.lower, options)
    cached, kept, failures = _cache_activations(
        [photo.path for photo in photos],
        parts.lower,
        Extractor(loaded, buckets=(1,)).preprocess,
        views=views,
        progress=progress,
    )
    used = [photos[i] for i in kept]
    split = split_by_group([photo.label for photo in used], holdout=options.holdout, seed=options.seed)
    train_rows = np.sort(np.concatenate(list(split.train.values())))
    held_rows = np.sort(np.concatenate(list(split.held_out.values())))
    logger.info(
        "fine-tuning %s on %d destinations (%d photos); %d destinations (%d photos) held out; %d unreadable",
        backbone,
        len(split.train),
        len(train_rows),
        len(split.held_out),
        len(held_rows),
        len(failures),
    )

    before, before_indexed = _evaluate(parts.before, cached[held_rows, 0], [used[i] for i in held_rows])
    _start_from_whitening(parts, cached[train_rows], options)
    start = parts.train.get_weights()
    _train(parts.train, cached, split, options=options, progress=progress)
    share = options.trained_share
    parts.train.set_weights(
        [(1 - share) * a + share * b for a, b in zip(start, parts.train.get_weights(), strict=True)]
    )
    after, after_indexed = _evaluate(parts.train, cached[held_rows, 0], [used[i] for i in held_rows])
    _save_new(parts.export, output)
    return FinetuneReport(
        backbone=backbone,
        options=options,
        before=before,
        after=after,
        before_indexed=before_indexed,
        after_indexed=after_indexed,
        train_groups=tuple(sorted(split.train)),
        held_out_groups=tuple(sorted(split.held_out)),
        train_photos=tuple(used[i].path for i in train_rows),
        held_out_photos=tuple(used[i].path for i in held_rows),
        trained_layers=parts.trained_layers,
        views_per_photo=views,
        seconds=time.perf_counter() - started,
        output=output,
        failures=failures,
    )


@dataclass(frozen=True)
class _Parts:
    """Views of one graph that share their layers: training ``train`` changes ``export`` too."""

    lower: keras.Model  # images -> the input of trainable_from (frozen, run once per photo)
    before: keras.Model  # cached tensors -> the un-tuned pooled fingerprint
    train: keras.Model  # cached tensors -> the normalised projection
    export: keras.Model  # images -> the normalised projection, as saved
    trained_layers: tuple[str, ...]


def _split_model(full: keras.Model, options: FinetuneOptions) -> _Parts:
    names = [layer.name for layer in full.layers]
    starts = [name for name in names if name.endswith("_expand") or name == "head_conv"]
    if options.trainable_from not in names[1:]:
        raise ValueError(
            f"no layer {options.trainable_from!r} to train from; blocks start at {', '.join(starts[-4:])}. "
            f"Received: trainable_from={options.trainable_from!r}"
        )
    cut = full.get_layer(options.trainable_from).input
    pooled = full.output["embedding"]
    try:
        before = keras.Model(cut, pooled, name="upper_before")
    except ValueError as error:
        # A residual connection jumps over the cut: the upper part would need a second, earlier input.
        raise ValueError(
            f"cannot cut the network at {options.trainable_from!r}: a residual connection crosses it. "
            f"Start at the first layer of a block, e.g. {', '.join(starts[-4:])}. "
            f"Received: trainable_from={options.trainable_from!r}"
        ) from error
    # The orthogonal initialiser is only the fallback start (too few photos to learn a whitening from, see
    # _start_from_whitening); it keeps the angles of the pretrained fingerprint up to the dropped dimensions.
    # Average pooling, as the default fingerprint: a saved model with only built-in layers loads anywhere.
    normalised = layers.UnitNormalization(name="pooled_unit")(pooled)
    projected = layers.Dense(
        options.projection_dim, kernel_initializer=keras.initializers.Orthogonal(seed=options.seed), name="projection"
    )(normalised)
    embedding = layers.UnitNormalization(name=EMBEDDING_LAYER)(projected)
    train = keras.Model(cut, embedding, name="upper_finetune")
    trained = tuple(layer.name for layer in before.layers if layer.weights)
    return _Parts(
        lower=keras.Model(full.input, cut, name="lower_frozen"),
        before=before,
        train=train,
        export=keras.Model(full.input, embedding, name=f"{full.name}_finetuned"),
        trained_layers=(*trained, "projection"),
    )


def _start_from_whitening(parts: _Parts, train_activations: np.ndarray, options: FinetuneOptions) -> None:
    """Start the projection as the training photos' own partial PCA whitening, strongest directions first.

    That is the whitening `wanderlens index` learns from a catalog by default: a better start on same-place
    matching than a random orthogonal projection, which drops information until training has recovered it. Over
    six splits of holidays-dev it moved the held-out mAP change from -0.0006 to +0.0072 on the plain
    fingerprints, and from -0.0107 to -0.0028 as indexed with whitening alone (README, "Fine-tuning on your own
    catalog").
    """
    views = train_activations.reshape(-1, *train_activations.shape[2:])  # every cached view of every photo
    raw = np.concatenate(
        [ops.convert_to_numpy(parts.before(views[i : i + CACHE_BATCH])) for i in range(0, len(views), CACHE_BATCH)]
    )
    whitening = Whitening.learn(unit(raw), DEFAULT_REFINE.whitening, keep=options.projection_dim)
    if whitening is None or options.projection_dim > raw.shape[1]:
        logger.info(
            "no whitening to start from (%d training views of %d dimensions, projection to %d): the projection "
            "starts orthogonal",
            len(raw),
            raw.shape[1],
            options.projection_dim,
        )
        return
    kernel = whitening.projection  # its projection_dim strongest directions
    parts.train.get_layer("projection").set_weights([kernel, -whitening.mean @ kernel])


def _decode(path: Path, preprocess: Callable[[Path], np.ndarray]) -> np.ndarray | str:
    try:
        return preprocess(path)
    except UnsupportedImage as error:
        return f"unreadable image: {error}"
    except OSError as error:
        return f"cannot read file: {error.strerror or error}"


def _views_that_fit(photos: int, lower: keras.Model, options: FinetuneOptions) -> int:
    """How many views of each photo to cache: all that ``options`` ask for, as far as MAX_CACHE_BYTES allows."""
    wanted = 2 if options.augment else 1
    view_bytes = 4 * int(np.prod(lower.output.shape[1:]))
    fit = MAX_CACHE_BYTES // (photos * view_bytes)
    if fit < 1:
        raise ValueError(
            f"too many photos to fine-tune on at once: one view of each would take {photos * view_bytes / 2**30:.1f} "
            f"GiB of the {MAX_CACHE_BYTES / 2**30:.0f} GiB allowed; fine-tune on a sample of the catalog. "
            f"Received: {photos} photos"
        )
    if fit < wanted:
        logger.warning(
            "%d photos: training without their mirror images, to keep the cache within %.0f GiB",
            photos,
            MAX_CACHE_BYTES / 2**30,
        )
    return min(wanted, fit)


def _cache_activations(
    paths: Sequence[Path],
    lower: keras.Model,
    preprocess: Callable[[Path], np.ndarray],
    *,
    views: int,
    progress: bool,
) -> tuple[np.ndarray, list[int], tuple[str, ...]]:
    """The frozen part's output per readable photo, shape (n, views, ...): view 0 as is, view 1 mirrored."""
    chunks: list[np.ndarray] = []
    kept: list[int] = []
    failures: list[str] = []
    bar = tqdm(total=len(paths), unit="img", desc="Caching frozen layers", disable=not progress)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode") as pool:
        for start in range(0, len(paths), CACHE_BATCH):
            positions = range(start, min(start + CACHE_BATCH, len(paths)))
            decoded = list(pool.map(_decode, [paths[i] for i in positions], [preprocess] * len(positions)))
            pixels = []
            for position, result in zip(positions, decoded, strict=True):
                if isinstance(result, str):
                    failures.append(f"{paths[position]}: {result}")
                    logger.warning("left out %s: %s", paths[position], result)
                else:
                    kept.append(position)
                    pixels.append(result)
            if pixels:
                batch = np.stack(pixels).astype(np.float32)
                shown = [batch, batch[:, :, ::-1]][:views]
                # Called eagerly, one view at a time: a traced predict step would retrace for the last, shorter
                # batch (the convolutions dominate the time anyway), and each view's early activations take
                # hundreds of megabytes.
                outputs = [ops.convert_to_numpy(lower(view, training=False)) for view in shown]
                chunks.append(np.stack(outputs, axis=1))
            bar.update(len(positions))
    bar.close()
    if not kept:
        raise ValueError(f"no photo of the manifest could be read. Received: {len(paths)} paths, e.g. {failures[0]}")
    cached = np.concatenate(chunks)
    logger.info("cached the frozen layers' output: %s float32, %.0f MB", cached.shape, cached.nbytes / 2**20)
    return cached, kept, tuple(failures)


def _evaluate(
    model: keras.Model, activations: np.ndarray, photos: Sequence[LabelledPhoto]
) -> tuple[EvalReport, EvalReport]:
    """Retrieval among ``photos``: of the fingerprints as they come out, and as an index of them would search."""
    chunks = [
        ops.convert_to_numpy(model(activations[start : start + CACHE_BATCH], training=False))
        for start in range(0, len(activations), CACHE_BATCH)
    ]
    vectors = unit(np.concatenate(chunks))
    labels, queries = [p.label for p in photos], [p.is_query for p in photos]
    return retrieval_metrics(vectors, labels, queries), evaluate_vectors(vectors, labels, queries, DEFAULT_REFINE)


def _batches(
    cached: np.ndarray, split: GroupSplit, options: FinetuneOptions
) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], int]:
    """An endless, seeded stream of (activations, labels) batches, and how many make one epoch."""
    groups = [rows for rows in split.train.values() if len(rows) > 1]
    singles = np.asarray([rows[0] for rows in split.train.values() if len(rows) == 1], dtype=np.int64)
    rng = np.random.default_rng(options.seed)
    plan = {"batch_groups": options.batch_groups, "per_group": options.per_group, "rng": rng}
    steps = len(plan_epoch(groups, singles, **plan))

    def stream() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            for rows, labels in plan_epoch(groups, singles, **plan):
                views = rng.integers(0, cached.shape[1], len(rows))
                yield cached[rows, views], labels

    return stream(), steps


def _train(
    model: keras.Model, cached: np.ndarray, split: GroupSplit, *, options: FinetuneOptions, progress: bool
) -> None:
    batches, steps = _batches(cached, split, options)
    loss = BatchHardTripletLoss(margin=options.margin)
    verbose = 2 if progress else 0
    stages = [
        ("projection only", options.head_epochs, options.head_learning_rate, True),
        ("projection and backbone layers", options.epochs, options.learning_rate, False),
    ]
    done = 0
    for what, epochs, learning_rate, head_only in stages:
        if not epochs:
            continue
        for layer in model.layers:
            layer.trainable = layer.name == "projection" or not head_only
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
        logger.info("training %s for %d epochs of %d batches, lr %g", what, epochs, steps, learning_rate)
        model.fit(
            batches, steps_per_epoch=steps, initial_epoch=done, epochs=done + epochs, shuffle=False, verbose=verbose
        )
        done += epochs


def _refuse_existing(output: Path) -> None:
    if output.exists():
        raise FileExistsError(
            f"{output} already exists and fine-tuning never overwrites a model: choose another output path or "
            f"delete it first. Received: output={os.fspath(output)!r}"
        )


def _save_new(model: keras.Model, output: Path) -> None:
    """Save beside ``output`` then link it into place, so a reader never sees half a file and nothing is replaced."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.{os.getpid()}.partial.keras")
    try:
        model.save(partial)
        try:
            os.link(partial, output)  # fails if output appeared meanwhile: no silent overwrite
        except FileExistsError:
            _refuse_existing(output)
            raise
        except OSError:  # a file system without hard links
            _refuse_existing(output)
            os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
