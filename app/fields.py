"""The validators and fields the schemas share: configured lengths, storable text, ids, strict
booleans and paging bounds."""

import re

from flask import current_app
from marshmallow import ValidationError, fields, validate

from app.api import MAX_ID

MAX_PER_PAGE = 100
# Largest page: (page - 1) * per_page must stay a 64-bit integer (SQLite and PostgreSQL offsets).
MAX_PAGE = MAX_ID // MAX_PER_PAGE
MAX_DESCRIPTION_LENGTH = 2000


def documented_limit(key: str) -> int:
    """The limit the OpenAPI document states for `key`: this process's setting when the schemas
    were imported (the environment's, else the default). Requests are checked against the app's
    config at the time, which a test may change."""
    from app.config import Config

    return getattr(Config, key)


class ConfigLength(validate.Validator):
    """At most `current_app.config[key]` items or characters (read at validation time)."""

    def __init__(self, key: str, noun: str = "characters"):
        self.key, self.noun = key, noun

    def __call__(self, value):
        limit = current_app.config[self.key]
        if len(value) > limit:
            raise ValidationError(f"At most {limit} {self.noun} ({self.key}); got {len(value)}.")
        return value


class InlineBudget(validate.Validator):
    """At most `INLINE_MAX_CHARS` characters of lyrics over a list of songs: what one request
    thread is allowed to analyse; the error says where bigger work goes."""

    def __call__(self, songs):
        limit = current_app.config["INLINE_MAX_CHARS"]
        total = sum(len(song.get("lyrics") or "") for song in songs if isinstance(song, dict))
        if total > limit:
            raise ValidationError(
                f"At most {limit} characters of lyrics in one inline batch (INLINE_MAX_CHARS); "
                f"got {total}. Split the batch, or store the songs as a playlist "
                f"(POST /api/playlists) and analyse it as a background job "
                f"(POST /api/playlists/<id>/analyze).")
        return songs


# What no UTF-8 text column stores: NUL, and surrogates not paired into one character (JSON's
# "\ud800" escape can carry them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """`value` as a database text column can store it: each NUL character and lone surrogate
    becomes U+FFFD, the replacement character."""
    return _UNSTORABLE.sub("\ufffd", value)


class Text(fields.String):
    """A string, made storable (see `storable`) as it is loaded."""

    def _deserialize(self, value, attr, data, **kwargs):
        return storable(super()._deserialize(value, attr, data, **kwargs))


# "Not blank": at least one character that is not white space, white space being every
# character that either Python (`str.isspace`: adds U+001C-U+001F and U+0085) or the JSON Schema
# regex dialect of the OpenAPI document (ECMA-262 `\s`: adds U+FEFF) counts as such. Spelled out
# rather than `\S`, so that the document's `pattern` and this validator mean the same strings in
# both dialects (the API fuzz test sent an artist of such characters, valid by the document's
# `\S`, and the validator's `strip` found it blank).
NOT_BLANK_PATTERN = (r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
                     r"\u205f\u3000\ufeff]")
_SOME_TEXT = re.compile(NOT_BLANK_PATTERN)


def _not_blank(value: str) -> str:
    if not _SOME_TEXT.search(value):
        raise ValidationError("Must not be blank.")
    return value


def text(limit_key: str | None, *, blank: bool = False, limit: int | None = None, **kwargs):
    """A storable string field, not blank unless `blank`, at most a configured length; the
    OpenAPI document states both (`pattern`, `maxLength`)."""
    metadata = kwargs.setdefault("metadata", {})
    validators = [] if blank else [_not_blank]
    if not blank:
        metadata["pattern"] = NOT_BLANK_PATTERN
    if limit_key is not None:
        validators.append(ConfigLength(limit_key))
        metadata["maxLength"] = documented_limit(limit_key)
        metadata["description"] = f"At most {limit_key} characters" + (
            "." if blank else ", not blank.")
    if limit is not None:
        validators.append(validate.Length(max=limit))
    return Text(validate=validators, **kwargs)


class Id(fields.Integer):
    """A positive database id: a JSON integer (not a string, float or boolean)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class StrictBoolean(fields.Boolean):
    """A JSON boolean, `true` or `false` only: 1, 0, "yes" or "true" are refused, not read as
    booleans (a caller who sends them has a bug worth hearing about)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def force_field():
    """`force`: re-analyse even when a cached result for these lyrics and model exists."""
    return StrictBoolean(load_default=False, metadata={
        "description": "Re-analyse even when a result for these lyrics and model is cached. "
                       "JSON true or false only."})
