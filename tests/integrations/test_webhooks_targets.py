"""Where a webhook may go: the URL's form, and addresses refused without an administrator's leave (SSRF)."""

import pytest
from django.core.exceptions import ValidationError

from integrations.models import WebhookSubscription
from integrations.targets import TargetError, TargetRefused, check_url, refusal


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("169.254.169.254", "link-local"),
        ("169.254.170.2", "link-local"),
        ("fe80::1", "link-local"),
        ("100.100.100.200", "metadata"),
        ("192.0.0.192", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (the address under test)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
    ],
)
def test_these_addresses_are_refused(address, why):
    assert why in refusal(address)


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.5", "192.168.1.20", "203.0.113.7", "2001:db8::10"])
def test_site_networks_and_public_addresses_are_allowed(address):
    assert refusal(address) is None


def test_a_url_on_a_refused_address_is_refused_unless_allowed():
    with pytest.raises(TargetRefused, match=r"127\.0\.0\.1 is a loopback address .*administrator"):
        check_url("http://127.0.0.1:8080/hooks")

    target = check_url("http://127.0.0.1:8080/hooks?x=1", allow_private=True)

    assert (target.scheme, target.host, target.port, target.path) == ("http", "127.0.0.1", 8080, "/hooks?x=1")
    assert target.addresses == ("127.0.0.1",)


def test_a_host_name_is_judged_by_every_address_it_resolves_to():
    with pytest.raises(TargetRefused, match=r"localhost \((127\.0\.0\.1|::1)\) is a loopback address"):
        check_url("https://localhost/hooks")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://192.0.2.1/x", "must start with https://"),
        ("https:///nohost", "no host"),
        ("https://user:secret@192.0.2.1/", "user name or password"),
        ("https://192.0.2.1/x#part", "fragment"),
        ("https://192.0.2.1:99999/", "Not a valid URL"),
    ],
)
def test_malformed_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(TargetError, match=message):
        check_url(url, allow_private=True)


def test_https_defaults_to_port_443_and_an_empty_path_to_slash():
    target = check_url("https://192.0.2.1")

    assert (target.port, target.path) == (443, "/")


def test_a_subscription_is_checked_when_it_is_saved():
    subscription = WebhookSubscription(name="metadata", url="http://169.254.169.254/latest/meta-data/")

    with pytest.raises(ValidationError) as refused:
        subscription.clean()

    assert "link-local" in refused.value.message_dict["url"][0]
    subscription.allow_private_target = True
    subscription.clean()


def test_unknown_event_kinds_are_refused_and_known_ones_kept_once_in_order():
    subscription = WebhookSubscription(name="k", url="https://192.0.2.1/", kinds=["door_forced", "nonsense"])

    with pytest.raises(ValidationError) as refused:
        subscription.clean()
    assert refused.value.message_dict["kinds"] == ["Unknown kinds: nonsense."]

    subscription.kinds = ["tamper", "door_forced", "tamper"]
    subscription.clean()
    assert subscription.kinds == ["door_forced", "tamper"]
