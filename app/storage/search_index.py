"""The search index in Redis: derived data, rebuilt from Cassandra by `photos-search-rebuild`.

Keys (namespaced by keyspace, like every other feature's Redis keys):

- `{ns}:search:{kind}:p:{prefix}` -> sorted set, every member scored 0 and reading `<rank>:<name>`
  (app/search/query.py), one set per prefix of every name, so a query is one `ZRANGE ... BYLEX`.
- `{ns}:search:{kind}:doc` -> hash name -> `stamp \\t live \\t member \\t payload`: the member a name is
  listed as now (to remove it when the popularity changes), the time its popularity was read, and
  what a result shows beside the name (a user's id and display name).
- `{ns}:search:ready` -> set once a full rebuild finished; the stream workers rebuild while it is missing.

Writes are absolute and stamped with the time their popularity was read: a write older than the
stored one changes nothing, so replays, redeliveries and a rebuild racing the agents all converge.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from app.search.query import RANK_WIDTH, Kind, Match, Page, cut_page, member, parse_member, prefixes

# KEYS: the doc hash, then every prefix set of the name. ARGV: name, member, stamp, live (1/0), payload.
_UPSERT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local stamp, live, member = string.match(old, '^(%d+)\\t(%d)\\t([^\\t]*)\\t')
  if tonumber(stamp) > tonumber(ARGV[3]) then return 0 end
  if live == '1' and (ARGV[4] ~= '1' or member ~= ARGV[2]) then
    for i = 2, #KEYS do redis.call('ZREM', KEYS[i], member) end
  end
end
if ARGV[4] == '1' then
  for i = 2, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[2]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '\\t' .. ARGV[4] .. '\\t' .. ARGV[2] .. '\\t' .. ARGV[5])
return 1
"""

# KEYS: the query's prefix set, the doc hash. ARGV: where to start (`-` or `(member`), how many, the
# query (the exact name, left out of the ranked part), 1 to look the exact name up (first page).
# Returns one string, fields joined by newlines (which no name or JSON payload holds; one bulk reply
# parses far faster than dozens): the exact match's member and payload ('' when none), then member,
# payload pairs.
_QUERY = """
local out = {'', ''}
if ARGV[4] == '1' then
  local doc = redis.call('HGET', KEYS[2], ARGV[3])
  if doc then
    local live, member, payload = string.match(doc, '^%d+\\t(%d)\\t([^\\t]*)\\t(.*)$')
    if live == '1' then out[1] = member; out[2] = payload end
  end
end
local wanted = tonumber(ARGV[2])
local members = redis.call('ZRANGE', KEYS[1], ARGV[1], '+', 'BYLEX', 'LIMIT', 0, wanted + 1)
local n = 0
for _, m in ipairs(members) do
  local name = string.sub(m, RANK_START)
  if name ~= ARGV[3] and n < wanted then
    local doc = redis.call('HGET', KEYS[2], name)
    out[#out + 1] = m
    out[#out + 1] = doc and string.match(doc, '^%d+\\t%d\\t[^\\t]*\\t(.*)$') or ''
    n = n + 1
  end
end
return table.concat(out, '\\n')
""".replace("RANK_START", str(RANK_WIDTH + 2))


@dataclass(frozen=True)
class Entry:
    """One name's state: absolute popularity, read at `stamp_us` (microseconds since the epoch)."""

    name: str
    popularity: int
    stamp_us: int
    payload: bytes = b""


class SearchIndex:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._ns = namespace
        self._upsert = redis.register_script(_UPSERT)
        self._query = redis.register_script(_QUERY)

    def doc_key(self, kind: Kind) -> str:
        return f"{self._ns}:search:{kind.name}:doc"

    def prefix_key(self, kind: Kind, prefix: str) -> str:
        return f"{self._ns}:search:{kind.name}:p:{prefix}"

    @property
    def ready_key(self) -> str:
        return f"{self._ns}:search:ready"

    async def upsert(self, kind: Kind, entries: list[Entry]) -> None:
        """Write every entry (pipelined, one script call each); entries older than what is stored are ignored."""
        if not entries:
            return
        pipe = self._redis.pipeline(transaction=False)
        for e in entries:
            live = e.popularity > 0 or kind.keep_unpopular
            keys = [self.doc_key(kind), *(self.prefix_key(kind, p) for p in prefixes(e.name))]
            args = [e.name, member(e.name, e.popularity), e.stamp_us, "1" if live else "0", e.payload]
            await self._upsert(keys=keys, args=args, client=pipe)  # queued: runs with the pipeline
        await pipe.execute()

    async def search(self, kind: Kind, q: str, limit: int, after: str | None) -> Page:
        """The page of names starting with `q`: the exact name first (first page), then most popular first."""
        first = after is None
        start = "-" if first or not after else "(" + after
        reply = await self._query(keys=[self.prefix_key(kind, q), self.doc_key(kind)],
                                  args=[start, limit + 1, q, "1" if first else "0"])
        raw = reply.split(b"\n")
        exact = _match(raw[0], raw[1]) if raw[0] else None
        ranked = [(m.decode(), _match(m, p)) for m, p in zip(raw[2::2], raw[3::2], strict=True)]
        return cut_page(exact, ranked, limit, after or "")

    async def is_ready(self) -> bool:
        return bool(await self._redis.exists(self.ready_key))

    async def mark_ready(self, at_us: int) -> None:
        await self._redis.set(self.ready_key, at_us)


def _match(raw_member: bytes, payload: bytes) -> Match:
    name, popularity = parse_member(raw_member.decode())
    return Match(name, popularity, payload)
