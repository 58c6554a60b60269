"""marshmallow schemas: what each route accepts (validation lives here) and what it returns.

Input limits are read from `current_app.config` when a request is validated (MAX_TITLE_LENGTH,
MAX_ARTIST_LENGTH, MAX_LYRICS_LENGTH, MAX_BATCH_SIZE), so a test or deployment can change them.
Unknown JSON fields are refused (marshmallow's RAISE); unknown query parameters are ignored (the
legacy web app's GETs may carry cache-busters).

Lyrics are required but may be empty: a song without lyrics is a real case, and the analyzer's
no-lyrics rule answers it (75 "Instrumental" for an instrumental title, else 50 "No Lyrics
Available"). Titles, artists and playlist names must have at least one non-space character
(the document's `pattern`). Text is stored as given, except NUL characters and lone surrogates,
which no UTF-8 column holds: they become U+FFFD.
"""

import marshmallow as ma
from marshmallow import fields, validate

from app.fields import (MAX_DESCRIPTION_LENGTH, MAX_PAGE, MAX_PER_PAGE, ConfigLength, Id,
                        InlineBudget, documented_limit, force_field, text)


# -- input -------------------------------------------------------------------------------------


class SongInputSchema(ma.Schema):
    """A song to analyse inline (not stored)."""

    title = text("MAX_TITLE_LENGTH", required=True)
    artist = text("MAX_ARTIST_LENGTH", required=True)
    lyrics = text("MAX_LYRICS_LENGTH", blank=True, required=True)
    user_id = Id(allow_none=True, load_default=None)


class AnalyzeSchema(SongInputSchema):
    """`POST /api/analyze`: one song."""

    force = force_field()


class BatchAnalyzeSchema(ma.Schema):
    """`POST /api/analyze/batch`: up to MAX_BATCH_SIZE songs and INLINE_MAX_CHARS characters of
    lyrics in all (the batch runs on the request thread; bigger work is a job)."""

    songs = fields.List(fields.Nested(SongInputSchema), required=True,
                        validate=[ConfigLength("MAX_BATCH_SIZE", "songs"), InlineBudget()],
                        metadata={"description": "At most MAX_BATCH_SIZE songs and "
                                                 "INLINE_MAX_CHARS characters of lyrics in all.",
                                  "maxItems": documented_limit("MAX_BATCH_SIZE")})
    force = force_field()


class SongCreateSchema(ma.Schema):
    """A song to store."""

    title = text("MAX_TITLE_LENGTH", required=True)
    artist = text("MAX_ARTIST_LENGTH", required=True)
    album = text("MAX_TITLE_LENGTH", blank=True, allow_none=True, load_default=None)
    lyrics = text("MAX_LYRICS_LENGTH", blank=True, required=True)


class PlaylistCreateSchema(ma.Schema):
    """A playlist: stored songs (`song_ids`, in that order) then new ones (`songs`); either or
    both may be given, and a playlist with neither is empty."""

    name = text("MAX_TITLE_LENGTH", required=True)
    description = text(None, blank=True, limit=MAX_DESCRIPTION_LENGTH, allow_none=True,
                       load_default=None)
    songs = fields.List(fields.Nested(SongCreateSchema),
                        validate=ConfigLength("MAX_BATCH_SIZE", "songs"),
                        metadata={"maxItems": documented_limit("MAX_BATCH_SIZE")})
    song_ids = fields.List(Id(), validate=ConfigLength("MAX_BATCH_SIZE", "songs"),
                           metadata={"maxItems": documented_limit("MAX_BATCH_SIZE"),
                                     "description": "Stored songs' ids; unknown ids are a 404 "
                                                    "naming them."})


class ForceSchema(ma.Schema):
    """Optional body of the legacy analyse routes (may be empty)."""

    force = force_field()


