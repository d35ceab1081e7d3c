"""Compiled kernels of the world step (numba), the ``backend="numba"`` path of
:class:`recsim_env.world.World`.

Each kernel fuses a run of the plain-numpy step's arithmetic into one pass over the sessions,
with the same operations in the same order on the same dtypes, so that both paths give the same
bits (``tests/recsim_env/test_backends.py`` and the episode digests check it):

* no ``fastmath``: LLVM keeps IEEE semantics and contracts no ``a * b + c`` into a fused
  multiply-add; ``error_model="numpy"``: division by zero gives inf/nan as numpy does;
* every transcendental (``exp``, ``log1p``, ``**``) stays in numpy between kernels, because
  numpy's SIMD implementations and the libm that compiled code calls may differ in the last
  bit: a kernel returns the arguments, numpy exponentiates them, the next kernel goes on;
* sums run left to right as :mod:`recsim_env.choice` does for narrow rows (the world falls
  back to numpy for rows wider than ``choice._NARROW``, where numpy sums pairwise), and
  topic-mixture dot products follow ``einsum``'s own summation order (:func:`einsum_dot`),
  which is checked against ``np.einsum`` when the kernels are first used: where this numpy
  sums otherwise, the world computes them with ``np.einsum`` and passes them in;
* every random draw is made by the caller, in numpy, from the world's generators, in the order
  the numpy step draws them; kernels only do arithmetic on the drawn arrays.

Compiled code is cached on disk (``cache=True``, in numba's cache next to this file or in
``NUMBA_CACHE_DIR``): only the first call on a cold cache compiles.

Physics formulas live in :mod:`recsim_env.response` (and users/choice); each kernel names the
function it restates, and the backend-equivalence test keeps them in step.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from recsim_env.response import NEUTRAL_SATISFACTION, NO_CLICK_PATIENCE_COST

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

MNL, PROPORTIONAL, CASCADE = 0, 1, 2
"""Codes of :attr:`EnvConfig.choice_model` (``flags[F_MODEL]``); ``CASCADE`` also stands for
"probabilities computed in numpy" (rows wider than ``choice._NARROW``)."""

# Scalars of the step, packed into one float64 array (one argument instead of eighteen: a
# compiled call pays per argument and, far more, per returned array, so kernels write into
# arrays they are given and return nothing).
(P_QUALITY_IN_CHOICE, P_SATIATION_STRENGTH, P_TEMPERATURE, P_NO_CLICK_UTILITY,
 P_NO_CLICK_WEIGHT, P_MIN_NORMALIZER, P_WATCH_SHARPNESS, P_INTEREST_STEP, P_SATIATION_DECAY,
 P_HISTORY_DECAY, P_P11, P_P21, P_P22, P_L11, P_L21, P_L22, P_QUALITY_BONUS,
 P_NO_CLICK_PENALTY) = range(18)
(F_ONEHOT, F_SATIATION, F_MODEL, F_ENGAGED, F_PATIENCE, F_ENDOGENOUS, F_EXOGENOUS,
 F_REWARD_WATCH, F_DOT) = range(9)

# rows of the per-step output blocks
(O_C_UTIL, O_WATCH, O_SATISFACTION, O_REWARD, O_BUDGET, O_PATIENCE, O_RET,
 O_SAT_SUM) = range(8)
I_PICK, I_STEPS, I_CLICKS, I_N_IMP = range(4)


def step_params(cfg, one_step) -> tuple[np.ndarray, np.ndarray]:
    """``(params (18,) float64, flags (8,) int64)`` of ``cfg`` for the kernels; ``one_step``
    is ``users.drift_transition(1, cfg)``."""
    p11, p21, p22, chol = one_step
    params = np.array([
        cfg.quality_in_choice, cfg.satiation_strength, cfg.choice_temperature,
        cfg.no_click_utility, cfg.no_click_mass - cfg.min_normalizer, cfg.min_normalizer,
        cfg.watch_sharpness, cfg.interest_step, cfg.satiation_decay, cfg.history_decay,
        float(p11), float(p21), float(p22), float(chol[0]), float(chol[1]), float(chol[2]),
        cfg.quality_bonus, cfg.no_click_penalty], np.float64)
    codes = {"mnl": MNL, "proportional": PROPORTIONAL, "cascade": CASCADE}
    flags = np.array([cfg.topic_purity == 1.0, cfg.satiation, codes[cfg.choice_model],
                      cfg.watch_mode == "engaged", cfg.patience is not None,
                      cfg.endogenous_drift, cfg.exogenous_drift,
                      cfg.recommender_reward == "watch_time", einsum_dot_matches(cfg.n_topics)],
                     np.int64)
    return params, flags


@_jit
def einsum_dot(a, b):
    """``np.einsum("t,t->", a, b)`` for 1-D float64 ``a`` and float32 or float64 ``b``, in the
    order numpy's einsum sums (its contiguous sum-of-products loop on two-lane float64
    vectors, as numpy builds it for x86-64: lanes take even and odd terms, blocks of eight
    terms are added last pair first, the lanes are added at the end). Use it only where
    :func:`einsum_dot_matches` says it gives numpy's bits (``flags[F_DOT]``)."""
    n = a.shape[0]
    acc0 = 0.0
    acc1 = 0.0
    t = 0
    while n - t >= 8:
        for q in (6, 4, 2, 0):
            acc0 = a[t + q] * np.float64(b[t + q]) + acc0
            acc1 = a[t + q + 1] * np.float64(b[t + q + 1]) + acc1
        t += 8
    while t < n:
        acc0 = a[t] * np.float64(b[t]) + acc0
        if t + 1 < n:
            acc1 = a[t + 1] * np.float64(b[t + 1]) + acc1
        t += 2
    return 0.0 + (acc0 + acc1)


