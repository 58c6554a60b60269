"""Songs and playlists: registration, lookup and listing.

Takes a SQLAlchemy session; never imports Flask. Input has been validated by the schemas; what
only the database can check (that song ids exist) is checked here, before anything is stored.
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.models import Playlist, PlaylistSong, Song
from app.services.analysis import lyrics_hash
from app.services.errors import NotFound, get_or_404


class CatalogService:
    """Stores and finds songs and playlists."""

    def __init__(self, session: Session):
        self.session = session

    # -- songs -----------------------------------------------------------------------------------

    def create_song(self, title: str, artist: str, lyrics: str, album: str | None = None) -> Song:
        """Store one song (its lyrics hash computed here) and return it with its id."""
        song = _new_song(title, artist, lyrics, album)
        self.session.add(song)
        self.session.commit()
        return song

    def get_song(self, song_id: int) -> Song:
        """The song, or NotFound naming the id."""
        return get_or_404(self.session, Song, song_id, "song")

    def list_songs(self, page: int, per_page: int) -> tuple[list[Song], int]:
        """One page of songs by id, and the total count."""
        return self._page(select(Song).order_by(Song.id), Song, page, per_page)

    # -- playlists -------------------------------------------------------------------------------

    def create_playlist(
        self,
        name: str,
        description: str | None = None,
        songs: list[dict] | None = None,
        song_ids: list[int] | None = None,
    ) -> Playlist:
        """Store a playlist of stored songs (`song_ids`) then new ones (`songs`), in that order.

        Unknown song ids are refused (NotFound naming them) before anything is stored; an id
        listed twice is kept once, at its first position.
        """
        playlist = Playlist(name=name, description=description)
        members = list(dict.fromkeys(song_ids or []))
        if members:
            known = set(self.session.scalars(select(Song.id).where(Song.id.in_(members))))
            missing = [song_id for song_id in members if song_id not in known]
            if missing:
                raise NotFound(f"songs not found: {missing}", {"song_ids": missing})
        entries = [PlaylistSong(song_id=song_id) for song_id in members]
        entries += [PlaylistSong(song=_new_song(**song)) for song in songs or []]
        for position, entry in enumerate(entries):
            entry.position = position
            playlist.entries.append(entry)
        self.session.add(playlist)
        self.session.commit()
        return playlist

    def get_playlist(self, playlist_id: int) -> Playlist:
        """The playlist with its songs, or NotFound naming the id."""
        return get_or_404(
            self.session, Playlist, playlist_id, "playlist",
            options=[selectinload(Playlist.entries).selectinload(PlaylistSong.song)],
        )

    def list_playlists(self, page: int, per_page: int) -> tuple[list[Playlist], int]:
        """One page of playlists by id (songs loaded), and the total count."""
        query = (
            select(Playlist)
            .options(selectinload(Playlist.entries).selectinload(PlaylistSong.song))
            .order_by(Playlist.id)
        )
        return self._page(query, Playlist, page, per_page)

    def _page(self, query, model, page: int, per_page: int) -> tuple[list, int]:
        total = self.session.scalar(select(func.count()).select_from(model))
        rows = self.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
        return list(rows), total


def _new_song(title: str, artist: str, lyrics: str, album: str | None = None) -> Song:
    return Song(title=title, artist=artist, album=album, lyrics=lyrics,
                lyrics_hash=lyrics_hash(lyrics))
