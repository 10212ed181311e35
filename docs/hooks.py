"""MkDocs hooks (``hooks:`` in mkdocs.yml): pages built from the files that own their content.

- ``restore/weights/<name>.md`` (the model cards, shipped with the weights) → ``zoo/<name>.md``;
- ``benchmarks/RESULTS.md`` (machine-specific timings and benchmark tables) → ``results.md``;
- ``<!-- zoo-table -->`` → one row per shipped model, from its card's JSON;
- ``<!-- cli-help: restore [command] -->`` → that command's ``--help``, from ``restore.cli.build_parser``.

So the site never holds a second copy that could drift from the cards, the results or the parser.
``tests/test_docs.py`` imports this file to resolve README and docs links to generated pages: MkDocs is
imported only inside the hooks.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WEIGHTS = ROOT / "restore" / "weights"
CLI_HELP = re.compile(r"<!-- cli-help: restore ?(\w*) -->")


def generated_pages() -> dict[str, Path]:
    """Site page (relative to docs/) → the file outside docs/ it is made from."""
    pages = {f"zoo/{card.stem}.md": card for card in sorted(WEIGHTS.glob("*.md"))
             if card.with_suffix(".json").is_file()}
    pages["results.md"] = ROOT / "benchmarks" / "RESULTS.md"
    return pages


def on_files(files, config):
    from mkdocs.structure.files import File

    for page, source in generated_pages().items():
        files.append(File.generated(config, page, content=source.read_text()))
    return files


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def zoo_table() -> str:
    """One row per shipped model: task, size, and each test set's PSNR/SSIM over all its images (RGB protocol)."""
    rows = ["| model | task | params (non-zero) | file | test set: PSNR in → out (SSIM out) |",
            "|---|---|---|---|---|"]
    for page, card in generated_pages().items():
        if not page.startswith("zoo/"):
            continue
        info = json.loads(card.with_suffix(".json").read_text())
        results = []
        for test_set, per_task in info["metrics"].items():
            every = per_task["all"]
            results.append(f"{test_set}: {every['psnr']['input']:.2f} → **{every['psnr']['output']:.2f}** "
                           f"({every['ssim']['output']:.3f})")
        rows.append(f"| [`{info['name']}`]({page}) | {info['task']} | {_millions(info['params'])} "
                    f"({_millions(info['nonzero_params'])}) | {info['file_bytes'] / 2**20:.1f} MiB | "
                    f"{'<br>'.join(results)} |")
    return "\n".join(rows)


def cli_help(command: str) -> str:
    from restore.cli import build_parser

    parser = build_parser()
    if command:
        parser = next(action for action in parser._subparsers._group_actions if action.choices).choices[command]
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the same text on every machine
    try:
        text = parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return f"```text\n{text.rstrip()}\n```"


def on_page_markdown(markdown, page, config, files):
    markdown = markdown.replace("<!-- zoo-table -->", zoo_table())
    return CLI_HELP.sub(lambda m: cli_help(m.group(1)), markdown)
