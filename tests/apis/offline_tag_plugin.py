"""Test plugin (imported through a config's ``custom_imports``): gives the
tiny CLIP ``drm-tiny-vit`` an open_clip hub tag, ``'fakehub'``, and makes
every way open_clip fetches weights, and every socket that leaves the
machine, raise. A model built with ``clip.pretrained='fakehub'`` therefore
fails if anything tries to fetch its pretrained weights."""
import socket

import open_clip
import open_clip.factory
import open_clip.pretrained

TAG = 'fakehub'
FETCH_ERROR = 'offline test: open_clip tried to fetch weights'


def _no_fetch(*args, **kwargs):
    raise RuntimeError(f'{FETCH_ERROR} ({args[:1]!r})')


def _no_network(self, address, *args):
    host = address[0] if isinstance(address, tuple) else address
    if self.family == getattr(socket, 'AF_UNIX', None) or host in (
            '127.0.0.1', '::1', 'localhost'):
        return _real_connect(self, address, *args)
    raise OSError(f'offline test: connection to {address!r} blocked')


_real_connect = socket.socket.connect


def install() -> None:
    open_clip.pretrained._PRETRAINED.setdefault('drm-tiny-vit', {})[TAG] = \
        open_clip.pretrained._pcfg(hf_hub='nobody/drm-tiny-vit/')
    for module in (open_clip, open_clip.factory, open_clip.pretrained):
        for name in ('download_pretrained', 'download_pretrained_from_hf',
                     'download_pretrained_from_url'):
            if hasattr(module, name):
                setattr(module, name, _no_fetch)
    socket.socket.connect = _no_network


install()
