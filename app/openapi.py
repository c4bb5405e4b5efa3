"""The OpenAPI 3 document of what this API serves, built from the same Route list that aiohttp routes.

Paths, methods, security and paging come from the routes themselves, so the document cannot name a route
that is not served or miss one that is; every request schema (path and query parameters, JSON bodies,
multipart fields) is the JSON Schema of the Fields the route declares (app/web.py), the same ones that
validate its requests, so the document cannot promise another input than the one accepted. The statuses
each operation documents follow from what it takes (a body: 413, 415, 422; a path: 404) and from the
errors it declares; the schemas of its answers are written here.
"""

from __future__ import annotations

import re

from aiohttp import web

from app.context import OPENAPI_DOCUMENT
from app.idempotency import MAX_KEY_LENGTH
from app.web import Field, JsonBody, Route, Upload, object_schema

_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")  # aiohttp placeholders, with or without a pattern

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
TIME = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, dict] = {
    "Error": ERROR,
    "User": {
        "type": "object",
        "required": [
            "id",
            "username",
            "display_name",
            "bio",
            "post_count",
            "follower_count",
            "following_count",
            "followed_by_me",
            "created_at",
        ],
        "properties": {
            "id": ID,
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "bio": {"type": "string"},
            "post_count": {"type": "integer", "minimum": 0},
            "follower_count": {"type": "integer", "minimum": 0},
            "following_count": {"type": "integer", "minimum": 0},
            "followed_by_me": {"type": "boolean"},
            "created_at": TIME,
        },
    },
    "Session": {
        "type": "object",
        "required": ["token", "user"],
        "properties": {"token": {"type": "string"}, "user": {"$ref": "#/components/schemas/User"}},
    },
    "MediaVariant": {
        "type": "object",
        "required": ["url", "width", "height"],
        "properties": {"url": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"}},
    },
    "Post": {
        "type": "object",
        "required": ["id", "author", "caption", "hashtags", "location", "filter", "media", "like_count",
                     "comment_count", "liked_by_me", "created_at"],
        "properties": {
            "id": ID,
            "author": {"type": "object", "properties": {"id": ID, "username": {"type": "string", "nullable": True}}},
            "caption": {"type": "string"},
            "hashtags": {"type": "array", "items": {"type": "string"}},
            "mentions": {"type": "array", "items": {"type": "string"}},
            "location": {"type": "string"},
            "filter": {"type": "string", "nullable": True},
            "media": {
                "type": "object",
                "required": ["original", "large", "medium", "thumbnail"],
                "additionalProperties": {"$ref": "#/components/schemas/MediaVariant"},
            },
            "preview": {"type": "string", "nullable": True, "description": "BlurHash or tiny image to paint first"},
            "like_count": {"type": "integer", "minimum": 0},
            "comment_count": {"type": "integer", "minimum": 0},
            "liked_by_me": {"type": "boolean"},
            "created_at": TIME,
        },
    },
    "Comment": {
        "type": "object",
        "required": ["id", "post_id", "parent_id", "author", "text", "mentions", "reply_count", "deleted",
                     "created_at"],
        "properties": {
            "id": ID,
            "post_id": ID,
            "parent_id": {**ID, "nullable": True, "description": "the top-level comment this replies to"},
            "author": {
                "type": "object", "nullable": True, "description": "null once the comment is deleted",
                "properties": {"id": ID, "username": {"type": "string", "nullable": True}},
            },
            "text": {"type": "string", "description": "empty once the comment is deleted"},
            "mentions": {"type": "array", "items": {"type": "string"}},
            "reply_count": {"type": "integer", "minimum": 0, "description": "live replies"},
            "deleted": {"type": "boolean", "description": "deleted, still listed because it has live replies"},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "Notification": {
        "type": "object",
        "required": ["id", "kind", "actors", "actor_count", "post_id", "comment_id", "text", "created_at",
                     "updated_at"],
        "properties": {
            "id": {"type": "string", "description": "the aggregate's key; a push with a known id replaces it"},
            "kind": {"type": "string", "enum": ["like", "comment", "reply", "mention", "follow"]},
            "actors": {
                "type": "array",
                "description": "the latest actors, newest first (at most 3)",
                "items": {"type": "object", "properties": {"id": ID, "username": {"type": "string", "nullable": True}}},
            },
            "actor_count": {"type": "integer", "minimum": 1},
            "post_id": {**ID, "nullable": True},
            "comment_id": {**ID, "nullable": True, "description": "the newest comment it is about"},
            "text": {"type": "string", "example": "alice and 12 others liked your post"},
            "created_at": TIME,
            "updated_at": TIME,
        },
    },
    "NotificationTicket": {
        "type": "object",
        "required": ["ticket", "expires_at"],
        "properties": {"ticket": {"type": "string"}, "expires_at": TIME},
    },
    "TrendingHashtags": {
        "type": "object",
        "required": ["window", "items"],
        "properties": {
            "window": {"type": "string", "enum": ["1h", "24h"]},
            "items": {"type": "array", "items": {
                "type": "object",
                "required": ["tag", "score", "posts", "authors"],
                "properties": {
                    "tag": {"type": "string"},
                    "score": {"type": "number", "description": "(observed - expected) / sqrt(expected + 4)"},
                    "posts": {"type": "integer", "minimum": 0},
                    "authors": {"type": "integer", "minimum": 0, "description": "distinct authors in the window"},
                },
            }},
        },
    },
    "Hashtag": {
        "type": "object",
        "required": ["tag", "post_count"],
        "properties": {"tag": {"type": "string"}, "post_count": {"type": "integer", "minimum": 0}},
    },
    "UserSearchResult": {
        "type": "object",
        "required": ["id", "username", "display_name", "follower_count"],
        "properties": {
            "id": ID,
            "username": {"type": "string"},
            "display_name": {"type": "string"},
            "follower_count": {"type": "integer", "minimum": 0, "description": "as the search index holds it"},
        },
    },
    "HashtagSearchResult": {
        "type": "object",
        "required": ["tag", "post_count"],
        "properties": {
            "tag": {"type": "string", "description": "lower-cased, without '#'"},
            "post_count": {"type": "integer", "minimum": 1, "description": "as the search index holds it"},
        },
    },
    "Story": {
        "type": "object",
        "required": ["id", "author", "media", "created_at", "expires_at", "seen_by_me"],
        "properties": {
            "id": ID,
            "author": {"type": "object", "properties": {"id": ID, "username": {"type": "string", "nullable": True}}},
            "media": {
                "type": "object",
                "required": ["original", "large", "medium", "thumbnail"],
                "additionalProperties": {"$ref": "#/components/schemas/MediaVariant"},
            },
            "preview": {"type": "string", "nullable": True, "description": "BlurHash or tiny image to paint first"},
            "created_at": TIME,
            "expires_at": TIME,
            "seen_by_me": {"type": "boolean"},
            "view_count": {"type": "integer", "minimum": 0,
                           "description": "distinct viewers; present only for the story's author"},
        },
    },
    "TrayEntry": {
        "type": "object",
        "required": ["author", "story_count", "unseen_count", "unseen", "latest_story_id", "latest_at"],
        "properties": {
            "author": {"type": "object", "properties": {"id": ID, "username": {"type": "string", "nullable": True}}},
            "story_count": {"type": "integer", "minimum": 1, "description": "the author's live stories"},
            "unseen_count": {"type": "integer", "minimum": 0, "description": "of those, the ones you have not viewed"},
            "unseen": {"type": "boolean"},
            "latest_story_id": ID,
            "latest_at": TIME,
        },
    },
    "LikeState": {
        "type": "object",
        "required": ["liked", "like_count"],
        "properties": {
            "liked": {"type": "boolean"},
            "like_count": {"type": "integer", "minimum": 0, "description": "including this request's change"},
        },
    },
    "Filter": {
        "type": "object",
        "required": ["name", "description"],
        "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
    },
    "FilterList": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Filter"}},
            "next_cursor": {"type": "string", "nullable": True},
        },
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    "OpenAPI": {"type": "object", "required": ["openapi", "info", "paths", "components"],
                "properties": {"openapi": {"type": "string", "enum": ["3.0.3"]}}},
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

# what each error status means when the route does not say more (its `errors` do)
_ERROR_TEXT = {
    400: "Malformed input: a query parameter (invalid_limit, invalid_cursor, ...), a body that is not JSON"
         " (invalid_json) or a malformed multipart body, an invalid Idempotency-Key",
    401: "Missing, invalid, expired or revoked token",
    404: "Not found: nothing has the path's id or name",
    409: "A request with this Idempotency-Key is still being processed (see Retry-After)",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Invalid input: a field missing, unknown, of the wrong type or refused (see the error's code)",
    429: "Rate limited (see Retry-After)",
    503: "A dependency is down (see Retry-After)",
}
# the operations routes answer from memory (or say themselves that a dependency is down)
_NO_DEPENDENCY = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/filters"}
IDEMPOTENCY_KEY_SCHEMA = {  # app/idempotency.py check_key: printable ASCII (a header's edges are never spaces)
    "type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
    "pattern": f"^[!-~]([ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$",
}


def build_document(routes: list[Route]) -> dict:
    paths: dict[str, dict] = {}
    schemas = dict(SCHEMAS)
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
        if route.body is not None:
            schemas[route.body.name] = _body_schema(route.body)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Photos API",
            "version": "1.0.0",
            "description": "Posts, feeds, likes, comments and stories on Cassandra, Kafka and Redis.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "ticket": {"type": "apiKey", "in": "query", "name": "ticket",
                           "description": "one-time ticket from POST /v1/notifications/ticket"},
            },
        },
    }