@_jit
def _einsum_rows(a, b, out):
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = einsum_dot(a[i], b[i, j])


def einsum_dot_matches(n_topics: int) -> bool:
    """Whether :func:`einsum_dot` gives this numpy's ``einsum`` bits for rows of
    ``n_topics`` (checked on random rows against the contractions the step uses, float32 and
    float64 mixtures); where it does not (another numpy build or platform), the world
    computes those dot products with ``np.einsum`` and passes them in."""
    return _einsum_dot_matches(int(n_topics))


@functools.cache
def _einsum_dot_matches(n_topics: int) -> bool:
    rng = np.random.default_rng(n_topics)
    a = rng.uniform(-1.0, 1.0, (512, n_topics))
    for dtype in (np.float32, np.float64):
        b = rng.random((512, 3, n_topics)).astype(dtype)
        got = np.empty((512, 3))
        _einsum_rows(a, b, got)
        if not (np.array_equal(got, np.einsum("st,skt->sk", a, b))
                and np.array_equal(got[:, 0], np.einsum("st,st->s", a, b[:, 0]))):
            return False
    return True


@_jit
def gather_mix(topic_mix, slates, out):
    """``out[i, j] = topic_mix[i, slates[i, j]]``: the slate's topic mixtures (s, k, T), the
    gather ``topic_mix[rows, slates]`` of the numpy path (values copied, nothing computed;
    into a float64 ``out`` the float32 values are converted exactly, so numpy's products and
    sums over them need no casting buffer and give the same bits)."""
    s, k = slates.shape
    for i in range(s):
        for j in range(k):
            out[i, j, :] = topic_mix[i, slates[i, j], :]


