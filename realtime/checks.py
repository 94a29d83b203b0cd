"""`manage.py check` refuses a provider choice the workers would refuse at start-up."""

from django.core import checks


@checks.register(checks.Tags.compatibility)
def providers_configured(app_configs, **kwargs):
    from .providers.registry import ProviderConfigError, get_providers

    try:
        get_providers()
    except ProviderConfigError as error:
        return [checks.Error(str(error), id="realtime.E001")]
    return []
