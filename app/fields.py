"""The validators and fields the schemas share: configured lengths, storable text, ids, strict
booleans and paging bounds."""

from flask import current_app
from marshmallow import ValidationError, fields, validate

from app.api import MAX_ID

MAX_PER_PAGE = 100
# Largest page: (page - 1) * per_page must stay a 64-bit integer (SQLite and PostgreSQL offsets).
MAX_PAGE = MAX_ID // MAX_PER_PAGE
MAX_DESCRIPTION_LENGTH = 2000


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


def _storable(value: str) -> str:
    """Refuse what no database text column stores: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid Unicode (no lone surrogates).") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValidationError("Must not be blank.")
    return value


def text(limit_key: str | None, *, blank: bool = False, limit: int | None = None, **kwargs):
    """A string field: storable text, not blank unless `blank`, at most a configured length."""
    validators = [_storable] + ([] if blank else [_not_blank])
    if limit_key is not None:
        validators.append(ConfigLength(limit_key))
        kwargs.setdefault("metadata", {})["description"] = f"At most {limit_key} characters."
    if limit is not None:
        validators.append(validate.Length(max=limit))
    return fields.String(validate=validators, **kwargs)


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