@_jit
def gather_slate(slates, cand_topic, cand_quality, interest, satiation, aff_mix, sat_mix,
                 mix_ids, mix_table, params, flags, shown, quality, affinity, utility, z, n_imp):
    """Gather the slate and its utilities; the choice model's unnormalised weights.

    Restates ``items.repeated_mask``, the one-hot gathers of ``World.step``,
    ``response.choice_utility`` and the part of ``choice.choice_probabilities`` before its
    ``exp`` (``mnl``: logits minus the row maximum) or before normalising (``proportional``).

    Args:
        slates: (s, k) int64 candidate indices.
        cand_topic: (s, C) int64 candidates' main topics (read when ``F_ONEHOT``).
        cand_quality: (s, C) float64.
        interest, satiation: (s, T) float64 session arrays (read when ``F_ONEHOT``).
        aff_mix, sat_mix: (s, k) float64 ``interest . mix`` and ``satiation . mix`` computed in
            numpy (read when neither ``F_ONEHOT`` nor ``F_DOT``).
        mix_ids, mix_table: candidate ``c`` of slot ``i`` has the topic mixture
            ``mix_table[mix_ids[i, c]]`` (read with ``F_DOT`` and not ``F_ONEHOT``: the dot
            products are computed here, by :func:`einsum_dot`).
        params, flags: from :func:`step_params`.
        shown (s, k) bool, quality, affinity, utility (s, k) float64, z (s, k + 1) float64
            (not written for ``CASCADE``), n_imp (s,) int64 distinct items shown: written.
    """
    s, k = slates.shape
    onehot, use_sat, model = flags[F_ONEHOT], flags[F_SATIATION], flags[F_MODEL]
    dot = flags[F_DOT]
    qic, ss = params[P_QUALITY_IN_CHOICE], params[P_SATIATION_STRENGTH]
    temperature = params[P_TEMPERATURE]
    min_normalizer = params[P_MIN_NORMALIZER]
    for i in range(s):
        n_imp[i] = 0
        for j in range(k):
            c = slates[i, j]
            rep = False
            for jj in range(j):
                if slates[i, jj] == c:
                    rep = True
            shown[i, j] = not rep
            if not rep:
                n_imp[i] += 1
            q = cand_quality[i, c]
            quality[i, j] = q
            if onehot:
                t = cand_topic[i, c]
                a = interest[i, t]
                sv = satiation[i, t]
            elif dot:
                row = mix_table[mix_ids[i, c]]
                a = einsum_dot(interest[i], row)
                sv = einsum_dot(satiation[i], row) if use_sat else 0.0
            else:
                a = aff_mix[i, j]
                sv = sat_mix[i, j]
            affinity[i, j] = a
            u = a
            if qic != 0.0:
                u = u + qic * q
            if use_sat:
                u = u - ss * sv
            utility[i, j] = u
        if model == MNL:
            for j in range(k):
                z[i, j] = utility[i, j] / temperature if shown[i, j] else -np.inf
            z[i, k] = params[P_NO_CLICK_UTILITY] / temperature
            top = z[i, 0]
            for j in range(1, k + 1):
                if z[i, j] > top:
                    top = z[i, j]
            for j in range(k + 1):
                z[i, j] = z[i, j] - top
        elif model == PROPORTIONAL:
            for j in range(k):
                w = utility[i, j] - min_normalizer
                if not w > 0.0:
                    w = 0.0
                z[i, j] = w * (1.0 if shown[i, j] else 0.0)
            z[i, k] = params[P_NO_CLICK_WEIGHT]


