"""Every action endpoint (``actions.py``) refuses a caller without its permission and then changes nothing.

Each test runs once per action; the one allowed call shows that the refusal is the permission's doing.
"""

import pytest
from rest_framework.test import APIClient

from tests.accesscontrol.api.actions import ACTIONS, PHONE_ACTIONS
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

each_action = pytest.mark.parametrize("action", ACTIONS, ids=str)


@each_action
def test_an_operator_without_the_permission_is_refused_and_nothing_changes(action, partition):
    world = action.setup(partition)
    client = client_with(*action.also, all_partitions=True)
    before = action.state()

    response = action.request(client, world)

    assert response.status_code == 403, response.content
    assert action.state() == before


@pytest.mark.parametrize("action", [action for action in ACTIONS if action.elsewhere is not None], ids=str)
def test_the_permission_in_another_partition_is_refused_and_nothing_changes(action, partition, other_partition):
    world = action.setup(partition)
    client = client_with(action.permission, *action.also, partitions=[other_partition])
    before = action.state()

    response = action.request(client, world)

    assert response.status_code == action.elsewhere, response.content
    assert action.state() == before


@pytest.mark.parametrize("action", ACTIONS + PHONE_ACTIONS, ids=str)
def test_an_anonymous_caller_is_refused_and_nothing_changes(action, partition):
    world = action.setup(partition)
    before = action.state()

    response = action.request(APIClient(), world)

    assert response.status_code == 401, response.content
    assert action.state() == before


@each_action
def test_an_operator_with_the_permission_is_let_through(action, partition):
    world = action.setup(partition)
    client = client_with(action.permission, *action.also, all_partitions=True)

    response = action.request(client, world)

    assert response.status_code == action.allowed, response.content