def openapi_path(path: str) -> str:
    """An aiohttp path as OpenAPI writes it: `{key:.+}` becomes `{key}`."""
    return _PARAM.sub(r"{\1}", path)


def _operation(route: Route) -> dict:
    operation: dict = {
        "operationId": f"{route.handler.__name__}",
        "summary": route.summary,
        "tags": [route.tag] if route.tag else [],
        "parameters": [_parameter(name, "path", rule) for name, rule in route.path_fields.items()],
        "responses": {},
    }
    operation["parameters"] += [_parameter(name, "query", rule) for name, rule in route.query_fields.items()]
    if route.idempotency_key:
        operation["parameters"].append(
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "description": "The same key from the same user within 24 h returns the first result",
             "schema": IDEMPOTENCY_KEY_SCHEMA}
        )
    if isinstance(route.body, JsonBody):
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{route.body.name}"}}}}
    elif isinstance(route.body, Upload):
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {
            "schema": {"$ref": f"#/components/schemas/{route.body.name}"},
            "encoding": {route.body.file_field: {"contentType": ", ".join(route.body.media_types)}},
        }}}
    for status, what in route.responses.items():
        operation["responses"][str(status)] = _response(route, status, what)
    for status, text in _error_statuses(route).items():
        operation["responses"].setdefault(str(status), _error_response(text))
    if route.own_auth:
        operation["security"] = [{"bearerAuth": []}, {"ticket": []}]
    elif not route.public:
        operation["security"] = [{"bearerAuth": []}]
    return operation