@_jit
def pick_and_respond(z, normalize, u, override, slates, utility, quality, affinity,
                     cand_length, params, flags, out_f, out_i, clicked, pos, chosen, c_quality,
                     c_length, args):
    """Sample the choice, apply user agents' overrides, gather the chosen item's response
    inputs and the arguments of the ``exp`` that watch time and satisfaction need.

    Restates ``choice.sample_choice`` (after normalising ``z`` by its left-to-right row sum
    when ``normalize``), the override and gathers of ``World.step`` and the ``exp``
    arguments of ``response.watch_time`` (``'engaged'``) and ``response.satisfaction``.

    Args:
        z: (s, m) choice weights (normalised when not ``normalize``), last column no click.
        u: (s,) the choice uniforms.
        override: (s,) int64: -2 lets the model decide; (0,) for no overrides.
        cand_length: (s, C) candidates' lengths.
        out_f: (8, s) float64, row ``O_C_UTIL`` written; out_i: (4, s) int64, row ``I_PICK``
            written; clicked (s,) bool, pos, chosen (s,) int64, c_quality, c_length (s,)
            float64 and args (2, s) float64 written: ``args[0]`` is the watch exponent (only
            for ``engaged``), ``args[1]`` is ``-c_util``.
    """
    s, m = z.shape
    has_override = override.shape[0] > 0
    engaged = flags[F_ENGAGED]
    sharpness = params[P_WATCH_SHARPNESS]
    for i in range(s):
        if normalize:
            total = z[i, 0]
            for j in range(1, m):
                total += z[i, j]
            cdf = z[i, 0] / total
        else:
            total = 1.0
            cdf = z[i, 0]
        idx = 1 if u[i] >= cdf else 0
        for j in range(1, m - 1):
            cdf += z[i, j] / total if normalize else z[i, j]
            if u[i] >= cdf:
                idx += 1
        p = -1 if idx == m - 1 else idx
        if has_override and override[i] >= -1:
            p = override[i]
        out_i[I_PICK, i] = p
        ck = p >= 0
        clicked[i] = ck
        ps = p if p > 0 else 0
        pos[i] = ps
        ch = slates[i, ps]
        chosen[i] = ch
        cu = utility[i, ps] * (1.0 if ck else 0.0)
        out_f[O_C_UTIL, i] = cu
        cq = quality[i, ps]
        c_quality[i] = cq
        c_length[i] = cand_length[i, ch]
        args[0, i] = -sharpness * (affinity[i, ps] + cq) if engaged else 0.0
        args[1, i] = -cu


@_jit
def gather_and_pick(slates, cand_topic, cand_quality, interest, satiation, aff_mix, sat_mix,
                    mix_ids, mix_table, params, flags, shown, quality, affinity, utility, z, u,
                    override, cand_length, out_f, out_i, clicked, pos, chosen, c_quality,
                    c_length, args):
    """:func:`gather_slate` then :func:`pick_and_respond` in one call, for the proportional
    model (no ``exp`` between them); arguments as theirs."""
    gather_slate(slates, cand_topic, cand_quality, interest, satiation, aff_mix, sat_mix,
                 mix_ids, mix_table, params, flags, shown, quality, affinity, utility, z,
                 out_i[I_N_IMP])
    pick_and_respond(z, True, u, override, slates, utility, quality, affinity, cand_length,
                     params, flags, out_f, out_i, clicked, pos, chosen, c_quality, c_length,
                     args)


