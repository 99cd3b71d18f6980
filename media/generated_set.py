"""A seeded, labelled audio/image set built from real recordings and scores nobody here made.

Sources (Debian and PyPI packages, never committed; everything generated goes to the cache):

- ``wesnoth-music`` (GPL-2+): Battle for Wesnoth's soundtrack, Ogg Vorbis recordings. An excerpt of
  each chosen track is a "studio" recording.
- ``music21``'s corpus (BSD-3 software; Bach chorales, public-domain works in encodings licensed for
  use): the opening bars of a chorale rendered by ``fluidsynth`` with ``fluid-soundfont-gm``
  (MIT) on piano is a studio recording of that work; other instruments, tempi and keys are its
  versions; a slower rendering with rubato, uneven dynamics, reverb with crowd noise and the same title is its
  "live" take.
- ``wesnoth-1.16-data`` (GPL-2+ artwork): story and portrait images as cover art.

Items (roles): ``studio``; ``duplicate`` (the studio audio re-encoded to mp3/ogg/flac, gain,
trimmed, noise, band-limited; its cover cropped, resized, overlaid, re-encoded); ``version``;
``live`` (identical title and artist to the studio take); ``video`` (the studio audio under frames
of its cover in an mp4, titled "Artist - Title (Official Video)" or only "Official Video"; its
image is the video's own key frame).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

WESNOTH_MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
WESNOTH_IMAGES = Path("/usr/share/games/wesnoth/1.16/data/core/images")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RENDER_RATE = 22050
EXCERPT_S = 20.0
CHORALE_MEASURES = 7
SIZES = {
    # studio recordings from Wesnoth, chorales, duplicates per studio take, versions per chorale
    "tiny": (2, 3, 3, 2),
    "small": (4, 6, 3, 2),
    "large": (12, 24, 5, 3),
}
AUDIO_DUPLICATES = ("mp3", "gain", "trim", "noise", "bandlimit")
IMAGE_DUPLICATES = ("crop", "resize", "overlay", "reencode", "crop+overlay")
# GM programs for versions: strings, church organ, flute, choir, nylon guitar, brass section.
VERSION_PROGRAMS = {"strings": 48, "organ": 19, "flute": 73, "choir": 52, "guitar": 24, "brass": 61}
TEMPO_FACTORS = (0.8, 0.88, 1.12, 1.25)
# What a set is for. "eval" is the set every figure is measured on (any seed: the sources it
# picks are the seed's, as before). "fit" and "tune" sets train the matcher's media features;
# "valid" sets are held out from training for the promotion gate to judge media pairs on. None of
# the three uses a source (Wesnoth track, chorale, cover image) of the evaluation sets
# (``EVAL_SEED`` at the sizes in ``EVAL_SIZES``), and a source belongs to one of them by a hash of
# its name, so they share none either, whatever their seeds.
SPLITS = ("eval", "fit", "tune", "valid")
EVAL_SEED = 12
EVAL_SIZES = ("tiny", "small")
# The held-out media set the promotion gate judges a media-trained matcher on by default.
VALID_SEED = 15
VALID_SIZE = "small"


def track_name(track: Path) -> str:
    return f"wesnoth-{track.stem.replace('_', '-')}"


def chorale_name(path: str) -> str:
    return f"chorale-{Path(path).stem.replace('bwv', '').replace('.', '-')}"


def image_name(source: Path) -> str:
    return f"img-{source.stem}"


def source_split(name: str) -> str:
    """The split ("fit", "tune" or "valid") a source not used by the evaluation sets belongs to.
    A quarter of the sources, by the second byte of the name's SHA-1, are held out as "valid"; the
    first byte splits the rest as it did before the valid split existed, so a fit or tune set only
    loses sources and gains none."""
    digest = hashlib.sha1(name.encode()).digest()
    if digest[1] % 4 == 0:
        return "valid"
    return ("fit", "tune")[digest[0] % 2]


def set_sources(items: Sequence[MediaItem]) -> frozenset[str]:
    """The sources a set's items were made from (studio and version names, cover image ids)."""
    names = {i.content_id for i in items if i.role == "studio"} | {i.image_id for i in items}
    return frozenset(names)