class PageQuerySchema(ma.Schema):
    """`?page=1&per_page=20` (per_page at most 100; page at most MAX_PAGE, so that the row offset
    fits the database's 64-bit integer whatever per_page is)."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE))


# -- output ------------------------------------------------------------------------------------


class AnalysisResultSchema(ma.Schema):
    """`AnalysisResult.to_dict()`: the legacy result shape (contract section 2)."""

    title = fields.String()
    artist = fields.String()
    lyrics_text = fields.String()
    processed_text = fields.String()
    content_analysis = fields.Dict(metadata={
        "description": "concern_flags (each with its evidence lines), concern_level, ..."})
    biblical_analysis = fields.Dict(metadata={
        "description": "themes (each with its evidence lines), supporting_scripture (verses the "
                       "lyric quotes first, source quoted, then the themes', source theme), ..."})
    model_analysis = fields.Dict(metadata={"description": "sentiment, emotions, framework, ..."})
    scoring_results = fields.Dict(metadata={"description": "final_score, explanation, ..."})
    processing_time = fields.Float()
    timestamp = fields.String(metadata={"description": "ISO 8601 with zone"})
    user_id = fields.Integer(allow_none=True)
    analysis_version = fields.String()
    error_message = fields.String(allow_none=True)
    configuration_snapshot = fields.Dict()
    recommendation = fields.String()


class BatchResultSchema(ma.Schema):
    """Results in the order the songs were given."""

    results = fields.List(fields.Nested(AnalysisResultSchema))
    count = fields.Integer()


class SongSummarySchema(ma.Schema):
    """A stored song, without its lyrics (lists and playlists)."""

    id = fields.Integer()
    title = fields.String()
    artist = fields.String()
    album = fields.String(allow_none=True)
    lyrics_hash = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SongSchema(SongSummarySchema):
    """A stored song with its lyrics."""

    lyrics = fields.String()


class SongPageSchema(ma.Schema):
    """A page of songs (without lyrics; `GET /api/songs/<id>` has them)."""

    songs = fields.List(fields.Nested(SongSummarySchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class PlaylistSchema(ma.Schema):
    """A stored playlist and its songs in order (without lyrics)."""

    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    song_count = fields.Integer()
    songs = fields.List(fields.Nested(SongSummarySchema))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    @ma.pre_dump
    def _flatten(self, playlist, **_kwargs):
        songs = [entry.song for entry in playlist.entries]
        return {"id": playlist.id, "name": playlist.name, "description": playlist.description,
                "song_count": len(songs), "songs": songs, "created_at": playlist.created_at,
                "updated_at": playlist.updated_at}


class PlaylistPageSchema(ma.Schema):
    """A page of playlists."""

    playlists = fields.List(fields.Nested(PlaylistSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class AnalysisRecordSchema(ma.Schema):
    """A stored analysis (an `analysis_results` row): legacy columns, v3.1 columns, full result."""

    id = fields.Integer()
    song_id = fields.Integer()
    status = fields.String()
    score = fields.Float(allow_none=True)
    concern_level = fields.String(allow_none=True)
    explanation = fields.String(allow_none=True)
    themes = fields.List(fields.Dict(), allow_none=True)
    concerns = fields.List(fields.Dict(), allow_none=True)
    purity_flags_details = fields.List(fields.Dict(), allow_none=True)
    positive_themes_identified = fields.List(fields.Dict(), allow_none=True)
    biblical_themes = fields.List(fields.Dict(), allow_none=True)
    supporting_scripture = fields.List(fields.Dict(), allow_none=True)
    problematic_content = fields.Dict(allow_none=True)
    verdict = fields.String(allow_none=True)
    purity_score = fields.Float(allow_none=True)
    formation_risk = fields.String(allow_none=True)
    doctrinal_clarity = fields.String(allow_none=True)
    confidence = fields.Float(allow_none=True)
    needs_review = fields.Boolean(allow_none=True)
    narrative_voice = fields.String(allow_none=True)
    lament_filter_applied = fields.Boolean(allow_none=True)
    framework_data = fields.Dict(allow_none=True)
    error_message = fields.String(allow_none=True)
    model_version = fields.String(allow_none=True)
    from_cache = fields.Boolean()
    job_id = fields.Integer(allow_none=True)
    analyzed_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    result = fields.Nested(AnalysisResultSchema, allow_none=True,
                           metadata={"description": "The full AnalysisResult.to_dict()"})


class LegacyAnalyzeSchema(ma.Schema):
    """Legacy: the outcome of analysing one stored song."""

    success = fields.Boolean()
    message = fields.String()
    song_id = fields.Integer()
    status = fields.String()
    cached = fields.Boolean()
    analysis = fields.Nested(AnalysisRecordSchema)


class SongStatusSchema(ma.Schema):
    """Legacy: a song's latest analysis; which keys appear depends on `status`."""

    success = fields.Boolean()
    song_id = fields.Integer()
    completed = fields.Boolean()
    has_analysis = fields.Boolean()
    failed = fields.Boolean()
    status = fields.String(metadata={"description": "completed, pending, failed or not_started"})
    progress = fields.Float()
    stage = fields.String()
    score = fields.Float(allow_none=True)
    concern_level = fields.String(allow_none=True)
    message = fields.String()
    error = fields.String(allow_none=True)
    result = fields.Nested(AnalysisRecordSchema)
    analysis = fields.Nested(AnalysisRecordSchema)


