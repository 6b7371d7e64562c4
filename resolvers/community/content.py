"""User-written text: Markdown cleaned before it is stored, rendered to sanitised HTML, and
checked against the sensitive-word filter.

Two layers keep script out of other users' browsers:

* ``clean_markdown`` makes the *stored source* safe for any Markdown renderer a client may
  use: character references are decoded (so nothing hides behind ``&#106;``), raw HTML tags
  are escaped (``<script>`` becomes the text ``&lt;script>``; autolinks to http, https and
  mailto stay), and ``javascript:``/``vbscript:`` schemes anywhere, and ``data:`` in link
  destinations, become ``blocked:``.
* ``render`` turns that source into HTML with markdown-it-py (raw HTML off) and sanitises
  the result with nh3 (Ammonia): a small tag set, links only to http/https/mailto and with
  ``rel="nofollow noopener"``. ``bodyHtml`` is the only form meant to be shown as HTML.

The filter (``screen``) reads ``word:action`` pairs from the settings: ``block`` refuses the
text, ``mask`` replaces the word with ``***``, ``hold`` stores it for a moderator (``hold``
puts that on the audit trail). ``throttle`` is the writers' pace: posts and comments per user.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import nh3
from markdown_it import MarkdownIt

from kameng import runtime
from kameng.settings import get_settings
from models.accounts.users import User
from models.community.moderation import ModerationAction
from resolvers.errors import ErrorCode, UserFacingError, invalid

# -- cleaning the source ----------------------------------------------------------------

_ENTITY_ROUNDS = 5
# A raw HTML tag, comment, declaration or processing instruction starts with one of these.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
# Autolinks a client may turn into links: only to safe schemes (kept as written).
_SAFE_AUTOLINK = re.compile(r"<(?:https?://|mailto:)[^\s<>]*>", re.IGNORECASE)
_GAP = r"[\s\x00-\x1f]*"  # browsers ignore whitespace and controls inside a scheme


def _spaced(word: str) -> str:
    return _GAP.join(re.escape(ch) for ch in word)


_SCRIPT_SCHEME = re.compile(
    "(?:" + "|".join(_spaced(w) for w in ("javascript", "vbscript", "livescript")) + ")" + _GAP + ":",
    re.IGNORECASE,
)
# data: only where a link destination starts: inline links/images, reference definitions.
_DATA_DESTINATION = re.compile(
    r"(\]\(\s*<?\s*|^[ ]{0,3}\[[^\]\n]+\]:\s*<?\s*)" + _spaced("data") + _GAP + ":",
    re.IGNORECASE | re.MULTILINE,
)


def _decode_references(text: str) -> str:
    """Decode character references until none is left (``&amp;#106;`` hides one twice)."""
    for _ in range(_ENTITY_ROUNDS):
        decoded = html.unescape(text)
        if decoded == text:
            return text
        text = decoded
    return text.replace("&", "")  # still nesting after five rounds: not text anyone meant


def _escape_tags(text: str) -> str:
    pieces: list[str] = []
    last = 0
    for match in _SAFE_AUTOLINK.finditer(text):
        pieces.append(_TAG_START.sub("&lt;", text[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_TAG_START.sub("&lt;", text[last:]))
    return "".join(pieces)


def clean_markdown(text: str, field: str, *, maximum: int, minimum: int = 1) -> str:
    """The Markdown source as it is stored: trimmed, NFC, no control characters but newlines
    and tabs, no raw HTML and no script or data URLs. INVALID_INPUT if empty or too long."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = _decode_references(text)
    text = _escape_tags(text)
    text = _SCRIPT_SCHEME.sub("blocked:", text)
    text = _DATA_DESTINATION.sub(lambda m: m.group(1) + "blocked:", text)
    text = text.strip()
    if not minimum <= len(text) <= maximum:
        raise invalid(field, f"Give {minimum} to {maximum} characters." if minimum else f"At most {maximum} characters.")
    return text


def clean_line(text: str, field: str, *, maximum: int, minimum: int = 1) -> str:
    """A one-line text (titles): as ``clean_markdown``, with newlines and tabs made spaces."""
    flat = re.sub(r"[\n\t]+", " ", unicodedata.normalize("NFC", text))
    return clean_markdown(flat, field, maximum=maximum, minimum=minimum)


# -- rendering --------------------------------------------------------------------------

_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a", "img",
    "table", "thead", "tbody", "tr", "th", "td",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # CommonMark with raw HTML off (it comes out escaped), plus tables and strikethrough.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


def render(source: str) -> str:
    """Sanitised HTML of a Markdown source."""
    rendered = _markdown().render(source)
    return nh3.clean(
        rendered,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="nofollow noopener",
        strip_comments=True,
    ).strip()


# -- the sensitive-word filter ----------------------------------------------------------


class WordAction(StrEnum):
    BLOCK = "block"
    MASK = "mask"
    HOLD = "hold"


@dataclass(frozen=True)
class WordList:
    block: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()
    hold: tuple[str, ...] = ()

    def pattern(self, action: WordAction) -> re.Pattern[str] | None:
        return _pattern(getattr(self, action.value))


@lru_cache(maxsize=32)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    ordered = sorted(words, key=len, reverse=True)  # the longest match first
    return re.compile("|".join(re.escape(w) for w in ordered), re.IGNORECASE)


def parse_words(text: str) -> WordList:
    """``word:action`` pairs separated by commas or newlines; unknown actions are refused."""
    found: dict[WordAction, list[str]] = {action: [] for action in WordAction}
    for raw in re.split(r"[,\n]", text):
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        word, sep, action = item.rpartition(":")
        word = unicodedata.normalize("NFC", word.strip())
        try:
            kind = WordAction(action.strip().lower())
        except ValueError:
            raise ValueError(f"sensitive word {item!r}: give word:block, word:mask or word:hold") from None
        if not sep or not word:
            raise ValueError(f"sensitive word {item!r}: give word:block, word:mask or word:hold")
        found[kind].append(word)
    return WordList(**{action.value: tuple(dict.fromkeys(words)) for action, words in found.items()})


@lru_cache(maxsize=8)
def _word_list(inline: str, path: str | None, mtime: float | None) -> WordList:
    text = inline
    if path is not None:
        text += "\n" + Path(path).read_text(encoding="utf-8")
    return parse_words(text)


def configured_words() -> WordList:
    settings = get_settings()
    path = settings.sensitive_words_file
    mtime = path.stat().st_mtime if path is not None else None  # an edited file is re-read
    return _word_list(settings.sensitive_words, str(path) if path is not None else None, mtime)


@dataclass(frozen=True)
class Screened:
    texts: dict[str, str]  # field name -> text, masked words replaced
    hold_words: tuple[str, ...]  # non-empty: store for review


def screen(texts: dict[str, str], words: WordList | None = None) -> Screened:
    """Apply the filter to each named text. A blocked word raises INVALID_INPUT on its field."""
    words = words or configured_words()
    blocked = words.pattern(WordAction.BLOCK)
    masked = words.pattern(WordAction.MASK)
    held = words.pattern(WordAction.HOLD)
    out: dict[str, str] = {}
    holds: list[str] = []
    for field, text in texts.items():
        if blocked is not None and (match := blocked.search(text)):
            raise invalid(
                field,
                f"The {field} contains a word that is not allowed here (\u201c{match.group(0)}\u201d): "
                "please rephrase it.",
            )
        if masked is not None:
            text = masked.sub("***", text)
        if held is not None:
            holds.extend(m.group(0).lower() for m in held.finditer(text))
        out[field] = text
    return Screened(out, tuple(dict.fromkeys(holds)))


async def hold(kind: str, target_id: int, words: tuple[str, ...]) -> None:
    """Put the filter's HOLD of a post or comment on the moderators' audit trail."""
    await ModerationAction.create(
        moderator_id=None, target_kind=kind, target_id=target_id, action="HOLD",
        reason=("sensitive words: " + ", ".join(words))[:300],
    )


# -- the writers' pace ------------------------------------------------------------------


async def throttle(user: User, kind: str) -> None:
    """Posting limits per user, stricter for new accounts; staff are not limited."""
    if user.is_staff:
        return
    settings = get_settings()
    new = user.created_at > datetime.now(UTC) - timedelta(hours=settings.new_account_hours)
    if kind == "post":
        limit = settings.post_limit_new_account if new else settings.post_limit
    else:
        limit = settings.comment_limit_new_account if new else settings.comment_limit
    if not await runtime.limiter().hit(limit, f"community:{kind}", str(user.id)):
        what = "posts" if kind == "post" else "comments"
        raise UserFacingError(ErrorCode.RATE_LIMITED, f"You have written too many {what} lately; try again later.")
