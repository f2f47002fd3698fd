"""Generate concept-description JSON files with an OpenAI-compatible LLM.

    export OPENAI_API_KEY=...            # never pass keys on shared machines
    python tools/generate_descriptions.py --classes-from iwildcam \
        --out drm_mm/prompts/iwildcam.json --model gpt-4o --n 5

Classes come from a benchmark (``--classes-from iwildcam|fmow|imagenet``),
a config's ``model.classnames`` (``--classes-from configs/drm/x.py``) or a
text file (``--classes-file names.txt``, one per line). The file is written
after every class; rerun the same command to resume after a failure.
The client and the file handling live in ``description_generation.py``
beside this file. The API key goes only to --base-url (redirects are
refused) and never into the output; --timeout bounds each request in total
and --max-response-bytes the size of a reply.
"""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import List

from description_generation import (DEFAULT_MAX_RESPONSE_BYTES,
                                    DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPLATE,
                                    ChatClient, ClassEntry, GenerationError,
                                    check_template, classes_from_config,
                                    classes_from_dataset, classes_from_file,
                                    generate_descriptions, render_prompt)

DEFAULT_BASE_URL = 'https://api.openai.com/v1'


def parse_args(argv: List[str] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate concept descriptions (cd prompts) with an LLM')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--classes-from', metavar='DATASET|CONFIG',
                        help='a benchmark key (iwildcam, fmow, imagenet, '
                        'imagenet_a, imagenet_r) or a config .py whose '
                        'model.classnames to use')
    source.add_argument('--classes-file', help='text file, one class name '
                        'per line')
    parser.add_argument('--out', required=True, help='output JSON (resumed '
                        'if it exists)')
    parser.add_argument('--n', type=int, default=5,
                        help='descriptions per class (default 5)')
    parser.add_argument('--template', help='user prompt with {classname} and '
                        'optionally {n} (default: core visual features only)')
    parser.add_argument('--template-file', help='read the template from a '
                        'file')
    parser.add_argument('--system-prompt', default=DEFAULT_SYSTEM_PROMPT,
                        help='system message ("" for none)')
    parser.add_argument('--base-url', help='API base URL (default '
                        f'$OPENAI_BASE_URL or {DEFAULT_BASE_URL})')
    parser.add_argument('--model', help='model name (default $OPENAI_MODEL)')
    parser.add_argument('--api-key', help='API key (default '
                        '$OPENAI_API_KEY; prefer the variable: arguments are '
                        'visible to other users)')
    parser.add_argument('--temperature', type=float)
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds per request in total, however slowly '
                        'the server answers (default 120)')
    parser.add_argument('--max-response-bytes', type=int,
                        default=DEFAULT_MAX_RESPONSE_BYTES,
                        help='larger replies are refused (default '
                        f'{DEFAULT_MAX_RESPONSE_BYTES})')
    parser.add_argument('--max-retries', type=int, default=6)
    parser.add_argument('--backoff', type=float, default=2.0,
                        help='first retry wait in seconds (doubles each '
                        'retry)')
    parser.add_argument('--max-backoff', type=float, default=120.0)
    parser.add_argument('--max-retry-after', type=float, default=600.0,
                        help='longest Retry-After wait honoured')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the first request and exit')
    return parser.parse_args(argv)


def load_classes(args: argparse.Namespace) -> List[ClassEntry]:
    """The classes named by --classes-from / --classes-file."""
    if args.classes_file:
        return classes_from_file(args.classes_file)
    source = args.classes_from
    if source.endswith('.py') or osp.isfile(source):
        return classes_from_config(source)
    return classes_from_dataset(source)


def main(argv: List[str] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(levelname)s %(message)s')
    log = logging.getLogger('generate_descriptions')
    try:
        if args.template and args.template_file:
            raise ValueError('pass --template or --template-file, not both.')
        template = args.template or DEFAULT_TEMPLATE
        if args.template_file:
            with open(args.template_file, encoding='utf-8') as f:
                template = f.read().strip()
        check_template(template)
        classes = load_classes(args)
        if args.dry_run:
            print(f'{len(classes)} classes; first request '
                  f'({classes[0].key!r}):')
            if args.system_prompt:
                print(f'[system] {args.system_prompt}')
            print(f'[user] {render_prompt(template, classes[0].name, args.n)}')
            return 0
        client = ChatClient(
            base_url=args.base_url or os.environ.get('OPENAI_BASE_URL')
            or DEFAULT_BASE_URL,
            model=args.model or os.environ.get('OPENAI_MODEL', ''),
            api_key=args.api_key or os.environ.get('OPENAI_API_KEY'),
            timeout=args.timeout, max_retries=args.max_retries,
            backoff=args.backoff, max_backoff=args.max_backoff,
            max_retry_after=args.max_retry_after,
            temperature=args.temperature,
            max_response_bytes=args.max_response_bytes)
        generate_descriptions(classes, args.out, client, template=template,
                              n=args.n, system_prompt=args.system_prompt,
                              log=log)
    except (GenerationError, ValueError, FileNotFoundError, KeyError) as err:
        print(f'generate_descriptions.py: error: {err}', file=sys.stderr)
        return 1
    log.info('descriptions written to %s', args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
