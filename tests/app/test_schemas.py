"""The marshmallow schemas: what they accept, refuse and default, and what they dump."""

import json

import pytest
from marshmallow import ValidationError

from app.api import MAX_ID
from app.fields import NOT_BLANK_PATTERN
from app.models import AnalysisRecord
from app.schemas import (
    AnalysisRecordSchema,
    AnalysisResultSchema,
    AnalyzeSchema,
    BatchAnalyzeSchema,
    ForceSchema,
    PageQuerySchema,
    PlaylistCreateSchema,
    SongCreateSchema,
)
from selah.analyzers.base import AnalysisResult, no_lyrics_result

SONG = {"title": "Morning Mercy", "artist": "The Test Choir", "lyrics": "Hold me in the storm"}


@pytest.fixture(autouse=True)
def _context(app):
    """Limits are read from `current_app.config`, so every test runs in an app context."""
    with app.app_context():
        yield


def errors(schema, data) -> dict:
    """The messages of the ValidationError that loading `data` must raise."""
    with pytest.raises(ValidationError) as info:
        schema.load(data)
    return info.value.messages


def test_analyze_defaults():
    assert AnalyzeSchema().load(SONG) == {**SONG, "user_id": None, "force": False}


@pytest.mark.parametrize("lyrics", ["", " ", "\n\n"])
def test_lyrics_may_be_empty(lyrics):
    assert AnalyzeSchema().load({**SONG, "lyrics": lyrics})["lyrics"] == lyrics


@pytest.mark.parametrize("field, value, message", [
    ("title", "", "Must not be blank."),
    ("title", "\t ", "Must not be blank."),
    ("title", "\x1c\x85", "Must not be blank."),  # white space to Python, not to ECMA-262's \s
    ("artist", "\ufeff ", "Must not be blank."),  # the other way round
    ("artist", "x" * 301, "At most 300 characters (MAX_ARTIST_LENGTH); got 301."),
    ("lyrics", "x" * 20_001, "At most 20000 characters (MAX_LYRICS_LENGTH); got 20001."),
    ("title", 1, "Not a valid string."),
    ("user_id", 0, "Must be greater than or equal to 1 and less than or equal to "
                   f"{MAX_ID}."),
    ("user_id", 1.5, "Not a valid integer."),
    ("user_id", True, "Not a valid integer."),
    ("force", "perhaps", "Not a valid boolean."),
])
def test_analyze_refuses(field, value, message):
    assert errors(AnalyzeSchema(), {**SONG, field: value}) == {field: [message]}


@pytest.mark.parametrize("field, value, stored", [
    ("lyrics", "a\x00b", "a\ufffdb"),
    ("title", "x\udfff", "x\ufffd"),
    ("artist", json.loads('"\\ud83d\\ude00 fine"'), "\U0001F600 fine"),  # a JSON pair: one
])
def test_unstorable_characters_are_replaced(field, value, stored):
    assert AnalyzeSchema().load({**SONG, field: value})[field] == stored


def test_the_document_states_not_blank_and_the_limits(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    song = spec["components"]["schemas"]["SongInput"]["properties"]
    assert song["title"]["pattern"] == NOT_BLANK_PATTERN and song["title"]["maxLength"] == 300
    assert "pattern" not in song["lyrics"] and song["lyrics"]["maxLength"] == 20_000
    batch = spec["components"]["schemas"]["BatchAnalyze"]["properties"]["songs"]
    assert batch["maxItems"] == 500 and "INLINE_MAX_CHARS" in batch["description"]


def test_unknown_fields_are_refused():
    assert errors(AnalyzeSchema(), {**SONG, "genre": "folk"}) == {"genre": ["Unknown field."]}


def test_limits_follow_the_config(app):
    app.config["MAX_TITLE_LENGTH"] = 4
    assert "MAX_TITLE_LENGTH" in errors(SongCreateSchema(), {**SONG, "title": "Hello"})["title"][0]
    app.config["MAX_BATCH_SIZE"] = 1
    assert "songs" in errors(BatchAnalyzeSchema(), {"songs": [SONG, SONG]})


def test_song_create_has_no_user_or_force():
    assert SongCreateSchema().load({**SONG, "album": None}) == {**SONG, "album": None}
    assert set(errors(SongCreateSchema(), {**SONG, "force": True})) == {"force"}


@pytest.mark.parametrize("body, valid", [
    ({"name": "P", "songs": [SONG]}, True),
    ({"name": "P", "song_ids": [1, 2]}, True),
    ({"name": "P", "song_ids": []}, True),
    ({"name": "P"}, True),
    ({"name": "P", "songs": [SONG], "song_ids": [1]}, True),
    ({"name": "P", "song_ids": [1, -2]}, False),
    ({"name": "P", "song_ids": [MAX_ID + 1]}, False),
    ({"name": "P", "songs": [{**SONG, "lyrics": 1}]}, False),
])
def test_playlist_songs_and_ids(body, valid):
    if valid:
        assert PlaylistCreateSchema().load(body)["name"] == "P"
    else:
        with pytest.raises(ValidationError):
            PlaylistCreateSchema().load(body)


@pytest.mark.parametrize("query, loaded", [
    ({}, {"page": 1, "per_page": 20}),
    ({"page": "3", "per_page": "100"}, {"page": 3, "per_page": 100}),
])
def test_page_query(query, loaded):
    assert PageQuerySchema().load(query) == loaded


@pytest.mark.parametrize("query", [{"page": "0"}, {"per_page": "101"}, {"page": "two"}])
def test_page_query_refuses(query):
    with pytest.raises(ValidationError):
        PageQuerySchema().load(query)


@pytest.mark.parametrize("body, force", [({}, False), ({"force": True}, True),
                                         ({"force": False}, False)])
def test_force(body, force):
    assert ForceSchema().load(body) == {"force": force}


@pytest.mark.parametrize("value", ["true", "yes", 1, 0, None])
def test_force_is_a_json_boolean_only(value):
    with pytest.raises(ValidationError, match="force"):
        ForceSchema().load({"force": value})


def test_result_schema_dumps_every_key_of_to_dict():
    result = no_lyrics_result("Quiet Interlude", "A", "", 3).to_dict()
    assert AnalysisResultSchema().dump(result) == result


def test_result_schema_fields_match_the_dataclass():
    fields = set(AnalysisResult.__dataclass_fields__) | {"recommendation"}
    assert set(AnalysisResultSchema().fields) == fields


def test_record_schema_fields_are_columns():
    columns = set(AnalysisRecord.__table__.columns.keys())
    internal = {"attempts", "claimed_by", "lease_expires_at", "enqueued_at", "lyrics_hash"}
    assert set(AnalysisRecordSchema().fields) == columns - internal
