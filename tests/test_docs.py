"""The repository explains itself: comments cite the project's own docs
(docs/method.md, docs/architecture.md), never team notes outside it, and
every docs/ page they cite exists."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ('drm_mm', 'configs', 'tools', 'tests', 'projects', 'docs')
# Spelled in two pieces so that this file does not cite them itself.
OUTSIDE_NOTES = ('DESIGN' + '.md', 'REFERENCE' + '.md')


def _text_files():
    files = [ROOT / 'README.md']
    for folder in FOLDERS:
        files += [p for p in (ROOT / folder).rglob('*')
                  if p.suffix in ('.py', '.md', '.sh', '.json')
                  and '__pycache__' not in p.parts]
    return files


def test_nothing_cites_notes_outside_the_repository():
    offenders = [f'{p.relative_to(ROOT)}: {name}' for p in _text_files()
                 for name in OUTSIDE_NOTES if name in p.read_text()]
    assert not offenders, ('cite docs/method.md or docs/architecture.md '
                           f'instead: {offenders}')


def test_cited_docs_pages_exist():
    cited = {m for p in _text_files()
             for m in re.findall(r'docs/[\w-]+\.(?:md|svg|png)',
                                 p.read_text())}
    assert {'docs/method.md', 'docs/architecture.md'} <= cited
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert not missing, f'cited but not in docs/: {missing}'
