"""Where the features plug into the domain's pages, so that the domain never imports them.

The operator web app's cardholder page, key issuing and dashboard belong to the
domain, yet some of what they show comes from apps above it: encoders and
encode jobs (devices), phones holding mobile keys (integrations). Those apps
register their parts here when they start (``AppConfig.ready``); the domain's
views ask this module. Without a registration the domain's own default holds:
a key is issued with the UID typed in, and the page shows no device figures.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django import forms


@dataclass
class KeyIssuing:
    """How the web app issues a key: the form it shows, and what a valid form does (True once issued)."""

    form_class: type[forms.Form] | None = None  # None: accesscontrol.forms.people.KeyIssueForm
    issue: Callable[..., bool] | None = None  # None: accesscontrol.views.keys.issue_typed_key


@dataclass
class Extensions:
    key_issuing: KeyIssuing = field(default_factory=KeyIssuing)
    # (access point, mode, operator=, via=, address=): an operator's new opening mode reaching the doors
    # (devices.commands.set_opening_mode); None: it is only stored, as the operator's mode.
    mode_commands: Callable | None = None
    # (holder, keys) -> extra context for the cardholder page, e.g. {"encode_jobs": [...]}
    cardholder_page: list[Callable] = field(default_factory=list)
    # operator -> extra dashboard figures, e.g. {"devices_online": 3}; each checks its own permission
    dashboard_stats: list[Callable] = field(default_factory=list)

    def add_cardholder_page(self, part: Callable) -> None:
        if part not in self.cardholder_page:
            self.cardholder_page.append(part)

    def add_dashboard_stats(self, part: Callable) -> None:
        if part not in self.dashboard_stats:
            self.dashboard_stats.append(part)


registry = Extensions()


def key_issue_form_class() -> type[forms.Form]:
    from accesscontrol.forms.people import KeyIssueForm

    return registry.key_issuing.form_class or KeyIssueForm
