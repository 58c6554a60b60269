"""Run inside the stand-in web app's folder (cwd) beside an installed Selah: store songs and a
playlist, call the web app's own routes, and print one JSON report of what they stored and what
Selah says of the same songs directly."""

import importlib.util
import json

from app import create_app, db
from app.models import Playlist, PlaylistSong, Song
from app.utils.analysis import huggingface_analyzer

# Songs written for this test: worship, a song the web app's regex flags, a love song, and an
# instrumental with no lyrics.
SONGS = {
    1: ("Morning Offering", "Test Choir", "Holy holy holy Lord God almighty\n"
        "Early in the morning our song shall rise to Thee\nMerciful and mighty"),
    2: ("Damn the Night", "Test Band", "Damn the night that took you from me\n"
        "I walked through hell to find the door\nI'm tired and I can't pretend anymore"),
    3: ("Porch Light", "Test Duo", "I left the porch light on for you\n"
        "Coffee on the stove the whole night through\nYou are the home I come back to"),
    4: ("Prelude in G (Instrumental)", "Test Organ", ""),
}


def main() -> None:
    app = create_app()
    client = app.test_client()
    with app.app_context():
        for song_id, (title, artist, lyrics) in SONGS.items():
            db.session.add(Song(id=song_id, title=title, artist=artist, lyrics=lyrics))
        db.session.add(Playlist(id=1, name="Sunday"))
        db.session.flush()
        for position, song_id in enumerate((2, 3, 4)):
            db.session.add(PlaylistSong(playlist_id=1, song_id=song_id, track_position=position))
        db.session.commit()
    report = {
        "app_file": importlib.import_module("app").__file__,
        "selah_file": importlib.import_module("selah").__file__,
        "training_importable": importlib.util.find_spec("training") is not None,
        "analyzer_class": huggingface_analyzer.HuggingFaceAnalyzer.__module__,
        "diagnostics_before": client.get("/api/admin/diagnostics").get_json(),
        "warm": client.post("/api/admin/warm").get_json(),
        "song": client.post("/api/songs/1/analyze").get_json(),
        "playlist": client.post("/api/playlists/1/analyze").get_json(),
    }
    report["analyses"] = {
        song_id: client.get(f"/api/song/{song_id}/analysis").get_json()["analysis"]
        for song_id in SONGS
    }
    from selah.compat import GPTOSSChristianAnalyzer, HuggingFaceAnalyzer

    # The legacy singleton call with no config: settings from the environment, not `app.config`
    # (which here is the web app's), and the same model the helpers loaded.
    report["gptoss_get_instance"] = GPTOSSChristianAnalyzer.get_instance().model_version

    direct = HuggingFaceAnalyzer().analyze_songs_batch(
        [{"title": t, "artist": a, "lyrics": lyr} for t, a, lyr in SONGS.values()])
    report["direct"] = {
        song_id: {"score": r.get_final_score(),
                  "framework": r.model_analysis.get("framework") or {},
                  "supporting_scripture": r.biblical_analysis["supporting_scripture"],
                  "concerns": r.content_analysis["concern_flags"]}
        for song_id, r in zip(SONGS, direct)
    }
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
