"""Chinese-aware text: segmentation into search terms and keywords, and the stop words.

Shared by search (resolvers/discovery/search.py) and trending keywords
(resolvers/discovery/trending.py). Segmentation is jieba's, with the default dictionary that
ships inside the package (nothing is downloaded; jieba caches its prefix dictionary in the
temp directory on first use, 0.6-2 s once per process: API processes pay it at start-up).

A term is lower-cased, NFKC-normalised (full-width letters and digits become ASCII) and made
of word characters only, so it can never carry full-text query syntax (quotes, ``*``,
``NEAR(``, ``:``, ``^``) into SQLite FTS5 or a PostgreSQL ``tsquery``.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from typing import Any

_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"[0-9_.]+")
_lock = threading.Lock()
_jieba: Any = None

#: Longest term kept (a pasted hash or URL is not a word).
MAX_TERM = 32

#: Words that carry no topic: Chinese function words and common verbs, and English ones.
STOP_WORDS = frozenset(
    """
    的 了 和 是 在 我 有 也 就 都 而 及 与 着 或 一个 没有 我们 你们 他们 她们 它们 这个 那个 这些 那些
    这 那 你 他 她 它 之 被 把 让 给 但 但是 并 很 还 又 吗 呢 吧 啊 呀 哦 嗯 么 什么 怎么 怎样 为什么
    如何 哪 哪里 哪个 谁 啥 不 没 要 会 能 可以 可能 应该 就是 还是 因为 所以 如果 虽然 然后 而且 或者
    已经 一下 一些 一点 一样 这样 那样 自己 大家 真的 非常 比较 一直 现在 今天 时候 知道 觉得 感觉 看看
    说 去 来 到 对 从 向 为 以 于 上 下 中 里 后 前 多 少 个 次 些 只 才 再 更 最 太 好 过 地 得 所 等
    请问 求助 有人 有没有 谢谢 大佬 各位 一起 东西 问题 一次 一个月 还有 其实 不是 只是 不过 以后 之前
    a an and are as at be but by for from has have i if in into is it its me my no not of on or our
    so that the their them then there these they this to was we were what when which who will with you
    your can do does did just than too very
    """.split()
)


def _segmenter() -> Any:
    """jieba, initialised once per process (thread-safe; logs quiet)."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def warm_up() -> None:
    """Load the segmenter now (API processes call this at start-up)."""
    _segmenter()


def normalise(text: str) -> str:
    """NFKC, lower case, and every control or format character made a space."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)


def _clean(tokens: Iterable[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        for word in _WORD.findall(token):
            word = word.strip("_")
            if word and len(word) <= MAX_TERM and word not in STOP_WORDS:
                out.append(word)
    return out


def index_terms(text: str) -> list[str]:
    """Every term a document should be found by, in order (repeats kept): jieba's search
    mode, which adds the shorter words inside long ones (充值卡 -> 充值, 充值卡)."""
    if not text:
        return []
    return _clean(_segmenter().cut_for_search(normalise(text)))


def query_terms(text: str, limit: int = 16) -> list[str]:
    """The distinct terms of a search query, in order, at most ``limit`` (precise mode: a
    query's 充值卡 must find 充值卡, which the index holds as a whole word)."""
    seen: dict[str, None] = {}
    for term in _clean(_segmenter().cut(normalise(text))):
        seen.setdefault(term, None)
    return list(seen)[:limit]


def keywords(text: str) -> set[str]:
    """The distinct keywords of a text, for trending: no stop words, no single characters,
    no bare numbers."""
    if not text:
        return set()
    return {
        term
        for term in _clean(_segmenter().cut(normalise(text)))
        if len(term) > 1 and not _NUMBER.fullmatch(term)
    }
