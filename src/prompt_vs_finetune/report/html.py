"""report.html: report.md rendered to one self-contained page, each plot embedded as a base64
data URI, so that it shows with its plots wherever only the file travels (MLflow's artifact
viewer renders .html artifacts; it shows .md as plain text)."""

import base64
import html
from pathlib import Path

from markdown_it import MarkdownIt

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg"}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; line-height: 1.45; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }}
th, td {{ border: 1px solid #d0d7de; padding: 0.25em 0.6em; }}
th {{ background: #f6f8fa; }}
tr:nth-child(even) td {{ background: #fafbfc; }}
img {{ max-width: 48%; vertical-align: top; margin: 0.25em; }}
code {{ background: #f6f8fa; padding: 0.1em 0.3em; border-radius: 3px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def render_html(markdown: str, folder: Path, title: str) -> str:
    """The markdown as a page; images with a relative path under `folder` are inlined (an
    image that is not there keeps its link). Raw HTML in the markdown is escaped."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                inline = data_uri(folder, str(child.attrGet("src") or ""))
                if inline:
                    child.attrSet("src", inline)
    body = md.renderer.render(tokens, md.options, {})
    return PAGE.format(title=html.escape(title), body=body)


def data_uri(folder: Path, src: str) -> str | None:
    """`src` (relative to `folder`, and inside it) as a data URI, or None."""
    if not src or "://" in src or src.startswith(("/", "data:")):
        return None
    path = (folder / src).resolve()
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file() or not path.is_relative_to(folder.resolve()):
        return None
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