@_jit
def update_sessions(clicked, exps, c_length, c_quality, cand_topic, chosen, mix_chosen, mix_dot,
                    mix_ids, mix_table, budget, patience, steps, ret, clicks, sat_sum, interest,
                    satiation, history, anchor, home_all, user, u_endo, eps, params, flags, acc,
                    out_f, out_i, new_interest, new_satiation, new_history, new_anchor, ended):
    """Respond to the choice and update the sessions: watch time, satisfaction, consumption
    (endogenous drift, satiation, history), one step of exogenous drift, budget, patience,
    reward, the session sums, the end of sessions, and the per-slot accumulators (rows 0, 1
    and 4 of ``acc``, in place).

    Restates ``response.watch_time``, ``response.satisfaction``, ``users.consume_onehot`` /
    ``users.consume``, ``users.drift_exogenous`` (one step), ``response.update_budget``,
    ``response.update_patience``, ``response.recommender_reward`` and
    ``response.session_ended``.

    Args:
        exps: (2, s) ``exp`` of ``pick_and_respond``'s ``args`` (row 0 is read only for
            ``'engaged'`` watching).
        cand_topic: (s, C) candidates' main topics; ``chosen`` (s,) the chosen candidates
            (their topic is consumed, ``F_ONEHOT``).
        mix_chosen: (s, T) float64 consumed mixture times ``clicked``; ``mix_dot``: (s,)
            its dot with ``(interest + 1) * 0.5`` (read when neither ``F_ONEHOT`` nor
            ``F_DOT``; ``mix_dot`` only with endogenous drift).
        mix_ids, mix_table: the candidates' topic mixtures, as in :func:`gather_slate` (read
            with ``F_DOT`` and not ``F_ONEHOT``: the consumed mixture and its dot product are
            computed here).
        home_all: (m, T) homes, read at row ``user[i]`` (the world passes its per-slot copy
            and ``arange(s)``).
        u_endo: (s,) uniforms of the endogenous drift; ``eps``: (2, s, T) normals of the
            exogenous drift.
        out_f (8, s), out_i (4, s), new_interest, new_history (s, T), ended (s,): written
            (rows ``O_*``, ``I_*``); ``new_satiation`` is written with ``F_SATIATION`` and
            ``new_anchor`` with ``F_EXOGENOUS`` (otherwise the numpy path keeps the session's
            arrays, and so does the caller). The session arrays given are not modified.

    Returns:
        The number of sessions that ended.
    """
    s, T = interest.shape
    onehot, use_sat, use_pat = flags[F_ONEHOT], flags[F_SATIATION], flags[F_PATIENCE]
    endogenous, exogenous, engaged = flags[F_ENDOGENOUS], flags[F_EXOGENOUS], flags[F_ENGAGED]
    interest_step = params[P_INTEREST_STEP]
    satiation_decay, history_decay = params[P_SATIATION_DECAY], params[P_HISTORY_DECAY]
    p11, p21, p22 = params[P_P11], params[P_P21], params[P_P22]
    l11, l21, l22 = params[P_L11], params[P_L21], params[P_L22]
    dot = flags[F_DOT]
    consumed = np.zeros(T)  # the consumed mixture times clicked, with F_DOT
    half = np.zeros(T)  # (interest + 1) * 0.5, with F_DOT
    n_ended = 0
    for i in range(s):
        ck = clicked[i]
        fck = 1.0 if ck else 0.0
        length = c_length[i]
        if engaged:
            length = length / (1.0 + exps[0, i])
        b = budget[i]
        w = (b if b < length else length) * fck
        out_f[O_WATCH, i] = w
        sat = fck / (1.0 + exps[1, i])
        out_f[O_SATISFACTION, i] = sat
        # consumption
        for t in range(T):
            new_interest[i, t] = interest[i, t]
        if onehot:
            c = cand_topic[i, chosen[i]]
            if endogenous and ck:
                x = interest[i, c]
                toward = u_endo[i] < (x + 1.0) * 0.5
                st = interest_step * (1.0 - abs(x)) * (1.0 - x)
                v = x + (st if toward else -st)
                new_interest[i, c] = min(max(v, -1.0), 1.0)
            if use_sat:
                for t in range(T):
                    new_satiation[i, t] = satiation[i, t] * satiation_decay
                if ck:
                    new_satiation[i, c] += 1.0
            for t in range(T):
                new_history[i, t] = history[i, t] * history_decay
            if ck:
                new_history[i, c] += 1.0
        else:
            if dot:
                row = mix_table[mix_ids[i, chosen[i]]]
                for t in range(T):
                    consumed[t] = np.float64(row[t]) * fck
                m_i = consumed
            else:
                m_i = mix_chosen[i]
            if endogenous:
                if dot:
                    for t in range(T):
                        half[t] = (interest[i, t] + 1.0) * 0.5
                    toward = u_endo[i] < einsum_dot(half, consumed)
                else:
                    toward = u_endo[i] < mix_dot[i]
                for t in range(T):
                    x = interest[i, t]
                    mt = np.float64(m_i[t])
                    st = interest_step * (1.0 - abs(x)) * (mt - x) * mt
                    v = x + (st if toward else -st)
                    new_interest[i, t] = min(max(v, -1.0), 1.0)
            if use_sat:
                for t in range(T):
                    new_satiation[i, t] = satiation[i, t] * satiation_decay + np.float64(m_i[t])
            for t in range(T):
                new_history[i, t] = history[i, t] * history_decay + np.float64(m_i[t])
        if exogenous:
            h = home_all[user[i]]
            for t in range(T):
                da = anchor[i, t] - h[t]
                dx = new_interest[i, t] - h[t]
                n_da = p11 * da + l11 * eps[0, i, t]
                n_dx = p21 * da + p22 * dx + l21 * eps[0, i, t] + l22 * eps[1, i, t]
                new_interest[i, t] = min(max(h[t] + n_dx, -1.0), 1.0)
                new_anchor[i, t] = h[t] + n_da
        refund = params[P_QUALITY_BONUS] * c_quality[i]
        nb = b - (w * (1.0 - refund) if ck else params[P_NO_CLICK_PENALTY])
        out_f[O_BUDGET, i] = nb
        end = nb <= 0
        if use_pat:
            cost = 1.0 - sat / NEUTRAL_SATISFACTION
            if not cost > 0.0:
                cost = 0.0
            npat = patience[i] - (cost if ck else NO_CLICK_PATIENCE_COST)
            end = end or npat <= 0
        else:
            npat = patience[i]
        out_f[O_PATIENCE, i] = npat
        ended[i] = end
        n_ended += end
        rw = w if flags[F_REWARD_WATCH] else fck
        out_f[O_REWARD, i] = rw
        out_i[I_STEPS, i] = steps[i] + 1
        out_f[O_RET, i] = ret[i] + rw
        out_i[I_CLICKS, i] = clicks[i] + (1 if ck else 0)
        out_f[O_SAT_SUM, i] = sat_sum[i] + sat
        acc[0, i] += out_i[I_N_IMP, i]
        acc[1, i] += fck
        acc[4, i] += w
    return n_ended


