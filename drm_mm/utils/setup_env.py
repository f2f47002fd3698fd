"""Registering drm_mm's modules and making it the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every drm_mm component (registering it) and optionally make
    ``drm_mm`` the default registry scope, as MMPretrain tools do."""
    import drm_mm  # noqa: F401

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('drm_mm'):
        if current is not None and current.scope_name != 'drm_mm':
            warnings.warn(f'The current default scope {current.scope_name!r}'
                          ' is not "drm_mm"; a new scope drm_mm is created.')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S%f')
        DefaultScope.get_instance(f'drm_mm-{stamp}', scope_name='drm_mm')
