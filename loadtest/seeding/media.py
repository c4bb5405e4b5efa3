"""Real media for seeded posts and stories: a small pool processed once, linked under every key.

The pool is POOL_SIZE synthetic photos (drawn here, deterministic), each run through the project's own
pipeline (`app.media.processing.process_image`, in a thread so the loop never waits on Pillow) with
one of the catalogue's filters, and stored with the media store's own `put` under
`seed/pool/<digest>/<variant>.jpg` (the digest is of the processed original, so other bytes never reuse
a key), described by a manifest in the store: later runs read the pool back instead of processing it.
Every post and story then gets keys of its own, in the API's layout
(`p/<post id>/<variant>-<digest>.jpg`, `s/<story id>/...`), holding the same bytes:

- local store: hard links to the pool files (no copies, no extra disk; the store serves them like any
  file: they are regular files, not symlinks). Links are not fsynced one by one: seed data is rebuilt by
  running the seeder again, and the pool files themselves went through the store's durable `put`;
- any other store (S3): the store's `put` of the pool bytes under each key.

A key that already exists is left alone, so a re-run links nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import PIL
from PIL import Image, ImageDraw, ImageFilter

from app.media.processing import VARIANT_SPECS, process_image
from app.media.store import LocalMediaStore, MediaStore, media_type_for, validate_key
from app.settings import Settings
from loadtest.seeding.model import POOL_SIZE

VARIANTS = tuple(spec.name for spec in VARIANT_SPECS)
SHAPES = ((1200, 1500), (1500, 1000), (1200, 1200))  # portrait 4:5, landscape 3:2, square
FILTER_CYCLE = (None, "clarendon", "juno", "lark", "gingham", "nashville", "xpro2", "inkwell")
LINKS_PER_TASK = 2_000
POOL_VERSION = 1  # bump when synthetic_photo, SHAPES or FILTER_CYCLE change
LINK_THREADS = 2


@dataclass(frozen=True)
class PoolImage:
    digest: str
    filter: str | None
    variants: dict[str, tuple[str, int, int]]  # variant -> (pool key, width, height)
    preview: str
    data: dict[str, bytes]

    def keys_for(self, prefix: str, object_id: int) -> dict[str, tuple[str, int, int]]:
        """The media map of a post (`p`) or story (`s`) showing this image: keys of its own, the pool's sizes."""
        return {name: (f"{prefix}/{object_id}/{name}-{self.digest}.jpg", width, height)
                for name, (_, width, height) in self.variants.items()}