class LegacySongSchema(ma.Schema):
    """Legacy: a song as the web app names its fields."""

    id = fields.Integer()
    name = fields.String(attribute="title")
    artist = fields.String()
    album = fields.String(allow_none=True)
    lyrics = fields.String()


class SongAnalysisSchema(ma.Schema):
    """Legacy: a song and its latest analysis (null when none)."""

    song = fields.Nested(LegacySongSchema)
    analysis = fields.Nested(AnalysisRecordSchema, allow_none=True)


class JobCountsSchema(ma.Schema):
    """A job's songs by status."""

    completed = fields.Integer()
    failed = fields.Integer()
    pending = fields.Integer()
    in_progress = fields.Integer()


class StatusCountsSchema(JobCountsSchema):
    """Songs by the status of their latest analysis; `not_started` when they have none."""

    not_started = fields.Integer()


class JobStartedSchema(ma.Schema):
    """Legacy: a background batch was stored and handed to the runner."""

    success = fields.Boolean()
    message = fields.String()
    job_id = fields.Integer()
    playlist_id = fields.Integer(allow_none=True)
    total_songs = fields.Integer()
    eligible_songs = fields.Integer()
    queued_count = fields.Integer()
    analysis_type = fields.String()
    status = fields.String()


class ProgressSchema(ma.Schema):
    """Legacy: progress over a playlist's songs or over every song."""

    success = fields.Boolean()
    active = fields.Boolean()
    completed = fields.Boolean()
    progress = fields.Float(metadata={"description": "0-100, one decimal"})
    analyzed_count = fields.Integer(metadata={"description": "Songs whose analysis finished"})
    total_count = fields.Integer()
    message = fields.String()
    playlist_id = fields.Integer()
    detailed_status = fields.Nested(StatusCountsSchema)


class JobSchema(ma.Schema):
    """A background job and its progress."""

    success = fields.Boolean()
    id = fields.Integer()
    job_id = fields.Integer()
    kind = fields.String()
    status = fields.String(metadata={"description": "queued, running, completed or failed"})
    playlist_id = fields.Integer(allow_none=True)
    force = fields.Boolean()
    model_version = fields.String()
    total_songs = fields.Integer()
    eligible_songs = fields.Integer()
    counts = fields.Nested(JobCountsSchema)
    progress = fields.Float()
    completed = fields.Boolean()
    error_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class DiagnosticsSchema(ma.Schema):
    """Legacy: model and system state."""

    success = fields.Boolean()
    diagnostics = fields.Dict()


class AnalyzerStateSchema(ma.Schema):
    """The outcome of loading (warm) or reloading the analyzer."""

    success = fields.Boolean()
    message = fields.String()
    model_version = fields.String(allow_none=True)
    analyzer = fields.Dict(metadata={"description": "The legacy get_analyzer_info() shape"})


class HealthSchema(ma.Schema):
    """Liveness."""

    status = fields.String(metadata={"description": "ok"})


class ReadinessSchema(ma.Schema):
    """Readiness: 200 when the analyzer and the database are ready, else 503 with `error`."""

    status = fields.String(metadata={"description": "ready or not_ready"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "database and analyzer: ok, or what is wrong; model_on_disk: refused "
                       "when a newer checkpoint was refused and the loaded one keeps serving"})
    backend = fields.String()
    model_version = fields.String(allow_none=True)
    runtime = fields.String(metadata={"description": "How the model runs (gptoss: int8, bf16...)"})
    warning = fields.String(metadata={"description": "Ready, but something needs attention"})
    error = fields.Dict(metadata={"description": "When not ready: {code, message, details}"})
