"""tools.tool_utils: options generated from a settings dataclass."""
import argparse
from dataclasses import dataclass, field
from typing import Tuple

import pytest

from tools.tool_utils import add_dataclass_options, dataclass_kwargs


@dataclass(frozen=True)
class _Settings:
    n_train: int = 4
    own_frac: float = 0.9
    name: str = 'x'
    classes: Tuple[str, ...] = field(default=('a', 'b'))


def test_one_typed_option_per_field_except_skipped():
    parser = argparse.ArgumentParser()
    names = add_dataclass_options(parser, _Settings, skip=('classes', ))
    assert names == ['n_train', 'own_frac', 'name']
    args = parser.parse_args(['--n-train', '7', '--own-frac', '0.5'])
    kwargs = dataclass_kwargs(args, _Settings, skip=('classes', ))
    assert kwargs == dict(n_train=7, own_frac=0.5, name='x')
    assert _Settings(**kwargs).n_train == 7
    with pytest.raises(SystemExit):  # typed like the default
        parser.parse_args(['--n-train', 'many'])
    with pytest.raises(SystemExit):  # skipped fields get no option
        parser.parse_args(['--classes', 'c'])