def synthetic_photo(index: int) -> bytes:
    """A photo-like JPEG (sky gradient, sun, hills, texture): the same bytes for the same index."""
    rng = random.Random(f"photos-seed-pool:{index}")
    width, height = SHAPES[index % len(SHAPES)]
    top = tuple(rng.randrange(40, 200) for _ in range(3))
    bottom = tuple(rng.randrange(120, 255) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top),
                            gradient)
    draw = ImageDraw.Draw(image)
    sun_x, sun_y, radius = rng.randrange(width), rng.randrange(height // 2), rng.randrange(60, 180)
    draw.ellipse((sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius),
                 fill=(255, rng.randrange(150, 240), rng.randrange(40, 140)))
    for layer in range(3):
        base = height * (5 + layer) // 9
        points = [(0, height)] + [(x, base + rng.randrange(-80, 80)) for x in range(0, width + 150, 150)]
        points.append((width, height))
        shade = 30 + 40 * layer
        draw.polygon(points, fill=(shade // 2, shade + rng.randrange(40), shade // 3))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    image = Image.blend(image, noise, 0.08).filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _processed(index: int, max_pixels: int) -> PoolImage:
    filter_name = FILTER_CYCLE[index % len(FILTER_CYCLE)]
    processed = process_image(synthetic_photo(index), filter_name, max_pixels)
    digest = hashlib.sha256(processed.variants["original"].data).hexdigest()[:12]
    variants = {name: (f"seed/pool/{digest}/{name}.jpg", v.width, v.height) for name, v in processed.variants.items()}
    return PoolImage(digest, filter_name, variants, processed.preview,
                     {name: v.data for name, v in processed.variants.items()})


def manifest_key() -> str:
    """Where the processed pool is described, once per pool layout and Pillow version (other bytes, other key)."""
    return f"seed/pool/manifest-v{POOL_VERSION}-pillow{PIL.__version__}.json".lower()


async def make_pool(store: MediaStore, settings: Settings) -> tuple[list[PoolImage], bool]:
    """The pool, and whether it was processed now (False: read back from the store, processed by an earlier run)."""
    cached = await store.get(manifest_key())
    if cached is not None:
        pool = [PoolImage(e["digest"], e["filter"], {k: tuple(v) for k, v in e["variants"].items()}, e["preview"], {})
                for e in orjson.loads(cached)]
        for image in pool:
            for name, (key, _, _) in image.variants.items():
                data = await store.get(key)
                if data is None:
                    break
                image.data[name] = data
        if all(len(image.data) == len(image.variants) for image in pool):
            return pool, False
    pool = await asyncio.gather(
        *(asyncio.to_thread(_processed, i, settings.max_image_pixels) for i in range(POOL_SIZE)))
    for image in pool:
        for name, (key, _, _) in image.variants.items():
            await store.put(key, image.data[name], "image/jpeg")
    manifest = [{"digest": i.digest, "filter": i.filter, "variants": i.variants, "preview": i.preview} for i in pool]
    await store.put(manifest_key(), orjson.dumps(manifest), media_type_for(manifest_key()))
    return list(pool), True


class MediaLinker:
    """Puts pool bytes under new keys: hard links in a local store, the store's `put` otherwise."""

    def __init__(self, store: MediaStore, settings: Settings) -> None:
        self._store = store
        self._root = Path(settings.media_dir).resolve() if isinstance(store, LocalMediaStore) else None
        self._threads = ThreadPoolExecutor(max_workers=LINK_THREADS, thread_name_prefix="seed-media")
        self.linked = 0

    async def link(self, pairs: Iterable[tuple[str, str, bytes]], on_done=None) -> None:
        """(pool key, new key, bytes) for each new key."""
        batch: list[tuple[str, str, bytes]] = []
        running: set[asyncio.Future] = set()
        loop = asyncio.get_running_loop()
        for pair in pairs:
            batch.append(pair)
            if len(batch) >= LINKS_PER_TASK:
                running.add(asyncio.ensure_future(self._link_batch(loop, batch, on_done)))
                batch = []
                if len(running) >= 2 * LINK_THREADS:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for future in done:
                        future.result()
        if batch:
            running.add(asyncio.ensure_future(self._link_batch(loop, batch, on_done)))
        for future in asyncio.as_completed(running):
            await future

    async def _link_batch(self, loop, batch: Sequence[tuple[str, str, bytes]], on_done) -> None:
        if self._root is not None:
            made = await loop.run_in_executor(self._threads, _link_all, self._root, [(s, d) for s, d, _ in batch])
        else:
            made = 0
            for _, key, data in batch:
                if not await self._store.exists(key):
                    await self._store.put(key, data, "image/jpeg")
                    made += 1
        self.linked += made
        if on_done is not None:
            on_done(len(batch))

    def close(self) -> None:
        self._threads.shutdown(wait=False)


def _link_all(root: Path, pairs: Sequence[tuple[str, str]]) -> int:
    """Hard-link each pool file to its new key below `root` (blocking: runs in the linker's threads)."""
    base = f"{root}/"
    made = 0
    made_dirs: set[str] = set()
    for source, target in pairs:
        directory = target.rpartition("/")[0]
        if directory not in made_dirs:
            try:
                os.mkdir(base + validate_key(directory))
            except FileExistsError:
                pass
            except FileNotFoundError:  # the first key under a new prefix
                os.makedirs(base + directory, exist_ok=True)
            made_dirs.add(directory)
        try:
            os.link(base + source, base + validate_key(target))
            made += 1
        except FileExistsError:
            pass
    return made