@dataclass(frozen=True)
class MediaItem:
    """One catalogue item of the set, as an event would carry it, with its labels."""

    content_id: str
    kind: str
    title: str
    artists: tuple[str, ...]
    duration_ms: int
    audio_ref: str
    image_ref: str
    role: str  # studio | duplicate | version | live | video
    recording_id: str  # same value = the same recording
    work_id: str  # same value = the same composition
    image_id: str  # same value = the same picture (transformed or not)
    transform: str = ""
    source: str = "media-set"

    def event(self, produced_at_ms: int = 0) -> dict[str, object]:
        return {
            "event_id": f"ev-{self.content_id}",
            "content_id": self.content_id,
            "source": self.source,
            "kind": self.kind,
            "title": self.title,
            "artists": list(self.artists),
            "release": None,
            "duration_ms": self.duration_ms,
            "isrc": None,
            "year": None,
            "language": None,
            "audio_ref": self.audio_ref,
            "image_ref": self.image_ref,
            "extra": {},
            "produced_at_ms": produced_at_ms,
        }


@dataclass
class MediaSet:
    folder: Path
    items: list[MediaItem] = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def load(cls, folder: Path) -> MediaSet:
        rows = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines() if line]
        items = [MediaItem(**{**r, "artists": tuple(r["artists"])}) for r in rows]
        manifest = json.loads((folder / "manifest.json").read_text())
        return cls(folder, items, float(manifest.get("seconds", 0.0)))


def missing_tools() -> list[str]:
    """What a machine lacks to build the set (Debian: ffmpeg fluidsynth fluid-soundfont-gm
    libchromaprint-tools wesnoth-music; PyPI: music21)."""
    missing = [t for t in ("ffmpeg", "ffprobe", "fluidsynth", "fpcalc") if shutil.which(t) is None]
    if not SOUNDFONT.exists():
        missing.append(f"fluid-soundfont-gm ({SOUNDFONT})")
    if not WESNOTH_MUSIC.is_dir():
        missing.append(f"wesnoth-music ({WESNOTH_MUSIC})")
    try:
        import music21  # noqa: F401
    except ImportError:
        missing.append("music21 (PyPI)")
    return missing


def _run(args: Sequence[str], timeout_s: float = 120.0) -> None:
    done = subprocess.run(list(args), capture_output=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {' | '.join(tail)}")


def _ffmpeg(*args: str) -> None:
    _run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args])


