"""The OpenAPI 3 document of what this API serves, built from the same Route list that aiohttp routes.

Paths, methods, parameters, security and paging come from the routes themselves, so the
document cannot name a route that is not served or miss one that is.
"""

from __future__ import annotations

import re

from aiohttp import web

from app.context import OPENAPI_DOCUMENT
from app.web import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Route

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
    "NewAccount": {
        "type": "object",
        "required": ["username", "password"],
        "additionalProperties": False,
        "properties": {
            "username": {"type": "string", "pattern": "^[A-Za-z0-9._]{3,30}$"},
            "password": {"type": "string", "minLength": 8, "maxLength": 256},
            "display_name": {"type": "string", "maxLength": 64},
        },
    },
    "NewSession": {
        "type": "object",
        "required": ["username", "password"],
        "additionalProperties": False,
        "properties": {
            "username": {"type": "string", "maxLength": 64},
            "password": {"type": "string", "maxLength": 256},
        },
    },
    "ProfilePatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "display_name": {"type": "string", "maxLength": 64},
            "bio": {"type": "string", "maxLength": 500},
        },
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
    "NewComment": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 2200},
            "parent_id": {**ID, "nullable": True, "description": "reply to this comment (one level of nesting)"},
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
    "NewStory": {
        "type": "object",
        "required": ["media"],
        "properties": {
            "media": {"type": "string", "format": "binary",
                      "description": "a JPEG, PNG or WebP photo, at most 20 MB (video: 415)"},
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
    "NewPost": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP, at most 20 MB"},
            "caption": {"type": "string", "maxLength": 2200},
            "location": {"type": "string", "maxLength": 100},
            "filter": {"type": "string", "description": "a name from GET /v1/filters"},
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
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

_COMMON_ERRORS = {
    "400": "Malformed input (bad JSON, limit or cursor)",
    "404": "Not found",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "Invalid input",
    "429": "Rate limited (see Retry-After)",
    "503": "A dependency is down (see Retry-After)",
}


def build_document(routes: list[Route]) -> dict:
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = _operation(route)
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
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
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
        "parameters": [_path_parameter(name) for name in _PARAM.findall(route.path)],
        "responses": {},
    }
    if route.paged:
        operation["parameters"] += [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
            },
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
        ]
    operation["parameters"] += [
        {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in route.query.items()
    ]
    if route.idempotency_key:
        operation["parameters"].append(
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "description": "The same key from the same user within 24 h returns the first result",
             "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
        )
    if route.request_body is not None:
        operation["requestBody"] = {
            "required": True, "content": {route.body_content_type: {"schema": route.request_body}}
        }
    for status, what in route.responses.items():
        operation["responses"][str(status)] = _response(route, status, what)
    for status, text in _COMMON_ERRORS.items():
        operation["responses"].setdefault(status, _error_response(text))
    if not route.public:
        operation["security"] = [{"bearerAuth": []}]
        operation["responses"]["401"] = _error_response("Missing, invalid, expired or revoked token")
    return operation


def _path_parameter(name: str) -> dict:
    schema = ID if name.endswith("_id") else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


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
        responses={200: "The OpenAPI 3 document"},
        tag="ops",
    ),
]
