"""The recommendation model, pure numbers: no database, no clock, no settings.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): an item-item
weight matrix ``B`` solved in closed form, ``B = I - P diag(1/diag(P))`` with
``P = (XᵀX + λI)⁻¹``, scored as ``X_u B``. Chosen over `implicit`'s ALS/BPR/item-kNN because it
is one deterministic linear solve with numpy/scipy (no compiled extension, no random seeds, no
epochs), it is among the strongest published baselines on MovieLens-sized implicit logs, and a
shop's catalogue (thousands of products) keeps the item × item matrix small. Its only
hyper-parameter, λ, is chosen on the training data itself (the latest interaction of every
user held out), so an unseen log needs no hand tuning. ``B``'s columns double as item-item
similarity (``Product.similar``, "popular with buyers of").

Interactions carry a weight (the caller's: purchase > like > view) and a time; a row's weights
decay with the age of the interaction relative to that user's latest one (half-life in events),
and users' rows are then L2-free: EASE ranks a row's items, so only relative weights matter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

#: λ candidates, as multiples of the mean diagonal of XᵀX (scale-free across logs and weights).
LAMBDA_GRID = (1.0, 2.0, 4.0, 8.0, 16.0)
#: Half-lives (in a user's own interactions) tried with them: recent interest weighs more.
HALF_LIFE_GRID = (5.0, 10.0, 20.0)
#: λ and the half-life are chosen on at most this many (most popular) items, to keep tuning cheap.
TUNE_ITEMS = 1000
#: Scores computed at once during evaluation: at most this many cells (users × items).
EVAL_CELLS = 8_000_000


@dataclass(frozen=True)
class Log:
    """Interactions as parallel arrays: user and item indices (0..n-1), weight, time (any
    increasing number: epoch seconds)."""

    users: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    n_users: int
    n_items: int

    @classmethod
    def from_keys(cls, users: Sequence[object], items: Sequence[object], times: Sequence[float],
                  weights: Sequence[float] | None = None) -> tuple[Log, list[object], list[object]]:
        """Index arbitrary user and item keys; returns the log and the keys by index."""
        user_keys, user_idx = np.unique(np.asarray(users, dtype=object).astype(str), return_inverse=True)
        item_keys, item_idx = np.unique(np.asarray(items, dtype=object).astype(str), return_inverse=True)
        w = np.ones(len(user_idx)) if weights is None else np.asarray(weights, dtype=np.float64)
        log = cls(user_idx.astype(np.int64), item_idx.astype(np.int64), w,
                  np.asarray(times, dtype=np.float64), len(user_keys), len(item_keys))
        return log, list(user_keys), list(item_keys)


@dataclass
class Model:
    b: np.ndarray  # (n_model_items, n_model_items) EASE weights, zero diagonal
    items: np.ndarray  # model column -> log item index
    popularity: np.ndarray  # (n_items,) distinct users per log item
    lam: float
    half_life_events: float
    train_seconds: float
    n_items: int

    def scores(self, x: sparse.csr_matrix) -> np.ndarray:
        """Scores of every log item for the rows of ``x`` (users × log items); items outside the
        model score below every model item, ordered by popularity."""
        dense = np.asarray(x[:, self.items] @ self.b) if self.items.size else np.zeros((x.shape[0], 0))
        out = np.empty((x.shape[0], self.n_items))
        base = self.popularity / (self.popularity.max() + 1.0) - 1e6
        out[:] = base
        out[:, self.items] = dense
        return out

    def similar(self, n: int) -> dict[int, list[tuple[int, float]]]:
        """For every model item, its ``n`` most similar items (log indices, weight > 0)."""
        result: dict[int, list[tuple[int, float]]] = {}
        sym = (self.b + self.b.T) / 2
        for col in range(sym.shape[0]):
            row = sym[col]
            top = np.argsort(-row, kind="stable")[:n]
            result[int(self.items[col])] = [(int(self.items[j]), float(row[j])) for j in top if row[j] > 0]
        return result


def decayed_matrix(log: Log, half_life_events: float) -> sparse.csr_matrix:
    """Users × items: duplicate pairs summed, each weight halved every ``half_life_events`` newer
    interactions of the same user."""
    order = np.lexsort((log.times, log.users))
    users, items, weights = log.users[order], log.items[order], log.weights[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    # Position from the user's end: 0 for the latest interaction.
    from_end = np.repeat(starts + counts, counts) - 1 - np.arange(len(users))
    decay = np.power(0.5, from_end / half_life_events) if half_life_events > 0 else 1.0
    x = sparse.csr_matrix((weights * decay, (users, items)), shape=(log.n_users, log.n_items))
    x.sum_duplicates()
    return x


def _solve(gram: np.ndarray, lam: float) -> np.ndarray:
    g = gram.copy()
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0.0
    return b


def _gram(x: sparse.csr_matrix, items: np.ndarray) -> np.ndarray:
    sub = x[:, items]
    return np.asarray((sub.T @ sub).toarray(), dtype=np.float64)


def _model_items(x: sparse.csr_matrix, max_items: int) -> np.ndarray:
    pop = np.asarray((x > 0).sum(axis=0)).ravel()
    seen = np.flatnonzero(pop)
    if seen.size > max_items:
        seen = np.sort(seen[np.argsort(-pop[seen], kind="stable")[:max_items]])
    return seen


def split_last(log: Log) -> tuple[Log, np.ndarray, np.ndarray]:
    """Leave-last-out by time: every user with at least two distinct items gives their latest
    item (every occurrence of that pair) as the test item. Returns the training log and the
    held-out (users, items)."""
    order = np.lexsort((np.arange(len(log.users)), log.times, log.users))
    users, items = log.users[order], log.items[order]
    if users.size == 0:
        return log, np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    last = np.r_[np.flatnonzero(np.diff(users)), len(users) - 1]
    last_item = np.full(log.n_users, -1)
    last_item[users[last]] = items[last]
    pairs = sparse.csr_matrix((np.ones(len(users)), (users, items)), shape=(log.n_users, log.n_items))
    pairs.sum_duplicates()
    distinct = np.diff(pairs.indptr)
    keep = ~((items == last_item[users]) & (distinct[users] >= 2))
    test_users = np.flatnonzero((distinct >= 2) & (last_item >= 0))
    train = Log(users[keep], items[keep], log.weights[order][keep], log.times[order][keep], log.n_users, log.n_items)
    return train, test_users.astype(np.int64), last_item[test_users].astype(np.int64)


def fit(log: Log, *, half_life_events: float | None = None, max_items: int = 4000,
        lam: float | None = None) -> Model:
    """Train EASE on ``log``. λ (as a multiple of XᵀX's mean diagonal) and the half-life are
    chosen on a last-item validation split of ``log`` itself unless given."""
    started = time.perf_counter()
    if half_life_events is None or lam is None:
        half_life_events, factor = _tune(log, max_items)
    else:
        factor = None
    x = decayed_matrix(log, half_life_events)
    popularity = np.asarray((x > 0).sum(axis=0)).ravel().astype(np.float64)
    items = _model_items(x, max_items)
    if items.size == 0:
        return Model(np.zeros((0, 0)), items, popularity, 0.0, half_life_events,
                     time.perf_counter() - started, log.n_items)
    gram = _gram(x, items)
    if factor is not None:
        lam = factor * (float(np.mean(np.diag(gram))) or 1.0)
    b = _solve(gram, float(lam))
    return Model(b, items, popularity, float(lam), half_life_events, time.perf_counter() - started, log.n_items)


def _tune(log: Log, max_items: int) -> tuple[float, float]:
    """(half-life, λ factor) with the best HR@10 on each user's latest item, trained on the rest."""
    train, test_users, test_items = split_last(log)
    best, choice = -1.0, (HALF_LIFE_GRID[0], LAMBDA_GRID[0])
    if test_users.size == 0:
        return choice
    for half_life in HALF_LIFE_GRID:
        x = decayed_matrix(train, half_life)
        items = _model_items(x, min(max_items, TUNE_ITEMS))
        if items.size == 0:
            return choice
        gram = _gram(x, items)
        scale = float(np.mean(np.diag(gram))) or 1.0
        popularity = np.asarray((x > 0).sum(axis=0)).ravel().astype(np.float64)
        for factor in LAMBDA_GRID:
            model = Model(_solve(gram, factor * scale), items, popularity, factor * scale, half_life, 0.0,
                          log.n_items)
            hr, ndcg = _hit_rates(model.scores, x, test_users, test_items, 10)
            if hr + ndcg / 10 > best:
                best, choice = hr + ndcg / 10, (half_life, factor)
    return choice


def _hit_rates(score, x: sparse.csr_matrix, users: np.ndarray, items: np.ndarray, k: int) -> tuple[float, float]:
    """HR@k and NDCG@k with one relevant item per user, full ranking over the items the user has
    not interacted with in ``x`` (ties broken by item index)."""
    hits, gains = 0.0, 0.0
    batch = max(16, min(4096, EVAL_CELLS // max(x.shape[1], 1)))
    for start in range(0, users.size, batch):
        u, target = users[start:start + batch], items[start:start + batch]
        rows = x[u]
        s = score(rows)
        seen = rows.tocoo()
        s[seen.row, seen.col] = -np.inf
        t = s[np.arange(u.size), target][:, None]
        idx = np.arange(s.shape[1])[None, :]
        rank = (s > t).sum(axis=1) + ((s == t) & (idx < target[:, None])).sum(axis=1)
        hit = rank < k
        hits += float(hit.sum())
        gains += float((1.0 / np.log2(rank[hit] + 2.0)).sum())
    n = max(users.size, 1)
    return hits / n, gains / n


@dataclass(frozen=True)
class Evaluation:
    model_hr: float
    model_ndcg: float
    popularity_hr: float
    popularity_ndcg: float
    train_seconds: float
    users: int
    items: int
    interactions: int
    lam: float
    half_life_events: float

    def as_json(self) -> dict[str, object]:
        return {
            "model": {"hr": round(self.model_hr, 6), "ndcg": round(self.model_ndcg, 6)},
            "popularity": {"hr": round(self.popularity_hr, 6), "ndcg": round(self.popularity_ndcg, 6)},
            "train_seconds": round(self.train_seconds, 3),
        }


def evaluate(log: Log, *, k: int = 10, max_items: int = 4000) -> Evaluation:
    """Leave-last-out by time: train the production model on everything but each user's
    latest item, rank every item the user has not seen, and compare with popularity."""
    train, test_users, test_items = split_last(log)
    model = fit(train, max_items=max_items)
    x = decayed_matrix(train, model.half_life_events)
    m_hr, m_ndcg = _hit_rates(model.scores, x, test_users, test_items, k)
    pop = model.popularity

    def popularity(rows: sparse.csr_matrix) -> np.ndarray:
        return np.tile(pop, (rows.shape[0], 1))

    p_hr, p_ndcg = _hit_rates(popularity, x, test_users, test_items, k)
    return Evaluation(m_hr, m_ndcg, p_hr, p_ndcg, model.train_seconds, log.n_users, log.n_items,
                      len(log.users), model.lam, model.half_life_events)


def decay_weight(age_seconds: float, half_life_seconds: float) -> float:
    """The production weight of an interaction ``age_seconds`` old."""
    return math.pow(0.5, max(age_seconds, 0.0) / half_life_seconds) if half_life_seconds > 0 else 1.0


def _time_value(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        from datetime import UTC, datetime

        parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def read_csv(path: str, user_col: str, item_col: str, time_col: str) -> Log:
    """A CSV interaction log (header row; the delimiter sniffed: comma, tab, semicolon, pipe).
    Times are numbers (epoch seconds or any increasing count) or ISO 8601 dates."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(64 * 1024)
        handle.seek(0)
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",\t;|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        missing = [c for c in (user_col, item_col, time_col) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"no column {', '.join(missing)} in {path} (columns: {', '.join(reader.fieldnames or [])})")
        users, items, times = [], [], []
        for row in reader:
            if not row.get(user_col) or not row.get(item_col) or not row.get(time_col):
                continue
            users.append(row[user_col])
            items.append(row[item_col])
            times.append(_time_value(row[time_col]))
    if not users:
        raise ValueError(f"{path} has no interactions")
    log, _, _ = Log.from_keys(users, items, times)
    return log
