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


def _markdown_files():
    return [ROOT / 'README.md'] + sorted(
        p for folder in ('docs', 'configs', 'projects')
        for p in (ROOT / folder).rglob('*.md'))


def _anchors(path):
    """GitHub's heading anchors of a markdown file: lower case, punctuation
    other than '-' and '_' dropped, spaces turned into '-'."""
    text = re.sub(r'```.*?```', '', path.read_text(), flags=re.S)
    return {re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-')
            for h in re.findall(r'^#+ (.*)$', text, flags=re.M)}


def test_every_relative_link_resolves():
    """Links and images of the README and of every page under docs/,
    configs/ and projects/ point at a file of the checkout, and an anchor
    at one of that file's headings."""
    broken, checked = [], 0
    for page in _markdown_files():
        text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)
        for target in re.findall(r'\]\(([^)\s]+)\)', text):
            if re.match(r'[a-z]+:', target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition('#')
            file = (page.parent / path).resolve() if path else page
            checked += 1
            if not file.exists():
                broken.append(f'{page.relative_to(ROOT)}: {target}')
            elif anchor and file.suffix == '.md' and \
                    anchor not in _anchors(file):
                broken.append(f'{page.relative_to(ROOT)}: {target} '
                              '(no such heading)')
    assert checked >= 40
    assert not broken, broken