@_jit
def build_obs(rows, history, budget, steps, clicks, interest, observe_interest, history_scale,
              session_budget, onehot, topic, ids, content, extra, user_dim, item_dim, out):
    """Recommender observations of session slots ``rows``, as ``World.recommender_obs``.

    Args:
        rows: (n,) int64 slots.
        onehot: the candidates' content is their one-hot ``topic`` (s, C) (``ids``,
            ``content`` and ``extra`` not read); otherwise candidate ``j`` of slot ``i`` has
            the content ``content[ids[i, j]]`` (``content``: (m, D) float32, the catalog's, or
            the fresh documents' flattened) and the extras ``extra[i, j]`` ((s, C, 4)): the
            gather and the copy into the observation are one pass.
        out: (n, user_dim + C * item_dim) float32, written.
    """
    n = rows.shape[0]
    T = history.shape[1]
    C = topic.shape[1] if onehot else ids.shape[1]
    D = item_dim - 4
    for r in range(n):
        i = rows[r]
        o = out[r]
        for t in range(T):
            o[t] = history[i, t] * history_scale
        o[T] = 1.0 - budget[i] / session_budget
        o[T + 1] = steps[i] / 100.0
        st = steps[i] if steps[i] > 1 else 1
        o[T + 2] = clicks[i] / st
        if observe_interest:
            for t in range(T):
                o[T + 3 + t] = interest[i, t]
        if onehot:
            o[user_dim:] = 0.0  # a slice fill (a loop of element writes is 3x slower)
            for j in range(C):
                o[user_dim + j * item_dim + topic[i, j]] = 1.0
        else:
            for j in range(C):
                b = user_dim + j * item_dim
                src = content[ids[i, j]]
                dst = o[b:b + item_dim]
                for d in range(D):
                    dst[d] = src[d]
                e = extra[i, j]
                for d in range(4):
                    dst[D + d] = e[d]