def _duration_s(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return float(out.stdout.decode().strip() or 0.0)


def _titled(stem: str) -> str:
    return " ".join(w.capitalize() for w in stem.replace("-", " ").replace("_", " ").split())


class MediaSetBuilder:
    def __init__(
        self, folder: Path, seed: int, size: str, split: str = "eval", excluded: frozenset[str] = frozenset()
    ) -> None:
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, not {size!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.folder = folder
        self.rng = random.Random(seed)
        self.seed = seed
        self.size = size
        self.split = split
        self.excluded = excluded
        self.items: list[MediaItem] = []
        self._images: list[Path] = [
            p
            for p in sorted(
                [*(WESNOTH_IMAGES / "story").glob("*.jpg"), *(WESNOTH_IMAGES / "portraits" / "humans").glob("*.png")]
            )
            if self._usable(image_name(p))
        ]
        self.rng.shuffle(self._images)
        self._next_image = 0

    # ---- sources ----------------------------------------------------------------------------

    def _usable(self, name: str) -> bool:
        """Every source for an evaluation set; for fit / tune / valid, only that split's own sources."""
        return self.split == "eval" or (name not in self.excluded and source_split(name) == self.split)

    def _cover(self, name: str) -> tuple[Path, str]:
        if not self._images or (self.split == "eval" and self._next_image >= len(self._images)):
            raise RuntimeError(f"only {len(self._images)} source images in {WESNOTH_IMAGES}")
        # A training split has fewer pictures than it needs (81 in all, the evaluation sets take
        # theirs first): it deals them again, as an album gives one cover to several recordings.
        source = self._images[self._next_image % len(self._images)]
        self._next_image += 1
        out = self.folder / "images" / f"{name}.jpg"
        _ffmpeg("-i", str(source), "-vf", "scale=480:480:flags=bicubic", "-q:v", "3", str(out))
        return out, f"img-{source.stem}"

    def _wesnoth_tracks(self, count: int) -> list[Path]:
        tracks = sorted(p for p in WESNOTH_MUSIC.glob("*.ogg") if "-old" not in p.stem and self._usable(track_name(p)))
        self.rng.shuffle(tracks)
        chosen = []
        for track in tracks:
            if _duration_s(track) >= EXCERPT_S + 40:
                chosen.append(track)
            if len(chosen) == count:
                break
        return chosen

    def _render(self, score_path: str, out: Path, program: int, semitones: int, tempo: float, live: bool) -> None:
        from music21 import corpus, instrument, volume
        from music21 import tempo as m21tempo

        score = corpus.parse(score_path).measures(0, CHORALE_MEASURES)
        if semitones:
            score = score.transpose(semitones)
        for part in score.parts:
            for old in list(part.recurse().getElementsByClass((instrument.Instrument, m21tempo.MetronomeMark))):
                old.activeSite.remove(old)
            chosen = instrument.Instrument()
            chosen.midiProgram = program
            part.insert(0, chosen)
            if live:  # a human performance: rubato (a tempo per bar) and uneven dynamics
                for bar in part.getElementsByClass("Measure"):
                    bar.insert(0, m21tempo.MetronomeMark(number=84 * tempo * self.rng.uniform(0.85, 1.05)))
                for n in part.recurse().notes:
                    n.volume = volume.Volume(velocity=self.rng.randint(55, 110))
            else:
                part.insert(0, m21tempo.MetronomeMark(number=84 * tempo))
        midi = out.with_suffix(".mid")
        score.write("midi", fp=str(midi))
        raw = out.with_suffix(".raw.wav")
        _run(
            ["fluidsynth", "-ni", "-q", "-F", str(raw), "-r", str(RENDER_RATE), "-g", "0.7", str(SOUNDFONT), str(midi)]
        )
        filters = "aformat=channel_layouts=mono,silenceremove=start_periods=1:start_threshold=-50dB,atrim=0:30"
        if live:
            filters += ",aecho=0.8:0.6:70|140:0.3|0.2"
            seed = self.rng.randint(0, 2**31 - 1)
            _ffmpeg(
                "-i",
                str(raw),
                "-filter_complex",
                f"[0:a]{filters}[m];anoisesrc=color=pink:amplitude=0.04:seed={seed}:sample_rate={RENDER_RATE}[n];"
                "[m][n]amix=inputs=2:duration=first:normalize=0",
                "-ac",
                "1",
                str(out),
            )
        else:
            _ffmpeg("-i", str(raw), "-af", filters, "-ac", "1", str(out))
        midi.unlink()
        raw.unlink()

    # ---- transformations --------------------------------------------------------------------

    def _audio_duplicate(self, master: Path, transform: str, name: str) -> Path:
        audio = self.folder / "audio"
        if transform == "mp3":
            out = audio / f"{name}.mp3"
            _ffmpeg("-i", str(master), "-c:a", "libmp3lame", "-b:a", "96k", str(out))
        elif transform == "gain":
            out = audio / f"{name}.flac"
            _ffmpeg("-i", str(master), "-af", f"volume={self.rng.choice((-9, -6, 4))}dB", str(out))
        elif transform == "trim":
            out = audio / f"{name}.ogg"
            start = self.rng.uniform(1.5, 4.0)
            length = _duration_s(master) - start - self.rng.uniform(1.0, 3.0)
            _ffmpeg("-ss", f"{start:.2f}", "-t", f"{length:.2f}", "-i", str(master), "-c:a", "libvorbis", str(out))
        elif transform == "noise":
            out = audio / f"{name}.wav"
            seed = self.rng.randint(0, 2**31 - 1)
            _ffmpeg(
                "-i",
                str(master),
                "-filter_complex",
                f"anoisesrc=color=white:amplitude=0.03:seed={seed}:sample_rate={RENDER_RATE}[n];"
                "[0:a][n]amix=inputs=2:duration=first:normalize=0",
                str(out),
            )
        elif transform == "bandlimit":
            out = audio / f"{name}.mp3"
            _ffmpeg("-i", str(master), "-af", "highpass=f=200,lowpass=f=4000", "-ar", "11025", "-b:a", "48k", str(out))
        else:
            raise ValueError(transform)
        return out

    def _image_duplicate(self, cover: Path, transform: str, name: str) -> Path:
        out = self.folder / "images" / f"{name}.jpg"
        steps = {
            "crop": "crop=iw*0.88:ih*0.88:iw*0.06:ih*0.04",
            "resize": "scale=180:180:flags=bilinear",
            "overlay": "drawbox=x=0:y=ih*0.78:w=iw:h=ih*0.16:color=black@0.7:t=fill,"
            "drawbox=x=iw*0.05:y=iw*0.05:w=iw*0.12:h=iw*0.12:color=red@0.8:t=fill",
            "reencode": "null",
        }
        chain = ",".join(steps[t] for t in transform.split("+"))
        quality = "28" if "reencode" in transform else "5"
        _ffmpeg("-i", str(cover), "-vf", chain, "-q:v", quality, str(out))
        return out

    def _video(self, master: Path, cover: Path, name: str) -> Path:
        out = self.folder / "video" / f"{name}.mp4"
        _ffmpeg(
            "-loop",
            "1",
            "-framerate",
            "2",
            "-i",
            str(cover),
            "-i",
            str(master),
            "-vf",
            "scale=640:360,drawbox=x=iw-90:y=ih-50:w=80:h=40:color=white@0.8:t=fill,format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "stillimage",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            str(out),
        )
        return out

    # ---- the set ----------------------------------------------------------------------------

    def _add(self, **fields: object) -> MediaItem:
        item = MediaItem(**fields)  # type: ignore[arg-type]
        self.items.append(item)
        return item

    def _studio_family(
        self, name: str, title: str, artist: str, master: Path, work_id: str, n_dup: int
    ) -> tuple[Path, str]:
        """The studio take, its duplicates and its video; returns the studio cover and its id."""
        cover, image_id = self._cover(name)
        rec = f"rec-{name}"
        ms = int(_duration_s(master) * 1000)
        self._add(
            content_id=name, kind="recording", title=title, artists=(artist,), duration_ms=ms,
            audio_ref=str(master), image_ref=str(cover), role="studio", recording_id=rec, work_id=work_id,
            image_id=image_id,
        )  # fmt: skip
        audio_kinds = self.rng.sample(AUDIO_DUPLICATES, n_dup)
        image_kinds = self.rng.sample(IMAGE_DUPLICATES, n_dup)
        stores = ("store-a", "store-b", "label-feed", "store-c", "aggregator")
        for k, (a_kind, i_kind) in enumerate(zip(audio_kinds, image_kinds, strict=True)):
            dup = f"{name}-dup{k}"
            audio = self._audio_duplicate(master, a_kind, dup)
            image = self._image_duplicate(cover, i_kind, dup)
            self._add(
                content_id=dup, kind="recording", title=title, artists=(artist,),
                duration_ms=int(_duration_s(audio) * 1000), audio_ref=str(audio), image_ref=str(image),
                role="duplicate", recording_id=rec, work_id=work_id, image_id=image_id,
                transform=f"{a_kind}/{i_kind}", source=stores[k % len(stores)],
            )  # fmt: skip
        video = self._video(master, cover, f"{name}-video")
        titled = f"{artist} - {title} (Official Video)" if self.rng.random() < 0.5 else "Official Video"
        self._add(
            content_id=f"{name}-video", kind="music_video", title=titled, artists=(f"{artist}VEVO",),
            duration_ms=int(_duration_s(video) * 1000), audio_ref=str(video), image_ref=str(video), role="video",
            recording_id=rec, work_id=work_id, image_id=image_id, transform="mp4 h264/aac, 640x360 frames + logo",
            source="video-platform",
        )  # fmt: skip
        return cover, image_id

    def _live_cover(self, name: str, index: int, studio_cover: Path, studio_image_id: str) -> tuple[Path, str]:
        """A live take's picture. In an evaluation set, a cover of its own. In a training split,
        every other live take (by chorale index) shows its studio take's cover, resized: a live
        upload or a compilation often reuses the album art. Without it, every same-titled pair with
        one picture was the same recording and every other picture another one, so the matcher
        learnt the picture as the recording and overrode the audio with it (docs/media.md)."""
        if self.split == "eval" or index % 2:
            return self._cover(name)
        return self._image_duplicate(studio_cover, "resize", name), studio_image_id

    def build(self, progress: Callable[[str], None] = lambda _m: None) -> MediaSet:
        started = time.monotonic()
        for sub in ("audio", "images", "video"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        n_wesnoth, n_chorales, n_dup, n_versions = SIZES[self.size]
        for track in self._wesnoth_tracks(n_wesnoth):
            name = track_name(track)
            progress(name)
            master = self.folder / "audio" / f"{name}.wav"
            start = self.rng.uniform(10.0, _duration_s(track) - EXCERPT_S - 10.0)
            _ffmpeg("-ss", f"{start:.2f}", "-t", f"{EXCERPT_S}", "-i", str(track), "-ac", "1", "-ar",
                    str(RENDER_RATE), str(master))  # fmt: skip
            self._studio_family(name, _titled(track.stem), "Wesnoth Orchestra", master, f"work-{name}", n_dup)

        from music21 import corpus

        chorales = sorted(
            str(p)
            for p in corpus.getComposer("bach")
            if p.suffix in (".mxl", ".xml") and self._usable(chorale_name(str(p)))
        )
        self.rng.shuffle(chorales)
        for index, path in enumerate(chorales[:n_chorales]):
            stem = Path(path).stem.replace("bwv", "")
            name = chorale_name(path)
            progress(name)
            title, artist, work = f"Chorale BWV {stem}", "J. S. Bach Ensemble", f"work-{name}"
            master = self.folder / "audio" / f"{name}.wav"
            self._render(path, master, program=0, semitones=0, tempo=1.0, live=False)
            studio_cover, studio_image_id = self._studio_family(name, title, artist, master, work, n_dup)
            for v, label in enumerate(self.rng.sample(sorted(VERSION_PROGRAMS), n_versions)):
                semitones = self.rng.choice((-5, -3, -2, 2, 3, 4))
                tempo = self.rng.choice(TEMPO_FACTORS)
                out = self.folder / "audio" / f"{name}-v{v}.wav"
                self._render(path, out, VERSION_PROGRAMS[label], semitones, tempo, live=False)
                cover, image_id = self._cover(f"{name}-v{v}")
                self._add(
                    content_id=f"{name}-v{v}", kind="recording", title=title,
                    artists=(f"{label.capitalize()} Consort",), duration_ms=int(_duration_s(out) * 1000),
                    audio_ref=str(out), image_ref=str(cover), role="version", recording_id=f"rec-{name}-v{v}",
                    work_id=work, image_id=image_id, transform=f"{label}, {semitones:+d} st, tempo x{tempo}",
                )  # fmt: skip
            live = self.folder / "audio" / f"{name}-live.wav"
            tempo = self.rng.uniform(0.9, 0.96)
            self._render(path, live, 0, 0, tempo, live=True)
            cover, image_id = self._live_cover(f"{name}-live", index, studio_cover, studio_image_id)
            self._add(
                content_id=f"{name}-live", kind="recording", title=title, artists=(artist,),
                duration_ms=int(_duration_s(live) * 1000), audio_ref=str(live), image_ref=str(cover), role="live",
                recording_id=f"rec-{name}-live", work_id=work, image_id=image_id,
                transform=f"piano, tempo x{tempo:.2f} with rubato per bar, humanised velocities, reverb, crowd noise",
            )  # fmt: skip
        seconds = time.monotonic() - started
        self._write(seconds)
        return MediaSet(self.folder, list(self.items), seconds)

    def _write(self, seconds: float) -> None:
        with (self.folder / "items.jsonl").open("w") as f:
            for item in self.items:
                f.write(json.dumps(asdict(item)) + "\n")
        # The shared dataset layout too, so the text-only resolver can be evaluated on the set.
        with (self.folder / "records.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["record_id", "source", "kind", "title", "artist", "release", "duration", "year", "language",
                        "isrc", "extra"])  # fmt: skip
            for i in self.items:
                extra = json.dumps({"audio_ref": i.audio_ref, "image_ref": i.image_ref})
                w.writerow([i.content_id, i.source, i.kind, i.title, "; ".join(i.artists), "",
                            round(i.duration_ms / 1000), "", "", "", extra])  # fmt: skip
        with (self.folder / "truth.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["record_id", "entity_id", "work_id"])
            for i in self.items:
                # A music video is its own entity, ``video_of`` the recording it carries.
                entity = f"{i.recording_id}-video" if i.role == "video" else i.recording_id
                w.writerow([i.content_id, entity, i.work_id])
        manifest = {
            "seed": self.seed,
            "size": self.size,
            "split": self.split,
            "sources_used": sorted(set_sources(self.items)),
            "sources_excluded": sorted(self.excluded),
            "items": len(self.items),
            "roles": {r: sum(i.role == r for i in self.items) for r in sorted({i.role for i in self.items})},
            "seconds": round(seconds, 1),
            "sources": {
                "wesnoth-music": "Debian package, GPL-2+ (Battle for Wesnoth soundtrack)",
                "wesnoth-1.16-data": "Debian package, GPL-2+ (story and portrait artwork)",
                "music21 corpus": "PyPI music21 (BSD-3); Bach chorales, public-domain works, encodings licensed "
                "for use (music21/corpus/license.txt)",
                "fluid-soundfont-gm": "Debian package, MIT (FluidR3_GM.sf2)",
            },
        }
        (self.folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def default_folder(seed: int, size: str, split: str = "eval") -> Path:
    from settings import REPO_ROOT

    name = f"set-{size}-{seed}" if split == "eval" else f"set-{split}-{size}-{seed}"
    return REPO_ROOT / ".cache" / "media" / name


def evaluation_sources() -> frozenset[str]:
    """The sources of the evaluation sets (seed ``EVAL_SEED``, sizes ``EVAL_SIZES``), built first
    where missing: a training set must share none of them."""
    names: set[str] = set()
    for size in EVAL_SIZES:
        names |= set_sources(generate(EVAL_SEED, size).items)
    return frozenset(names)


def generate(
    seed: int = 12, size: str = "small", folder: Path | None = None, fresh: bool = False, split: str = "eval"
) -> MediaSet:
    """The set for (seed, size, split), built once and reused from the cache folder."""
    folder = folder or default_folder(seed, size, split)
    if not fresh and (folder / "manifest.json").exists():
        return MediaSet.load(folder)
    missing = missing_tools()
    if missing:
        raise RuntimeError("cannot build the media set, missing: " + ", ".join(missing))
    excluded = evaluation_sources() if split != "eval" else frozenset()
    if folder.exists():
        shutil.rmtree(folder)
    return MediaSetBuilder(folder, seed, size, split, excluded).build()
