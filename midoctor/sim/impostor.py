"""Things that answer at the IMDS address but are not IMDS (failure-catalog F08, F15b; imds-fidelity 2.4.9)."""

from __future__ import annotations

import html

from .request import Request
from .responses import Response, http_date

PROXY_HOST = "proxy.corp.example"
SQUID = "squid/5.7"

# VERBATIM status text of Docker Desktop's proxy (imds-fidelity 2.4.9): it is both the reason phrase and
# the body, sent over HTTP/1.0 with "Connection: close".
DOCKER_DESKTOP_TEXT = (
    "connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: "
    "connectex: A socket operation was attempted to an unreachable network."
)


def docker_desktop(req: Request) -> Response:
    body = DOCKER_DESKTOP_TEXT.encode("utf-8")
    return Response(
        status=403,
        body=body,
        # Content-Type text/plain per failure-catalog F15b / messages MSG-153; Content-Length added so
        # clients need not rely on connection close (RECONSTRUCTED detail).
        headers=[("Connection", "close"), ("Content-Type", "text/plain; charset=utf-8"),
                 ("Content-Length", str(len(body)))],
        reason=DOCKER_DESKTOP_TEXT,
        http_version="HTTP/1.0",
        close=True,
    )


def _squid_page(req: Request) -> str:
    # RECONSTRUCTED from squid's stock ERR_CONNECT_FAIL template (not in the reference).
    target = "http://169.254.169.254" + req.path + ("?" + "&".join(f"{k}={v}" for k, v in req.query)
                                                    if req.query else "")
    url = html.escape(target)
    return (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">\n'
        "<html><head>\n"
        '<meta type="copyright" content="Copyright (C) 1996-2022 The Squid Software Foundation and contributors">\n'
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        "<title>ERROR: The requested URL could not be retrieved</title>\n"
        "</head><body id=ERR_CONNECT_FAIL>\n"
        '<div id="titles">\n<h1>ERROR</h1>\n<h2>The requested URL could not be retrieved</h2>\n</div>\n<hr>\n'
        '<div id="content">\n'
        f'<p>The following error was encountered while trying to retrieve the URL: <a href="{url}">{url}</a></p>\n'
        '<blockquote id="error">\n<p><b>Connection to 169.254.169.254 failed.</b></p>\n</blockquote>\n'
        '<p id="sysmsg">The system returned: <i>(111) Connection refused</i></p>\n'
        "<p>The remote host or network may be down. Please try the request again.</p>\n"
        '<p>Your cache administrator is <a href="mailto:webmaster">webmaster</a>.</p>\n'
        "<br>\n</div>\n<hr>\n"
        f'<div id="footer">\n<p>Generated {http_date()} by {PROXY_HOST} ({SQUID})</p>\n'
        "<!-- ERR_CONNECT_FAIL -->\n</div>\n</body></html>\n"
    )


def proxy(req: Request) -> Response:
    body = _squid_page(req).encode("utf-8")
    return Response(
        status=502,
        body=body,
        headers=[
            ("Server", SQUID),
            ("Mime-Version", "1.0"),
            ("Date", http_date()),
            ("Content-Type", "text/html;charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("X-Squid-Error", "ERR_CONNECT_FAIL 111"),
            ("Vary", "Accept-Language"),
            ("Content-Language", "en"),
            ("X-Cache", f"MISS from {PROXY_HOST}"),
            ("X-Cache-Lookup", f"MISS from {PROXY_HOST}:3128"),
            ("Via", f"1.1 {PROXY_HOST} ({SQUID})"),
            ("Connection", "keep-alive"),
        ],
    )


IMPOSTORS = {"proxy": proxy, "docker-desktop": docker_desktop}