@_jit
def gather_candidates(ids, t, main_topic, quality, length, provider, born_at,
                      impressions, clicks, log1p_table, cold_threshold, o_topic, o_quality,
                      o_length, o_provider, o_age, o_impressions, o_clicks, extra):
    """The catalog candidates' attributes, gathered at ``ids`` (s, C) in one pass (the
    fancy-indexing gathers of ``World._new_candidates``), and their extra features as
    :func:`extra_features`. The ``o_*`` arrays (s, C) and ``extra`` are written; ``o_age``
    is ``float64(t - born_at)``.

    Returns:
        False (``extra`` incomplete, everything else written) when an impression count is
        past the end of ``log1p_table``.
    """
    s, C = ids.shape
    n_table = log1p_table.shape[0]
    ok = True
    for i in range(s):
        for j in range(C):
            x = ids[i, j]
            o_topic[i, j] = main_topic[x]
            o_quality[i, j] = quality[x]
            o_length[i, j] = length[x]
            o_provider[i, j] = provider[x]
            age = np.float64(t - born_at[x])
            o_age[i, j] = age
            imp = impressions[x]
            o_impressions[i, j] = imp
            cl = clicks[x]
            o_clicks[i, j] = cl
            if imp >= n_table:
                ok = False
                continue
            extra[i, j, 0] = age / 100.0
            extra[i, j, 1] = log1p_table[imp]
            extra[i, j, 2] = cl / (imp if imp > 1 else 1)
            extra[i, j, 3] = 1.0 if imp < cold_threshold else 0.0
    return ok


@_jit
def extra_features(item_id, age, impressions, clicks, log1p_table, cold_threshold, out):
    """Write ``out`` (s, C, 4) float32: age / 100, log1p(impressions) (looked up in
    ``log1p_table``, numpy's own values), CTR and cold flag, as ``World._extra_features``.
    Returns False (``out`` incomplete) when an impression count is past the table's end."""
    s, C = item_id.shape
    n_table = log1p_table.shape[0]
    for i in range(s):
        for j in range(C):
            imp = impressions[i, j]
            if imp >= n_table:
                return False
            out[i, j, 0] = age[i, j] / 100.0
            out[i, j, 1] = log1p_table[imp]
            out[i, j, 2] = clicks[i, j] / (imp if imp > 1 else 1)
            out[i, j, 3] = 1.0 if (item_id[i, j] >= 0 and imp < cold_threshold) else 0.0
    return True


@_jit
def rows_with_repeats(x):
    """``items.rows_with_repeats``: (r,) int64 ascending indices of the rows of ``x`` (m, k)
    that hold a repeated value."""
    m, k = x.shape
    out = np.empty(m, np.int64)
    n = 0
    for i in range(m):
        rep = False
        for j in range(1, k):
            for jj in range(j):
                if x[i, j] == x[i, jj]:
                    rep = True
        if rep:
            out[n] = i
            n += 1
    return out[:n]


@_jit
def count_interactions(slates, shown, clicked, pos, chosen, item_id, impressions,
                       cold_threshold, t, cat_impressions, cat_clicks, cat_first_click_at,
                       cat_born_at, acc, c_item, c_cold, cold_imp, first):
    """Count a step's impressions and clicks on catalog items, as the catalog branch of
    ``World.step`` with ``items.count_interactions``.

    Args:
        slates, shown (s, k), clicked, pos, chosen (s,): the step's slates and choices.
        item_id, impressions: (s, C) the candidates' catalog ids and impression counts (as
            drawn: what decides whether a candidate is cold).
        cat_impressions, cat_clicks, cat_first_click_at: the catalog's counters, updated in
            place (``cat_first_click_at`` set to ``t`` on an item's first click).
        cat_born_at: the catalog's arrival steps.
        acc: the world's per-slot accumulators; rows 2 (cold impressions) and 3 (cold
            clicks) are added to.
        c_item (s,) int64 clicked catalog id or -1, c_cold (s,) bool, cold_imp (s,) int64
            cold items shown: written. first: (2,) int64, written: the number of items that
            arrived during the run (``born_at > 0``) clicked for the first time, and the sum
            of their steps from arrival to that click.
    """
    s, k = slates.shape
    n_first = 0
    wait = 0
    for i in range(s):
        n_cold = 0
        for j in range(k):
            if shown[i, j]:
                c = slates[i, j]
                cat_impressions[item_id[i, c]] += 1
                if impressions[i, c] < cold_threshold:
                    n_cold += 1
        cold_imp[i] = n_cold
        acc[2, i] += n_cold
        if clicked[i]:
            x = item_id[i, chosen[i]]
            c_item[i] = x
            p = pos[i]
            cc = shown[i, p] and impressions[i, slates[i, p]] < cold_threshold
            c_cold[i] = cc
            acc[3, i] += 1.0 if cc else 0.0
            cat_clicks[x] += 1
            if cat_first_click_at[x] < 0:
                cat_first_click_at[x] = t
                born = cat_born_at[x]
                if born > 0:
                    n_first += 1
                    wait += t - born
        else:
            c_item[i] = -1
            c_cold[i] = False
    first[0] = n_first
    first[1] = wait


