"""A local Hub-protocol server for the hub tests: olah (a self-hosted Hub mirror, run in its own venv `.venv-olah`)
serving git repositories from its `mirrors-path`, offline.

Run with olah's interpreter, with olah's own arguments: `.venv-olah/bin/python tests/hub_server.py -c olah.toml`.

Two answers differ from huggingface.co, so this file wraps olah's ASGI app to give the Hub's:
- olah answers a file missing from a mirrored repo with 401 (repository not found); the Hub with 404 and
  `X-Error-Code: EntryNotFound`, which the loaders take as "optional file absent". Only the optional files listed in
  `OPTIONAL_PROBES` (chat templates, an audio tokenizer, legacy slow-tokenizer files that transformers 5 no longer
  writes) get the Hub's 404 here; any other missing file keeps olah's 401 and fails the load, so a test shows that
  the repository holds every other file the loaders ask for.
- olah answers `GET /api/models/{org}/{name}` (repo info, no revision) with 401 for mirrored repos; the Hub answers
  with the info of `main`, which is what this wrapper asks olah for.
Every 401 and every translated probe is printed as a `hub-shim:` line, for the tests to read.
"""

from __future__ import annotations

import re
import sys

OPTIONAL_PROBES = frozenset(
    {
        "additional_chat_templates",
        "chat_template.jinja",
        "chat_template.json",
        "audio_tokenizer_config.json",
        "video_preprocessor_config.json",
        "added_tokens.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
    }
)
PROBE = re.compile(r"/(?:api/models/)?[^/]+/[^/]+/(?:resolve|tree)/[^/]+/(?P<path>[^?]+)")
REPO_INFO = re.compile(r"/api/models/[^/]+/[^/]+")


def hub_answers(app):
    """Wrap olah's ASGI `app` so that the two answers above are the Hub's."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        path = scope["path"]
        if REPO_INFO.fullmatch(path):
            scope = dict(scope, path=path + "/revision/main", raw_path=(path + "/revision/main").encode())
        match = PROBE.fullmatch(path)
        optional = match is not None and match["path"] in OPTIONAL_PROBES
        translated = False

        async def patched(message):
            nonlocal translated
            if message["type"] == "http.response.start" and message["status"] == 401:
                translated = optional
                print(f"hub-shim: {'404' if optional else '401'} {scope['method']} {path}", flush=True)
                if optional:
                    headers = [(b"x-error-code", b"EntryNotFound"), (b"x-error-message", b"Entry not found")]
                    message = {"type": "http.response.start", "status": 404, "headers": headers}
            elif message["type"] == "http.response.body" and translated:
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app(scope, receive, patched)

    return wrapped


def main() -> None:
    import olah.server
    import uvicorn

    args = olah.server.init()  # reads sys.argv: -c CONFIG, --log-path, ...
    uvicorn.run(hub_answers(olah.server.app), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    sys.exit(main())