def _error_statuses(route: Route) -> dict[int, str]:
    """Every error status the route can answer (500 aside): what its inputs imply, and its own `errors`."""
    statuses: set[int] = set()
    if route.query_fields or route.body is not None or route.idempotency_key:
        statuses.add(400)
    if not route.public:
        statuses |= {401, 429}
    if route.path_fields:
        statuses.add(404)
    if route.idempotency_key:
        statuses |= {409, 422}  # in use; reused for another request
    if route.body is not None:
        statuses |= {413, 415, 422}
    if route.path not in _NO_DEPENDENCY:
        statuses.add(503)
    texts = {status: _ERROR_TEXT[status] for status in statuses}
    texts |= route.errors
    return dict(sorted(texts.items()))


def _parameter(name: str, location: str, rule: Field) -> dict:
    parameter = {"name": name, "in": location, "required": location == "path" or rule.required,
                 "schema": rule.schema()}
    if rule.description:
        parameter["description"] = rule.description
    return parameter


def _body_schema(body: JsonBody | Upload) -> dict:
    if isinstance(body, JsonBody):
        return object_schema(body.fields)
    schema = object_schema(body.fields)
    schema["required"] = [body.file_field, *schema.get("required", [])]
    file_part = {"type": "string", "format": "binary", "description": body.file_description}
    schema["properties"] = {body.file_field: file_part, **schema["properties"]}
    return schema


def _response(route: Route, status: int, what: str) -> dict:
    if what not in SCHEMAS:
        if what == "Prometheus text":
            return {"description": what, "content": {"text/plain": {"schema": {"type": "string"}}}}
        return {"description": what}
    schema: dict = {"$ref": f"#/components/schemas/{what}"}
    if route.paged:
        schema = {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": schema},
                "next_cursor": {"type": "string", "nullable": True},
            },
        }
    return {"description": what, "content": {"application/json": {"schema": schema}}}


def _error_response(text: str) -> dict:
    return {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")


ROUTES = [
    Route(
        "GET",
        "/openapi.json",
        openapi_json,
        "This document",
        public=True,
        responses={200: "OpenAPI"},
        tag="ops",
    ),
]