@_jit
def fresh_quality(topic, topic_quality, noise_scale, noise, out):
    """``out = topic_quality[topic] + noise_scale * noise`` with float32 ``noise_scale`` and
    ``noise`` (their product rounded to float32, as numpy computes a Python float times a
    float32 array), added in float64: the quality of RecSim's fresh documents."""
    for i in range(topic.shape[0]):
        out[i] = topic_quality[topic[i]] + noise_scale * noise[i]


@_jit
def propose_users(slots, cohorts, sizes, u, away_until, t, user, miss):
    """The rejection step of ``World._start_sessions``: slot ``slots[a]`` proposes the cohort
    members ``cohorts[slot, int(u[a, q] * sizes[slot])]`` in turn and takes the first who is
    back (``away_until <= t``); ``user[a]`` is written (the first proposal where nobody is
    back), and the rows where nobody is back are listed in ``miss``.

    Returns:
        The number of rows written to ``miss``.
    """
    e, m = u.shape
    n_miss = 0
    for a in range(e):
        row = cohorts[slots[a]]
        size = sizes[slots[a]]
        user[a] = row[np.int64(u[a, 0] * size)]
        found = False
        for q in range(m):
            c = row[np.int64(u[a, q] * size)]
            if away_until[c] <= t:
                user[a] = c
                found = True
                break
        if not found:
            miss[n_miss] = a
            n_miss += 1
    return n_miss


@_jit
def start_sessions(slots, user, interest, anchor, satiation, history, home, fresh, budget0,
                   patience0, s_user, s_home, s_interest, s_anchor, s_satiation, s_history,
                   s_budget, s_patience, s_steps, s_ret, s_clicks, s_satisfaction):
    """Write new sessions into slots ``slots`` (the scatter writes of
    ``World._start_sessions``): users ``user``, their (e, T) ``interest``, ``anchor``,
    ``satiation``, ``history`` and ``home`` (for a ``fresh`` user: anchor and home are the
    interest, satiation and history zero, and those arguments are not read), budget
    ``budget0``, patience ``patience0``, zero steps, return, clicks and satisfaction."""
    T = interest.shape[1]
    for a in range(slots.shape[0]):
        i = slots[a]
        s_user[i] = user[a]
        for t in range(T):
            x = interest[a, t]
            s_interest[i, t] = x
            if fresh:
                s_home[i, t] = x
                s_anchor[i, t] = x
                s_satiation[i, t] = 0.0
                s_history[i, t] = 0.0
            else:
                s_home[i, t] = home[a, t]
                s_anchor[i, t] = anchor[a, t]
                s_satiation[i, t] = satiation[a, t]
                s_history[i, t] = history[a, t]
        s_budget[i] = budget0
        s_patience[i] = patience0
        s_steps[i] = 0
        s_ret[i] = 0.0
        s_clicks[i] = 0
        s_satisfaction[i] = 0.0
